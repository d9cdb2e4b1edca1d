// What a container runs, from `docker inspect`, in a form two deploy modes can be compared by:
// every setting of its Config and HostConfig, the image it runs, the networks it joined, the ports
// and mounts Docker made for it, and its state. Only what legitimately differs between two
// containers of the same spec is left out or normalised (see `containerSettings`); the rest is
// compared as Docker reports it.
import { isDeepStrictEqual } from "node:util";
import type { DevFleet } from "./fleet.ts";
import type { SimHost } from "./jetson-sim.ts";

/** One container as `docker inspect` prints it (the parts read here). */
export interface ContainerInspect {
  readonly Id: string;
  readonly Name: string;
  readonly Image: string;
  readonly Path?: string;
  readonly Args?: readonly string[];
  readonly State: { readonly Status: string; readonly Health?: { readonly Status: string } };
  readonly Config: Record<string, unknown>;
  readonly HostConfig: Record<string, unknown>;
  readonly NetworkSettings: { readonly Networks?: Record<string, unknown> | null; readonly Ports?: Record<string, unknown> | null };
  readonly Mounts?: readonly Record<string, unknown>[] | null;
}

/** A container's settings by path (`HostConfig.ShmSize`, `Config.Env`, ...), normalised. */
export type ContainerSettings = Readonly<Record<string, unknown>>;

/** Labels compose writes on its containers (project, service, config hash, version, ...). */
const COMPOSE_LABEL = /^com\.docker\.compose\./;
/** The containers mode\'s label naming the stack\'s project. */
const PROJECT_LABEL = "jetson-fleet.project";

/** Every container on the host, `docker inspect` of each, by service (compose's label, else the container's name). */
export async function inspectServices(fleet: DevFleet, host: SimHost): Promise<Record<string, ContainerInspect>> {
  const out = await fleet.exec(host, "ids=$(docker ps -aq); if [[ -n $ids ]]; then docker inspect $ids; else echo '[]'; fi");
  const all = JSON.parse(out) as ContainerInspect[];
  const byService: Record<string, ContainerInspect> = {};
  for (const c of all) {
    const labels = (c.Config["Labels"] ?? {}) as Record<string, string>;
    // The containers mode names a blue-green service's container `<service>-<generation>`, and
    // the proxy's `<project>-proxy`; compose names neither so, but labels them.
    const name = c.Name.replace(/^\//, "");
    const service =
      labels["com.docker.compose.service"] ??
      (labels["jetson-fleet.project"] !== undefined && name === `${labels["jetson-fleet.project"]}-proxy`
        ? "jetson-fleet-proxy"
        : name.replace(/-[0-9a-f]{12}$/, ""));
    if (byService[service]) throw new Error(`${host.name}: two containers for service ${service}`);
    byService[service] = c;
  }
  return byService;
}

/** Empty lists and maps, null and absent mean the same to Docker: all become null. */
function emptyToNull(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value) && value.length === 0) return null;
  if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) return null;
  return value;
}

/** A list whose order Docker ignores, in a fixed order. */
function sorted(value: unknown, key: (item: unknown) => string = (item) => JSON.stringify(item)): unknown {
  if (!Array.isArray(value)) return emptyToNull(value);
  return emptyToNull([...(value as unknown[])].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)));
}

const field = (name: string) => (item: unknown) => String((item as Record<string, unknown>)[name]);

/** HostConfig lists Docker treats as sets, with the key they are ordered by. */
const HOST_CONFIG_SETS: Record<string, (item: unknown) => string> = {
  Mounts: field("Target"),
  Binds: (item) => String(item),
  Ulimits: field("Name"),
  CapAdd: (item) => String(item),
  CapDrop: (item) => String(item),
  SecurityOpt: (item) => String(item),
  Devices: field("PathInContainer"),
  DeviceCgroupRules: (item) => String(item),
  GroupAdd: (item) => String(item),
  ExtraHosts: (item) => String(item),
  Dns: (item) => String(item),
  DnsSearch: (item) => String(item),
  DnsOptions: (item) => String(item),
  VolumesFrom: (item) => String(item),
};

/**
 * The settings of one container, normalised only where two containers of the same spec differ
 * legitimately:
 * - left out: the container's name, id, creation and state times, its log, hosts and resolv.conf
 *   paths, its addresses and endpoint/sandbox ids (all per container), and `Config.Hostname`
 *   (the container's id, or with host networking the host's name);
 * - each mode's own bookkeeping labels (compose's `com.docker.compose.*`, the containers mode's
 *   `jetson-fleet.project`) are dropped from `Config.Labels`;
 * - empty lists and maps, null and absent are one value (null);
 * - lists Docker treats as sets (environment, mounts, ulimits, capabilities, security options,
 *   devices, ...) are sorted;
 * - the networks joined are their names; the mounts Docker made keep type, source, destination,
 *   mode, read-write and propagation, an anonymous volume's name (an id) written `<anonymous>`.
 */
