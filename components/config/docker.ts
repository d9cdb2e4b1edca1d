// What the Docker daemon accepts where the stack config passes values straight to it (log
// options, ulimits, capabilities, security options, health checks, mount paths), as data and as
// checks that say what it would refuse when it creates the container.
import { posix } from "node:path";
import { closest, distance } from "fastest-levenshtein";
import { SIZE, parseSize } from "./formats.ts";

/** `; did you mean "x"?` when `value` is a near miss of one of `known`, else nothing. */
export function didYouMean(value: string, known: readonly string[]): string {
  if (known.length === 0) return "";
  const best = closest(value, [...known]);
  return distance(value.toLowerCase(), best.toLowerCase()) <= Math.max(2, Math.floor(best.length / 3)) ? `; did you mean "${best}"?` : "";
}

/** Log drivers that rotate their own files; only they get `DEFAULT_LOG_OPTIONS` when a service gives no options. */
export const ROTATING_LOG_DRIVERS = ["json-file", "local"] as const;
/** Options the Docker daemon accepts for every log driver (delivery mode and its buffer). */
export const LOG_OPTIONS_EVERY_DRIVER = ["mode", "max-buffer-size"] as const;
/**
 * Option names the Docker daemon accepts, by built-in log driver; it refuses any other name when it
 * creates the container. Drivers not listed (syslog, gelf, plugins...) are passed through unchecked.
 */
export const LOG_DRIVER_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  "json-file": ["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"],
  local: ["max-size", "max-file", "compress"],
  journald: ["labels", "labels-regex", "env", "env-regex", "tag"],
};
/** Resource limits Docker knows by name (`--ulimit NAME=soft[:hard]`). */
export const ULIMIT_NAMES = [
  "core",
  "cpu",
  "data",
  "fsize",
  "locks",
  "memlock",
  "msgqueue",
  "nice",
  "nofile",
  "nproc",
  "rss",
  "rtprio",
  "rttime",
  "sigpending",
  "stack",
] as const;
/** Linux capabilities (capabilities(7)) without the `CAP_` prefix, as `capAdd`/`capDrop` take them. */
export const CAPABILITIES = [
  "AUDIT_CONTROL",
  "AUDIT_READ",
  "AUDIT_WRITE",
  "BLOCK_SUSPEND",
  "BPF",
  "CHECKPOINT_RESTORE",
  "CHOWN",
  "DAC_OVERRIDE",
  "DAC_READ_SEARCH",
  "FOWNER",
  "FSETID",
  "IPC_LOCK",
  "IPC_OWNER",
  "KILL",
  "LEASE",
  "LINUX_IMMUTABLE",
  "MAC_ADMIN",
  "MAC_OVERRIDE",
  "MKNOD",
  "NET_ADMIN",
  "NET_BIND_SERVICE",
  "NET_BROADCAST",
  "NET_RAW",
  "PERFMON",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYSLOG",
  "SYS_ADMIN",
  "SYS_BOOT",
  "SYS_CHROOT",
  "SYS_MODULE",
  "SYS_NICE",
  "SYS_PACCT",
  "SYS_PTRACE",
  "SYS_RAWIO",
  "SYS_RESOURCE",
  "SYS_TIME",
  "SYS_TTY_CONFIG",
  "WAKE_ALARM",
] as const;

/** A container path as Docker compares mount points: normalised, without a trailing slash. */
export function containerPath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/+$/, "") : normal;
}

/** How Go's strconv.ParseBool, which the daemon uses for boolean options, spells true and false. */
const GO_BOOLEANS = ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"];
const isGoTrue = (v: string | undefined) => v !== undefined && ["1", "t", "T", "TRUE", "true", "True"].includes(v);

/**
 * Problems with a log driver's options, by option name, as the Docker daemon would refuse them
 * when it creates the container: names the driver does not take, and values it cannot read.
 */
