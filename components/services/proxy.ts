// The blue/green proxy of a stack on one host: HAProxy (images/proxy) in its own container on the
// stack's Docker network, publishing the blue-green services' host ports and routing each to the
// container of the service's current version. This module renders its config template; the host
// scripts (scripts/proxy-lib.sh) fill in the containers and switch them by graceful reloads.
import type { ServiceSpec } from "../config/index.ts";
import { ServiceArgsError } from "./spec.ts";

// PROXY_SERVICE (the proxy's compose service name) lives in config/update.ts: validation reserves it.
/** Host directory of a stack's proxy files: `${PROXY_STATE_ROOT}/<project>` (template, targets/, haproxy.cfg). */
export const PROXY_STATE_ROOT = "/var/lib/jetson-fleet/proxy";
/**
 * Seconds a proxy being stopped (a new proxy image, a changed set of ports) gets for the requests
 * in flight before it is killed. Short on purpose: it stops listening at once, so waiting out the
 * drain timeout for idle keep-alive connections would only lengthen the gap until its successor
 * binds the ports.
 */
export const PROXY_STOP_SECONDS = 5;
/** Where that directory is mounted, read-only, in the proxy container. */
export const PROXY_CONFIG_DIR = "/usr/local/etc/haproxy";
/** The proxy image's runtime directory: its admin socket (per worker) and master CLI socket. */
export const PROXY_RUN_DIR = "/run/haproxy";

/**
 * The host directory of a stack's proxy files.
 * @example proxyDirectory("fleet-dev") // "/var/lib/jetson-fleet/proxy/fleet-dev"
 */
export function proxyDirectory(project: string): string {
  return `${PROXY_STATE_ROOT}/${project}`;
}

/** One published port of a blue-green service, as the proxy holds it. */
export interface ProxyRoute {
  readonly service: string;
  /** Host address Docker publishes the port on. */
  readonly hostIp: string;
  /** Host port, and the port the proxy listens on inside its own network namespace. */
  readonly published: number;
  /** The service container's port. */
  readonly target: number;
  readonly mode: "http" | "tcp";
}

/**
 * Every TCP port of `services` (callers pass the blue-green ones): hostIp default "0.0.0.0",
 * published default target, mode "http" when the port's appProtocol is "http", else "tcp". UDP
 * ports are left out: HAProxy does not proxy UDP, so they stay published by the service itself.
 */
export function proxyRoutes(services: readonly Pick<ServiceSpec, "name" | "ports">[]): ProxyRoute[] {
  return services.flatMap((s) =>
    s.ports
      .filter((p) => p.protocol === "tcp")
      .map((p) => ({
        service: s.name,
        hostIp: p.hostIp ?? "0.0.0.0",
        published: p.published ?? p.target,
        target: p.target,
        mode: p.appProtocol === "http" ? ("http" as const) : ("tcp" as const),
      })),
  );
}

/** The placeholder a route's server address holds until the host script puts the current container's name there. */
export function proxyTarget(service: string): string {
  return `{{target:${service}}}`;
}

/** `address:port`, an IPv6 address in brackets (as Docker and compose take it). */
function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * Docker's port publishing reaches the proxy on its container address, whatever host address it
 * listens on, so inside the proxy's network namespace a port can carry one route only.
 */
function checkRoutes(routes: readonly ProxyRoute[]): void {
  const seen = new Map<number, ProxyRoute>();
  for (const r of routes) {
    const other = seen.get(r.published);
    if (other) {
      throw new ServiceArgsError(
        `services "${other.service}" and "${r.service}" both publish port ${r.published} (${hostPort(other.hostIp, r.published)} and ${hostPort(r.hostIp, r.published)}); ` +
          "behind the blue-green proxy a published port carries one route, expected distinct published ports",
      );
    }
    seen.set(r.published, r);
  }
}

/**
 * haproxy.cfg template for `routes`: global (master-worker, hard-stop-after = drainTimeoutSeconds,
 * admin socket in the container), defaults, resolvers docker, one listen section per route named
 * `<service>-<published>`, server `<service>` at `proxyTarget(service):<target>` with health checks.
 * Deterministic text.
 *
 * Each listen binds `0.0.0.0:<published>` in the proxy's network namespace: Docker delivers the
 * published port (on `hostIp`, the host side) to the container's address, never to its loopback,
 * so binding `hostIp` inside would receive nothing; the route's host address is in a comment.
 * Two routes on one published port are refused ({@link ServiceArgsError}).
 */
export function renderProxyConfig(routes: readonly ProxyRoute[], options: { readonly drainTimeoutSeconds: number }): string {
  checkRoutes(routes);
  const drain = options.drainTimeoutSeconds;
  if (!Number.isInteger(drain) || drain < 1) {
    throw new ServiceArgsError(`proxy drain timeout ${drain}: expected a whole number of seconds, at least 1`);
  }
  const lines = [
    "# The blue/green proxy of this stack on this host, rendered by jetson-fleet (renderProxyConfig).",
    "# {{target:<service>}} is the service's current container, filled in on the host (proxy-lib.sh).",
    "global",
    "    master-worker",
    // A reload's old worker finishes its open connections for at most this long.
    `    hard-stop-after ${drain}s`,
    `    stats socket ${PROXY_RUN_DIR}/admin.sock mode 600 level admin`,
    "    log stdout format raw local0 notice",
    "",
    "defaults",
    "    log global",
    "    option dontlognull",
    "    timeout connect 5s",
    "    timeout client 1m",
    "    timeout server 1m",
    "    timeout http-request 10s",
    "    timeout http-keep-alive 10s",
    // Upgraded HTTP connections (WebSocket) and long TCP streams (RTSP) idle longer than requests.
    "    timeout tunnel 1h",
    "",
    // Docker's embedded DNS: a container that came back with a new address is found again.
    "resolvers docker",
    "    nameserver docker 127.0.0.11:53",
    "    resolve_retries 3",
    "    timeout resolve 1s",
    "    timeout retry 1s",
    "    hold valid 5s",
    "    hold nx 5s",
    "    hold obsolete 5s",
  ];
  for (const r of routes) {
    lines.push(
      "",
      `listen ${r.service}-${r.published}`,
      `    # published on ${hostPort(r.hostIp, r.published)}`,
      `    mode ${r.mode}`,
      `    bind 0.0.0.0:${r.published}`,
      // HTTP: a keep-alive client's next request goes to the new worker, so a reload loses none.
      ...(r.mode === "http"
        ? ["    option idle-close-on-response", "    option forwardfor"]
        : ["    timeout client 1h", "    timeout server 1h"]),
      // A connect check: the service's own health check gates a switch; this one only tells a
      // target that went away. init-addr libc,none: a missing target does not stop haproxy.
      `    server ${r.service} ${proxyTarget(r.service)}:${r.target} check inter 2s fall 2 rise 1 resolvers docker resolve-prefer ipv4 init-addr libc,none`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The ports the proxy container publishes, compose short syntax "hostIp:published:published/tcp" (the proxy listens on the same port number inside its netns). */
export function proxyPorts(routes: readonly ProxyRoute[]): string[] {
  checkRoutes(routes);
  return routes.map((r) => `${hostPort(r.hostIp, r.published)}:${r.published}/tcp`);
}
