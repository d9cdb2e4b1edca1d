// The pure compose renderer: a stack's services, with their pinned images, as a standard compose
// file (Compose Specification; read by `docker compose` v2 and `docker-compose` 1.27+). The compose
// deploy mode uploads exactly this text; `docker compose -f - up` runs it locally.
import { posix } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import { DEFAULT_LOG_OPTIONS, DEFAULT_SECURITY_OPT, PROXY_SERVICE, type ServiceSpec } from "../config/index.ts";
import { PROXY_CONFIG_DIR, PROXY_STOP_SECONDS, proxyDirectory, proxyPorts, proxyRoutes } from "./proxy.ts";
import { ServiceArgsError, digestPinned, serviceEnvironment } from "./spec.ts";

/**
 * What a compose project name may be: lower-case letters, digits, `-` and `_`, starting with a
 * letter or digit. `docker compose` refuses anything else; docker-compose 1.x would silently drop
 * the other characters, so two names could meet.
 */
export const COMPOSE_PROJECT_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/**
 * The compose project a stack's services run as on a host: `<Pulumi project>-<stack>` (the running
 * program's unless given), lower-cased, every character a project name may not hold replaced by
 * `-`. Two stacks deploying to one host so get two projects, and neither's `--remove-orphans`
 * touches the other's services.
 * @example composeProjectName("jetson-fleet", "dev") === "jetson-fleet-dev"
 * @example composeProjectName("jetson-fleet", "Prod.EU") === "jetson-fleet-prod-eu"
 */
export function composeProjectName(project = pulumi.getProject(), stack = pulumi.getStack()): string {
  return `${project}-${stack}`
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "-")
    .replace(/^[^a-z0-9]+/, "");
}

/** `project` when it is a valid compose project name (see `COMPOSE_PROJECT_NAME`); throws `ServiceArgsError` otherwise. */
export function checkComposeProject(project: string): string {
  if (!COMPOSE_PROJECT_NAME.test(project)) {
    throw new ServiceArgsError(
      `project ${JSON.stringify(project)} is not a compose project name; expected lower-case letters, digits, "-" and "_", starting with a letter or digit (e.g. "jetson-fleet-dev")`,
    );
  }
  return project;
}

/** One service of a compose file, as the Compose Specification writes it. */
export type ComposeService = Record<string, unknown>;

function pinnedImage(service: ServiceSpec, images: Readonly<Record<string, string>>): string {
  const ref = images[service.name];
  if (ref === undefined) throw new ServiceArgsError(`service "${service.name}" has no pinned image; expected images["${service.name}"]`);
  if (digestPinned(ref) !== ref) {
    throw new ServiceArgsError(`service "${service.name}": "${ref}" is not pinned by digest; expected repository@sha256:<digest>`);
  }
  return ref;
}

/**
 * One service in compose form (keys in the order a reader expects; empty settings left out). A
 * `behindProxy` service publishes no port: the stack's proxy holds its ports (see `ComposeProxy`).
 */