export function containerSettings(c: ContainerInspect): ContainerSettings {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(c.Config)) {
    if (key === "Hostname") continue;
    if (key === "Labels") {
      const labels = Object.entries((value ?? {}) as Record<string, string>).filter(([k]) => !COMPOSE_LABEL.test(k) && k !== PROJECT_LABEL);
      out["Config.Labels"] = emptyToNull(Object.fromEntries(labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    } else if (key === "Env") out["Config.Env"] = sorted(value);
    else out[`Config.${key}`] = emptyToNull(value);
  }
  for (const [key, value] of Object.entries(c.HostConfig)) {
    const order = HOST_CONFIG_SETS[key];
    out[`HostConfig.${key}`] = order ? sorted(value, order) : emptyToNull(value);
  }
  out["Image"] = c.Image;
  out["Path"] = c.Path ?? null;
  out["Args"] = emptyToNull(c.Args);
  out["NetworkSettings.Networks"] = emptyToNull(Object.keys(c.NetworkSettings.Networks ?? {}).sort());
  out["NetworkSettings.Ports"] = emptyToNull(
    Object.fromEntries(
      Object.entries(c.NetworkSettings.Ports ?? {})
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([port, bindings]) => [port, sorted(bindings)]),
    ),
  );
  out["Mounts"] = sorted(
    (c.Mounts ?? []).map((m) => ({
      Type: m["Type"],
      ...(m["Type"] === "volume" ? { Name: /^[a-f0-9]{64}$/.test(String(m["Name"])) ? "<anonymous>" : m["Name"] } : {}),
      Source: m["Type"] === "volume" && /^[a-f0-9]{64}$/.test(String(m["Name"])) ? "<anonymous>" : m["Source"],
      Destination: m["Destination"],
      Mode: m["Mode"],
      RW: m["RW"],
      Propagation: m["Propagation"],
    })),
    field("Destination"),
  );
  out["State"] = `${c.State.Status}${c.State.Health ? `/${c.State.Health.Status}` : ""}`;
  return out;
}

/** The settings the comparison names, in the order it reports them, each with the paths it covers. */
export const SETTING_GROUPS: readonly { readonly name: string; readonly paths: RegExp }[] = [
  { name: "image (reference, id)", paths: /^(Config\.Image|Image)$/ },
  { name: "runtime", paths: /^HostConfig\.Runtime$/ },
  {
    name: "network mode",
    paths: /^(HostConfig\.(NetworkMode|Dns|DnsOptions|DnsSearch|ExtraHosts|Links)|NetworkSettings\.Networks|Config\.NetworkDisabled)$/,
  },
  {
    name: "mounts (bind, tmpfs, read-only)",
    paths: /^(HostConfig\.(Mounts|Binds|Tmpfs|VolumesFrom|VolumeDriver)|Config\.Volumes|Mounts)$/,
  },
  {
    name: "memory and CPU limits",
    paths:
      /^HostConfig\.(Memory|MemorySwap|MemoryReservation|MemorySwappiness|KernelMemory|KernelMemoryTCP|OomKillDisable|NanoCpus|CpuShares|CpuPeriod|CpuQuota|CpuRealtimePeriod|CpuRealtimeRuntime|CpusetCpus|CpusetMems|CpuCount|CpuPercent|PidsLimit|Blkio.*|IOMaximum.*|CgroupParent)$/,
  },
  { name: "ulimits", paths: /^HostConfig\.Ulimits$/ },
  { name: "shm size", paths: /^HostConfig\.ShmSize$/ },
  { name: "restart policy", paths: /^HostConfig\.RestartPolicy$/ },
  { name: "log driver and options", paths: /^HostConfig\.LogConfig$/ },
  { name: "healthcheck", paths: /^Config\.Healthcheck$/ },
  { name: "user", paths: /^Config\.User$/ },
  { name: "capabilities", paths: /^HostConfig\.(CapAdd|CapDrop|Capabilities)$/ },
  { name: "security options", paths: /^HostConfig\.(SecurityOpt|Privileged|MaskedPaths|ReadonlyPaths|UsernsMode)$/ },
  { name: "read-only root filesystem", paths: /^HostConfig\.ReadonlyRootfs$/ },
  { name: "environment", paths: /^Config\.Env$/ },
  { name: "devices and GPU requests", paths: /^HostConfig\.(Devices|DeviceRequests|DeviceCgroupRules)$/ },
  { name: "published ports", paths: /^(HostConfig\.(PortBindings|PublishAllPorts)|Config\.ExposedPorts|NetworkSettings\.Ports)$/ },
  { name: "state (running/health)", paths: /^State$/ },
  { name: "everything else in Config and HostConfig", paths: /^/ },
];

/** The first group of `SETTING_GROUPS` covering `path`. */
export function groupOf(path: string): string {
  return SETTING_GROUPS.find((g) => g.paths.test(path))?.name ?? "everything else in Config and HostConfig";
}

/** One setting of one service that two deployments run differently. */
export interface SettingDifference {
  readonly service: string;
  readonly path: string;
  readonly a: unknown;
  readonly b: unknown;
}

/** Every setting (of every service in either) on which `a` and `b` differ, by service then path. */
export function settingDifferences(
  a: Readonly<Record<string, ContainerSettings>>,
  b: Readonly<Record<string, ContainerSettings>>,
): SettingDifference[] {
  const out: SettingDifference[] = [];
  for (const service of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const sa = a[service] ?? {};
    const sb = b[service] ?? {};
    for (const path of [...new Set([...Object.keys(sa), ...Object.keys(sb)])].sort()) {
      const va = sa[path] ?? null;
      const vb = sb[path] ?? null;
      if (!isDeepStrictEqual(va, vb)) out.push({ service, path, a: va, b: vb });
    }
  }
  return out;
}

/** A value for a markdown table cell: JSON, pipes escaped. */
export function cell(value: unknown): string {
  return `\`${JSON.stringify(value).replace(/\|/g, "\\|")}\``;
}
