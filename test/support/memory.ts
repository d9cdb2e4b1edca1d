// What a container costs in memory on a (simulated) host, for issue 15's "the proxy's extra
// memory per host": the container's cgroup as the host's kernel accounts it, and, as a check from
// the other side, the resident set of its processes. Both run as a root shell script on the host
// through the caller's `exec` (on a sim: `docker exec <sim> bash -s`, as `DevFleet.exec` does), so
// they read what the host sees, not what this machine sees.

/** Runs a shell script as root on the host and resolves with its stdout (rejects on a non-zero exit). */
export type HostExec = (script: string) => Promise<string>;

/** A container's memory as its cgroup reports it. */
export interface ContainerMemory {
  /** The figure to use: `usageBytes - inactiveFileBytes` (what `docker stats` shows), never below 0. */
  readonly bytes: number;
  /** Everything charged to the cgroup: v2 `memory.current`, v1 `memory.usage_in_bytes` (page cache included). */
  readonly usageBytes: number;
  /** Page cache the kernel can drop first: v2 `inactive_file`, v1 `total_inactive_file` (else `inactive_file`). */
  readonly inactiveFileBytes: number;
  /** All page cache: v2 `file`, v1 `total_cache` (else `cache`); 0 when memory.stat has neither. */
  readonly fileBytes: number;
  readonly cgroupVersion: 1 | 2;
  /** The cgroup directory read, on the host. */
  readonly cgroup: string;
  /** How `bytes` was computed, e.g. "cgroup v1 memory.usage_in_bytes - total_inactive_file". */
  readonly source: string;
  /** The cgroup's whole memory.stat. */
  readonly stat: Readonly<Record<string, number>>;
}

/** One process of a container, from `/proc/<pid>/status`. */
export interface ContainerProcess {
  /** In the host's PID namespace. */
  readonly pid: number;
  readonly name: string;
  /** VmRSS; 0 for a process without one (a kernel thread, a zombie). */
  readonly rssBytes: number;
}

/** Docker names and ids: they go into a script, so nothing else is let through. */
const CONTAINER = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function checkContainer(container: string): string {
  if (!CONTAINER.test(container)) throw new Error(`"${container}" is not a Docker container name or id`);
  return container;
}

/**
 * The script that finds the container's memory cgroup and prints it as `key value` lines. The
 * path in /proc/<pid>/cgroup is relative to the reader's cgroup namespace, which on a sim (host
 * cgroup tree bind-mounted, own namespace on cgroup v2) need not match /sys/fs/cgroup: then the
 * directory named after the container's id is looked for. Either way the directory counts only
 * if the container's main process is in it.
 */
export function containerMemoryScript(container: string): string {
  const c = checkContainer(container);
  return `id=$(docker inspect -f '{{.Id}}' ${c})
pid=$(docker inspect -f '{{.State.Pid}}' ${c})
[ "$pid" -gt 0 ] || { echo "container ${c} is not running" >&2; exit 1; }
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  version=2 root=/sys/fs/cgroup file=memory.current
  rel=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
else
  version=1 root=/sys/fs/cgroup/memory file=memory.usage_in_bytes
  rel=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' "/proc/$pid/cgroup")
fi
dir=
for d in "$root$rel" $(find "$root" -maxdepth 8 -type d -name "*$id*" 2>/dev/null); do
  if [ -r "$d/$file" ] && grep -qx "$pid" "$d/cgroup.procs" 2>/dev/null; then dir=$d; break; fi
done
[ -n "$dir" ] || { echo "no memory cgroup of container ${c} (pid $pid, $root$rel) holds its process" >&2; exit 1; }
echo "version $version"
echo "dir $dir"
echo "usage $(cat "$dir/$file")"
sed 's/^/stat /' "$dir/memory.stat"
`;
}