export function composeService(service: ServiceSpec, image: string, behindProxy = false): ComposeService {
  const s = service;
  const out: ComposeService = { image };
  if (s.entrypoint) out["entrypoint"] = [...s.entrypoint];
  if (s.command) out["command"] = [...s.command];
  // Compose wants strings: `true` or 8080 unquoted are rejected or reformatted by some versions.
  const env = serviceEnvironment(s);
  if (env.length > 0) out["environment"] = Object.fromEntries(env.map((e) => [e.name, e.value]));
  out["runtime"] = s.runtime;
  if (s.network === "host") out["network_mode"] = "host";
  else if (s.ports.length > 0 && !behindProxy) {
    // The address always: without one Docker also binds [::], which the containers mode (and the
    // documented default, 0.0.0.0) does not.
    out["ports"] = s.ports.map((p) => `${p.hostIp ?? "0.0.0.0"}:${p.published ?? p.target}:${p.target}/${p.protocol}`);
  }
  if (s.volumes.length > 0) {
    out["volumes"] = s.volumes.map((v) => ({
      type: v.type,
      ...(v.source !== undefined ? { source: v.source } : {}),
      target: v.target,
      ...(v.type === "tmpfs" ? {} : { read_only: v.readOnly }),
    }));
  }
  if (s.devices.length > 0) out["devices"] = [...s.devices];
  if (s.shmSize) out["shm_size"] = s.shmSize;
  if (s.ipc) out["ipc"] = s.ipc;
  const ulimits = Object.entries(s.ulimits);
  if (ulimits.length > 0) out["ulimits"] = Object.fromEntries(ulimits);
  if (s.healthcheck) {
    const h = s.healthcheck;
    out["healthcheck"] = { test: [...h.test], interval: h.interval, timeout: h.timeout, retries: h.retries, start_period: h.startPeriod };
  }
  out["restart"] = s.restart;
  out["logging"] = { driver: s.logging.driver, options: { ...s.logging.options } };
  if (s.resources.cpus !== undefined) out["cpus"] = s.resources.cpus;
  if (s.resources.memory !== undefined) out["mem_limit"] = s.resources.memory;
  if (s.resources.gpus !== undefined) {
    out["deploy"] = { resources: { reservations: { devices: [{ driver: "nvidia", count: s.resources.gpus, capabilities: ["gpu"] }] } } };
  }
  const deps = Object.entries(s.dependsOn);
  if (deps.length > 0) {
    out["depends_on"] = Object.fromEntries(
      deps.map(([name, c]) => [name, { condition: c === "healthy" ? "service_healthy" : "service_started" }]),
    );
  }
  if (Object.keys(s.labels).length > 0) out["labels"] = { ...s.labels };
  if (s.user) out["user"] = s.user;
  if (s.readOnlyRootFilesystem) out["read_only"] = true;
  if (s.capAdd.length > 0) out["cap_add"] = [...s.capAdd];
  if (s.capDrop.length > 0) out["cap_drop"] = [...s.capDrop];
  if (s.securityOpt.length > 0) out["security_opt"] = [...s.securityOpt];
  return out;
}

/** The proxy in a compose file: the blue-green services it holds the ports of, and where its files are. */
export interface ComposeProxy {
  /** The proxy image, pinned by digest. @example "registry.lab:5000/fleet/proxy@sha256:…" */
  readonly image: string;
  /** The compose project name: the proxy's files on the host are `proxyDirectory(project)`. @example "jetson-fleet-prod" */
  readonly project: string;
  /** The services updated blue-green (`updatePlan`), by name; none means no proxy. @example ["web-ui"] */
  readonly services: readonly string[];
}

/** The proxy's compose service: the blue-green services' ports, its files read-only, started after them. */
export function composeProxyService(proxy: ComposeProxy, services: readonly ServiceSpec[]): ComposeService {
  const held = services.filter((s) => proxy.services.includes(s.name));
  return {
    image: proxy.image,
    // Whatever the daemon's default runtime (nvidia on a Jetson set up for GPU builds): it needs no GPU.
    runtime: "runc",
    ports: proxyPorts(proxyRoutes(held)),
    volumes: [{ type: "bind", source: proxyDirectory(proxy.project), target: PROXY_CONFIG_DIR, read_only: true }],
    restart: "unless-stopped",
    // Requests in flight finish when it stops; idle connections are not waited for (PROXY_STOP_SECONDS).
    stop_grace_period: `${PROXY_STOP_SECONDS}s`,
    logging: { driver: "json-file", options: { ...DEFAULT_LOG_OPTIONS } },
    // After them: a service moving behind the proxy frees its host ports when compose recreates it.
    depends_on: Object.fromEntries(held.map((s) => [s.name, { condition: "service_started" }])),
    security_opt: [...DEFAULT_SECURITY_OPT],
  };
}

