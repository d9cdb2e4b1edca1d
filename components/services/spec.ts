// Pure helpers shared by both deploy modes: the pinned form of a service (what the `Service`
// component registers and the policy pack reads), image pinning, sizes and health timeouts.
import type { ServiceSpec } from "../config/index.ts";
import { isDigest, parseDuration, parseImage, parseSize } from "../config/index.ts";

/** A service after defaults, its `image` the digest-pinned reference it deploys (`repo@sha256:…`). */
export type PinnedService = Omit<ServiceSpec, "image"> & { readonly image: string };

/** Errors a user fixes in the services' configuration or the component's arguments. */
export class ServiceArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServiceArgsError";
  }
}

/** The repository part of a reference as written (no tag, no digest): `registry.lab:5000/fleet/inference`. */
export function repositoryOf(ref: string): string {
  const at = ref.indexOf("@");
  const noDigest = at === -1 ? ref : ref.slice(0, at);
  const colon = noDigest.lastIndexOf(":");
  return colon > noDigest.lastIndexOf("/") ? noDigest.slice(0, colon) : noDigest;
}

/**
 * `repo@sha256:…` for a reference that carries a digest (a tag beside it is dropped: the digest
 * is what runs), or undefined for a reference that only has a tag and must be resolved.
 */
export function digestPinned(ref: string): string | undefined {
  const parsed = parseImage(ref);
  if (!parsed) throw new ServiceArgsError(`"${ref}" is not a valid image reference`);
  return parsed.digest ? `${repositoryOf(ref)}@${parsed.digest}` : undefined;
}

/** `repo@digest` after checking the digest. */
export function withDigest(ref: string, digest: string): string {
  if (!isDigest(digest)) throw new ServiceArgsError(`registry answered "${digest}" for ${ref}; expected a sha256 digest`);
  return `${repositoryOf(ref)}@${digest}`;
}

/** Bytes of a Docker size (`2g`, `512m`, `1024`); parsed by `parseSize` (config/formats.ts). */
export function sizeBytes(size: string): number {
  const bytes = parseSize(size);
  if (bytes === undefined) throw new ServiceArgsError(`"${size}" is not a size; expected e.g. 2g or 512m`);
  return bytes;
}

/** Whole megabytes of a size, as `@pulumi/docker` takes memory and shm sizes (rounded up). */
export function sizeMegabytes(size: string): number {
  return Math.ceil(sizeBytes(size) / 1024 ** 2);
}

/** Seconds of a Docker duration (`1m30s` → 90); parsed by `parseDuration` (config/formats.ts). */
export function durationSeconds(duration: string): number {
  const seconds = parseDuration(duration);
  if (seconds === undefined) throw new ServiceArgsError(`"${duration}" is not a duration; expected e.g. 30s or 1m30s`);
  return seconds;
}

/** One environment variable of a service, as every target writes it. */
export interface EnvironmentVariable {
  readonly name: string;
  /** The value as text: compose and Kubernetes take strings only (`8080`, `true` become `"8080"`, `"true"`). */
  readonly value: string;
  /** Whether the value is a secret (its key is one of the service's secret keys). */
  readonly secret: boolean;
}

/**
 * A service's environment as every target renders it (the compose file, the containers mode's
 * `envs`, the Kubernetes container's `env`): sorted by name, since Pulumi hands structured config
 * back with sorted keys and input order is so not stable; values as text; each marked `secret`
 * when its key is in `secretKeys` (keys the service does not set are ignored).
 * @example serviceEnvironment(spec, ["API_TOKEN"]) // [{ name: "API_TOKEN", value: "…", secret: true }, { name: "MODE", value: "live", secret: false }]
 */
export function serviceEnvironment(spec: Pick<ServiceSpec, "environment">, secretKeys: readonly string[] = []): EnvironmentVariable[] {
  const secret = new Set(secretKeys);
  return Object.entries(spec.environment)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value: String(value), secret: secret.has(name) }));
}