/** Parses `containerMemoryScript`'s output. */
export function parseContainerMemory(output: string): ContainerMemory {
  const stat: Record<string, number> = {};
  let version: 1 | 2 | undefined;
  let dir: string | undefined;
  let usage: number | undefined;
  for (const line of output.split("\n")) {
    const [key, ...rest] = line.trim().split(/\s+/);
    const value = rest.join(" ");
    if (key === "version") version = value === "2" ? 2 : value === "1" ? 1 : undefined;
    else if (key === "dir") dir = value;
    else if (key === "usage") usage = Number(value);
    else if (key === "stat" && rest.length === 2 && rest[0] && /^\d+$/.test(rest[1] ?? "")) stat[rest[0]] = Number(rest[1]);
  }
  if (version === undefined || dir === undefined || usage === undefined || !Number.isFinite(usage)) {
    throw new Error(`unexpected output of the container memory script:\n${output}`);
  }
  const pick = (...keys: string[]) => {
    const key = keys.find((k) => stat[k] !== undefined);
    return key === undefined ? undefined : { key, value: stat[key] ?? 0 };
  };
  // v1's total_* include the cgroup's children; a container's cgroup has none, but they are what
  // `docker stats` reads, so the figures agree with it.
  const inactive = version === 2 ? pick("inactive_file") : pick("total_inactive_file", "inactive_file");
  const file = version === 2 ? pick("file") : pick("total_cache", "cache");
  const usageName = version === 2 ? "memory.current" : "memory.usage_in_bytes";
  return {
    bytes: Math.max(0, usage - (inactive?.value ?? 0)),
    usageBytes: usage,
    inactiveFileBytes: inactive?.value ?? 0,
    fileBytes: file?.value ?? 0,
    cgroupVersion: version,
    cgroup: dir,
    source: `cgroup v${version} ${usageName}${inactive ? ` - ${inactive.key}` : " (memory.stat has no inactive_file: page cache included)"}`,
    stat,
  };
}

/** The container's memory cgroup on the host, read through `exec`. */
export async function containerMemory(exec: HostExec, container: string): Promise<ContainerMemory> {
  return parseContainerMemory(await exec(containerMemoryScript(container)));
}

/**
 * The container's memory use as the host's cgroup reports it, in bytes: cgroup v2 `memory.current`
 * of its scope, else v1 `memory.usage_in_bytes`, minus the inactive page cache (`inactive_file`;
 * v1 `total_inactive_file`), as `docker stats` computes it. `containerMemory` says which was read.
 */
export async function containerMemoryBytes(exec: HostExec, container: string): Promise<number> {
  return (await containerMemory(exec, container)).bytes;
}

/** The script printing `pid N` and the Name/VmRSS lines of /proc/N/status for each process `docker top` lists. */
export function processStatusScript(container: string): string {
  const c = checkContainer(container);
  // A process may exit between docker top and the read: it is skipped.
  return `docker top ${c} -o pid | tail -n +2 | while read -r pid _; do
  [ -r "/proc/$pid/status" ] || continue
  echo "pid $pid"
  grep -E '^(Name|VmRSS):' "/proc/$pid/status" || true
done
`;
}

/** Parses `processStatusScript`'s output (VmRSS is in kB, that is KiB). */
export function parseProcessStatus(output: string): ContainerProcess[] {
  const processes: { pid: number; name: string; rssBytes: number }[] = [];
  for (const line of output.split("\n")) {
    const pid = /^pid (\d+)$/.exec(line.trim());
    if (pid) {
      processes.push({ pid: Number(pid[1]), name: "", rssBytes: 0 });
      continue;
    }
    const current = processes.at(-1);
    if (!current) continue;
    const name = /^Name:\s*(.*)$/.exec(line);
    if (name) current.name = (name[1] ?? "").trim();
    const rss = /^VmRSS:\s*(\d+)\s*kB$/i.exec(line.trim());
    if (rss) current.rssBytes = Number(rss[1]) * 1024;
  }
  return processes;
}

/** The container's processes on the host with their resident sets. */
export async function containerProcesses(exec: HostExec, container: string): Promise<ContainerProcess[]> {
  return parseProcessStatus(await exec(processStatusScript(container)));
}

/**
 * The sum of VmRSS over the container's processes (`docker top`, then `/proc/<pid>/status` on the
 * host), in bytes. Shared pages (the binary, libraries) count once per process, page cache not at
 * all, so it differs from `containerMemoryBytes`: read the two side by side.
 */
export async function processRssBytes(exec: HostExec, container: string): Promise<number> {
  return (await containerProcesses(exec, container)).reduce((sum, p) => sum + p.rssBytes, 0);
}