/**
 * The compose file for `services` (validated `ServiceSpec`s, defaults applied), each running the
 * digest-pinned image `images[<service name>]`, and with `proxy` the stack's proxy
 * (`jetson-fleet-proxy`), which holds the ports of its blue-green services. Named volumes are
 * declared at the top level. Throws `ServiceArgsError` when a service's image is missing or not
 * pinned by digest.
 */
export function renderComposeFile(
  services: readonly ServiceSpec[],
  images: Readonly<Record<string, string>>,
  proxy?: ComposeProxy,
): string {
  const behind = new Set(proxy?.services ?? []);
  const entries: [string, ComposeService][] = services.map((s) => [s.name, composeService(s, pinnedImage(s, images), behind.has(s.name))]);
  if (proxy && behind.size > 0) {
    if (digestPinned(proxy.image) !== proxy.image) {
      throw new ServiceArgsError(`the proxy image "${proxy.image}" is not pinned by digest; expected repository@sha256:<digest>`);
    }
    entries.push([PROXY_SERVICE, composeProxyService(proxy, services)]);
  }
  // No top-level `name`: docker-compose 1.x rejects it; the project name is compose-apply.sh's `-p PROJECT`.
  const doc: Record<string, unknown> = { services: Object.fromEntries(entries) };
  const named = [...new Set(services.flatMap((s) => s.volumes.filter((v) => v.type === "volume").flatMap((v) => v.source ?? [])))];
  if (named.length > 0) doc["volumes"] = Object.fromEntries(named.map((n) => [n, {}]));
  return stringify(doc, { lineWidth: 0 });
}

/** A bind mount's host directory that the apply creates when it is missing (see `bindSources`). */
export interface BindSource {
  /** Absolute host path, normalized (no `.`, `..`, doubled or trailing `/`). */
  readonly path: string;
  /** Who gets the directory, as `chown` takes it: `uid:gid`, `uid` (group root), or `0:0`. */
  readonly owner: string;
}

const NUMERIC_USER = /^[0-9]+(:[0-9]+)?$/;
const ROOT = "0:0";

/**
 * The host directories the bind mounts of `services` need, parents first: docker-compose 1.29
 * (and `docker compose` with the long syntax) refuses a bind source that does not exist. Each is
 * owned by the numeric `user` of the first service (file order) that mounts it read-write, so a
 * non-root service can write its output; otherwise by root (`0:0`); the apply creates it mode
 * 0755. Only absolute sources: compose resolves a relative one against the compose file's
 * directory on the host, which is the tool's state, not a place for data. A service `user` given
 * by name cannot be resolved here and counts as root. Throws `ServiceArgsError` for a source
 * holding a line break (the list travels one path per line).
 * @example bindSources([inference]) // [{ path: "/opt/fleet/models", owner: "0:0" }, { path: "/opt/fleet/output", owner: "10001:10001" }]
 */
export function bindSources(services: readonly ServiceSpec[]): BindSource[] {
  // undefined: root's, unless a later read-write mount names a numeric user.
  const owners = new Map<string, string | undefined>();
  for (const s of services) {
    for (const v of s.volumes) {
      if (v.type !== "bind" || v.source === undefined || !v.source.startsWith("/")) continue;
      if (/[\n\r\0]/.test(v.source)) {
        throw new ServiceArgsError(
          `service "${s.name}": bind mount source ${JSON.stringify(v.source)} holds a line break or NUL; expected a plain host path`,
        );
      }
      const path = posix.normalize(v.source).replace(/(.)\/+$/, "$1");
      const owner = !v.readOnly && s.user !== undefined && NUMERIC_USER.test(s.user) ? s.user : undefined;
      if (owners.get(path) === undefined) owners.set(path, owner);
    }
  }
  // A parent sorts before its children, so it is created with its own owner, not as a child's parent.
  return [...owners].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([path, owner]) => ({ path, owner: owner ?? ROOT }));
}

/** `sources` as compose-apply.sh's BIND_SOURCES takes them: one `OWNER PATH` line each. */
export function renderBindSources(sources: readonly BindSource[]): string {
  return sources.map((s) => `${s.owner} ${s.path}\n`).join("");
}