export function logOptionProblems(driver: string, options: Readonly<Record<string, unknown>>): [string, string][] {
  const out: [string, string][] = [];
  const text = (k: string) => {
    const v = options[k];
    return typeof v === "string" ? v : undefined;
  };
  const mode = text("mode");
  if (mode !== undefined && mode !== "blocking" && mode !== "non-blocking") {
    out.push(["mode", `got ${JSON.stringify(mode)}; expected "blocking" or "non-blocking"`]);
  }
  const buffer = text("max-buffer-size");
  if (buffer !== undefined) {
    if (!SIZE.test(buffer)) out.push(["max-buffer-size", `${JSON.stringify(buffer)} is not a size; expected e.g. 4m`]);
    else if (mode !== "non-blocking")
      out.push(["max-buffer-size", 'is only used with mode "non-blocking"; expected mode: "non-blocking" as well']);
  }
  const known = LOG_DRIVER_OPTIONS[driver];
  if (known === undefined) return out;
  for (const key of Object.keys(options)) {
    if ((LOG_OPTIONS_EVERY_DRIVER as readonly string[]).includes(key) || known.includes(key)) continue;
    out.push([
      key,
      `unknown option "${key}" for the ${driver} log driver${didYouMean(key, known)} Expected one of: ${[...known, ...LOG_OPTIONS_EVERY_DRIVER].join(", ")}`,
    ]);
  }
  const maxSize = text("max-size");
  if (maxSize !== undefined && known.includes("max-size") && !((parseSize(maxSize) ?? 0) > 0)) {
    out.push([
      "max-size",
      `${JSON.stringify(maxSize)} is not a size; expected a positive number with an optional unit b, k, m or g, e.g. 10m`,
    ]);
  }
  const maxFile = text("max-file");
  if (maxFile !== undefined && known.includes("max-file") && !/^[1-9][0-9]*$/.test(maxFile)) {
    out.push(["max-file", `${JSON.stringify(maxFile)} is not a file count; expected a whole number of at least 1, e.g. 3`]);
  }
  const compress = text("compress");
  if (compress !== undefined && known.includes("compress")) {
    if (!GO_BOOLEANS.includes(compress))
      out.push(["compress", `${JSON.stringify(compress)} is not true or false; expected "true" or "false"`]);
    else if (driver === "json-file" && isGoTrue(compress) && (maxSize === undefined || !/^[2-9]|^[1-9][0-9]/.test(maxFile ?? "1"))) {
      out.push(["compress", "compresses rotated files, and nothing rotates; expected max-size and a max-file of at least 2 beside it"]);
    }
  }
  return out;
}

/** Why a health check's `test` cannot run, or undefined. */
export function healthTestProblem(test: readonly string[]): string | undefined {
  const forms = '["CMD", "<program>", "<argument>"...], ["CMD-SHELL", "<shell command>"] or ["NONE"]';
  const [kind, ...rest] = test;
  if (kind === undefined) return `is empty; expected ${forms}`;
  if (kind !== "CMD" && kind !== "CMD-SHELL" && kind !== "NONE") {
    return `starts with ${JSON.stringify(kind)}; expected the first element to be "CMD", "CMD-SHELL" or "NONE"`;
  }
  const blank = (v: string | undefined) => v === undefined || v.trim() === "";
  if (kind === "CMD" && blank(rest[0]))
    return `"CMD" is followed by no program; expected ["CMD", "<program>", "<argument>"...], e.g. ["CMD", "curl", "-f", "http://localhost:8080/health"]`;
  if (kind === "CMD-SHELL" && blank(rest[0])) return `"CMD-SHELL" is followed by no command; expected ["CMD-SHELL", "<shell command>"]`;
  if (kind === "NONE" && rest.length > 0) return `"NONE" turns the check off and takes nothing after it; expected ["NONE"]`;
  return undefined;
}

/** Keys a Docker `--security-opt` takes (`key=value`; the deprecated `key:value` still works). */
const SECURITY_OPT_KEYS = ["apparmor", "label", "no-new-privileges", "seccomp", "systempaths", "writable-cgroups"] as const;

/** Why one security option would be refused by Docker, or undefined. */
export function securityOptProblem(value: string): string | undefined {
  const expected =
    "expected no-new-privileges[:true|false], apparmor=PROFILE, seccomp=PROFILE|unconfined, label=..., systempaths=unconfined or writable-cgroups=true|false";
  if (value === "no-new-privileges" || value === "disable") return undefined;
  const sep = value.includes("=") ? "=" : ":";
  const at = value.indexOf(sep);
  if (at <= 0) return `${JSON.stringify(value)} is not a security option; ${expected}`;
  const key = value.slice(0, at);
  const v = value.slice(at + 1);
  if (!(SECURITY_OPT_KEYS as readonly string[]).includes(key)) {
    return `${JSON.stringify(key)} is not a security option${didYouMean(key, SECURITY_OPT_KEYS)} ${expected[0]?.toUpperCase()}${expected.slice(1)}`;
  }
  if ((key === "no-new-privileges" || key === "writable-cgroups") && !GO_BOOLEANS.includes(v)) {
    return `${JSON.stringify(value)}: ${key} takes true or false; expected e.g. ${key}=true`;
  }
  if (key === "systempaths" && v !== "unconfined")
    return `${JSON.stringify(value)}: systempaths takes only unconfined; expected systempaths=unconfined`;
  return undefined;
}

/** `daemon.json` keys the host component owns; stacks set them through `runtime` fields instead. */
export const MANAGED_DAEMON_KEYS = ["runtimes", "default-runtime"] as const;