/** Seconds a rollout waits, beyond the health check's own worst case, for pulls and restarts. */
export const HEALTH_MARGIN_SECONDS = 30;

/**
 * How long a host waits for its services to become healthy before it rolls back: the longest
 * worst case of any health check (start period, then every retry timing out), plus a margin.
 * Services without a health check only need to be running.
 */
export function healthTimeoutSeconds(services: readonly Pick<ServiceSpec, "healthcheck">[]): number {
  let worst = 0;
  for (const { healthcheck: h } of services) {
    if (!h) continue;
    const seconds = durationSeconds(h.startPeriod) + h.retries * (durationSeconds(h.interval) + durationSeconds(h.timeout));
    worst = Math.max(worst, seconds);
  }
  return Math.ceil(worst) + HEALTH_MARGIN_SECONDS;
}

/** A device mapping `host[:container[:perms]]` in parts (container defaults to host, perms to rwm). */
export function parseDevice(mapping: string): { hostPath: string; containerPath: string; permissions: string } {
  const [hostPath = "", second, third] = mapping.split(":");
  const containerPath = second && second.startsWith("/") ? second : hostPath;
  const permissions = third ?? (second && !second.startsWith("/") ? second : "rwm");
  return { hostPath, containerPath, permissions };
}

/**
 * The services a service starts after: its `dependsOn`, and the service whose IPC namespace it
 * joins (`ipc: service:<name>`), which must be running first (compose orders it the same way).
 */
export function startsAfter(service: Pick<ServiceSpec, "dependsOn"> & { readonly ipc?: string | undefined }): string[] {
  const ipc = service.ipc?.startsWith("service:") ? [service.ipc.slice("service:".length)] : [];
  return [...new Set([...Object.keys(service.dependsOn), ...ipc])];
}

/** Services ordered so every service comes after the ones it starts after (`startsAfter`; config order otherwise). */
export function startOrder<T extends Pick<ServiceSpec, "name" | "dependsOn"> & { readonly ipc?: string | undefined }>(
  services: readonly T[],
): T[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const out: T[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (s: T, path: string[]) => {
    if (state.get(s.name) === "done") return;
    if (state.get(s.name) === "visiting") {
      throw new ServiceArgsError(
        `services depend on each other in a cycle: ${[...path, s.name].join(" -> ")}; expected no cycles in dependsOn`,
      );
    }
    state.set(s.name, "visiting");
    for (const dep of startsAfter(s)) {
      const d = byName.get(dep);
      if (!d) throw new ServiceArgsError(`service "${s.name}" depends on "${dep}", which is not defined`);
      visit(d, [...path, s.name]);
    }
    state.set(s.name, "done");
    out.push(s);
  };
  for (const s of services) visit(s, []);
  return out;
}

/**
 * Environment keys stored as secrets, by service name, from the stack file's secure paths
 * (`services[0].environment.API_TOKEN`, as `pulumi config set --secret --path` writes them).
 * A whole `services` (or `services[i]`, or its `environment`) stored encrypted makes every key of those services secret.
 */
export function secretEnvironmentOf(
  services: readonly Pick<ServiceSpec, "name" | "environment">[],
  securePaths: Iterable<string>,
): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  const add = (i: number, keys: readonly string[]) => {
    const s = services[i];
    if (!s) return;
    const set = (out[s.name] ??= new Set());
    for (const k of keys) if (k in s.environment) set.add(k);
  };
  for (const path of securePaths) {
    if (path === "services") services.forEach((s, i) => add(i, Object.keys(s.environment)));
    const m = /^services\[(\d+)\](?:\.environment(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])?)?$/.exec(path);
    if (!m) continue;
    const i = Number(m[1]);
    const key = m[2] ?? m[3];
    add(i, key !== undefined ? [key] : Object.keys(services[i]?.environment ?? {}));
  }
  return Object.fromEntries(
    Object.entries(out)
      .filter(([, keys]) => keys.size > 0)
      .map(([name, keys]) => [name, [...keys].sort()]),
  );
}
