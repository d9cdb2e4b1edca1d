// How each service is updated on its hosts: `blue-green` (the new version starts beside the old
// one behind the stack's proxy, which switches once it is healthy) or `recreate` (stop, then
// start). One set of rules, read by the config's validation (an explicit `blue-green` that cannot
// work is refused) and by the deploy modes (the default, and why). The rules read a service
// defensively, as validation sees it before defaults (see refinements.ts).

/** The per-host proxy's compose service name and container name suffix: no service may take it. */
export const PROXY_SERVICE = "jetson-fleet-proxy";

/** How a service's containers are replaced by a new version on a host. */
export type UpdateStrategy = "blue-green" | "recreate";

/** What a service is updated by, and why, as previews and the README say. */
export interface UpdatePlan {
  /** `blue-green` (beside the old version, then switched by the proxy) or `recreate` (stop, then start). @example "blue-green" */
  readonly strategy: UpdateStrategy;
  /** One clause: why this strategy. @example "publishes TCP port 18080 and has a health check" */
  readonly reason: string;
}

/** A service as the rules read it: a parsed `ServiceSpec`, or the config as written (validation). */
export type ServiceFields = Readonly<Record<string, unknown>>;

const isObject = (v: unknown): v is ServiceFields => typeof v === "object" && v !== null && !Array.isArray(v);
const list = (v: unknown): ServiceFields[] => (Array.isArray(v) ? v.filter(isObject) : []);
const portNumber = (p: ServiceFields): unknown => p["published"] ?? p["target"];

/** The TCP host ports a service publishes (bridge networking), as `18080`, `8088`. */
function tcpPorts(service: ServiceFields): string[] {
  return list(service["ports"])
    .filter((p) => (p["protocol"] ?? "tcp") === "tcp")
    .map((p) => String(portNumber(p)));
}

/**
 * Why `service` cannot be updated blue-green on a host, or undefined when it can. `services` are
 * all of the stack's (another may join its IPC namespace); `proxy` says whether the stack has one.
 * An explicit `update: blue-green` with a reason is refused by validation.
 */
export function blueGreenRefusal(service: ServiceFields, services: readonly ServiceFields[], proxy: boolean): string | undefined {
  if (service["network"] === "host") return "it uses host networking: two versions cannot listen on one host port at once";
  const udp = list(service["ports"]).find((p) => p["protocol"] === "udp");
  if (udp) return `it publishes UDP port ${String(portNumber(udp))}, which the proxy does not carry`;
  if (tcpPorts(service).length === 0) return "it publishes no TCP port for the proxy to switch";
  const check = service["healthcheck"];
  if (!isObject(check) || (Array.isArray(check["test"]) && check["test"][0] === "NONE")) {
    return "it has no health check to tell when the new version is ready";
  }
  const name = service["name"];
  const joiner = services.find((s) => typeof name === "string" && s["ipc"] === `service:${name}`);
  if (joiner) return `service "${String(joiner["name"])}" joins its IPC namespace, which one of two versions would then hold`;
  if (!proxy) return "the stack has no proxy (jetson-fleet:proxy)";
  return undefined;
}

/**
 * Why blue-green, though it would work, is not the default for `service`: what a second copy
 * during the switch would share or cost. An explicit `update: blue-green` accepts it.
 */
export function blueGreenCaution(service: ServiceFields): string | undefined {
  const resources = isObject(service["resources"]) ? service["resources"] : {};
  if (resources["gpus"] !== undefined || service["runtime"] === "nvidia") {
    return "it uses the GPU: a second copy during the switch needs its memory twice";
  }
  const devices = Array.isArray(service["devices"]) ? service["devices"].filter((d) => typeof d === "string") : [];
  if (devices.length > 0) return `it passes devices through (${devices.join(", ")}), which two copies may not share`;
  return undefined;
}

/**
 * The update plan of `service`: its `update` when set (validation has refused one that cannot
 * work), else `blue-green` when it can work and costs nothing extra, `recreate` otherwise; the
 * reason says which rule decided.
 * @example updatePlan(probe, services, true) // { strategy: "blue-green", reason: "publishes TCP port 18080 and has a health check" }
 */
export function updatePlan(service: ServiceFields, services: readonly ServiceFields[], proxy: boolean): UpdatePlan {
  const refusal = blueGreenRefusal(service, services, proxy);
  if (service["update"] === "recreate") return { strategy: "recreate", reason: "update: recreate is set" };
  if (service["update"] === "blue-green" && refusal === undefined) return { strategy: "blue-green", reason: "update: blue-green is set" };
  if (refusal !== undefined) return { strategy: "recreate", reason: refusal.replace(/^it /, "") };
  const caution = blueGreenCaution(service);
  if (caution !== undefined) return { strategy: "recreate", reason: caution.replace(/^it /, "") };
  const ports = tcpPorts(service);
  return {
    strategy: "blue-green",
    reason: `publishes TCP port${ports.length > 1 ? "s" : ""} ${ports.join(", ")} and has a health check`,
  };
}
