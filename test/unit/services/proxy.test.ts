// The blue/green proxy's pure helpers, by table: which ports become routes, the ports the proxy
// publishes, the exact haproxy.cfg template, the refusals, and the host script with its library.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import {
  PROXY_CONFIG_DIR,
  PROXY_SERVICE,
  PROXY_STATE_ROOT,
  ServiceArgsError,
  ServiceSpec,
  proxyDirectory,
  proxyPorts,
  proxyRoutes,
  proxyTarget,
  renderProxyConfig,
  renderServiceScript,
  type ProxyRoute,
} from "../../../components/index.ts";

const svc = (name: string, ports: unknown[]) => ServiceSpec.parse({ name, image: `registry.lab:5000/fleet/${name}:1`, ports });

/** What every template starts with, for drainTimeoutSeconds 30. */
const HEAD = `# The blue/green proxy of this stack on this host, rendered by jetson-fleet (renderProxyConfig).
# {{target:<service>}} is the service's current container, filled in on the host (proxy-lib.sh).
global
    master-worker
    hard-stop-after 30s
    stats socket /run/haproxy/admin.sock mode 600 level admin
    log stdout format raw local0 notice

defaults
    log global
    option dontlognull
    timeout connect 5s
    timeout client 1m
    timeout server 1m
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout tunnel 1h

resolvers docker
    nameserver docker 127.0.0.11:53
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 5s
    hold nx 5s
    hold obsolete 5s
`;
const SERVER = "check inter 2s fall 2 rise 1 resolvers docker resolve-prefer ipv4 init-addr libc,none";

describe("services: blue/green proxy", () => {
  it("names its files and container", () => {
    assert.deepEqual(
      [PROXY_SERVICE, PROXY_STATE_ROOT, PROXY_CONFIG_DIR, proxyDirectory("fleet-dev"), proxyTarget("web-ui")],
      [
        "jetson-fleet-proxy",
        "/var/lib/jetson-fleet/proxy",
        "/usr/local/etc/haproxy",
        "/var/lib/jetson-fleet/proxy/fleet-dev",
        "{{target:web-ui}}",
      ],
    );
  });

  it("routes every TCP port, with the defaults of the port mapping", () => {
    /** [ports of service "web", routes] */
    const TABLE: [unknown[], ProxyRoute[]][] = [
      [[], []],
      [[{ target: 8080 }], [{ service: "web", hostIp: "0.0.0.0", published: 8080, target: 8080, mode: "tcp" }]],
      [
        [{ target: 80, published: 8088, hostIp: "127.0.0.1", appProtocol: "http" }],
        [{ service: "web", hostIp: "127.0.0.1", published: 8088, target: 80, mode: "http" }],
      ],
      [[{ target: 8554, appProtocol: "tcp" }], [{ service: "web", hostIp: "0.0.0.0", published: 8554, target: 8554, mode: "tcp" }]],
      // UDP stays the service's own: HAProxy proxies no UDP.
      [[{ target: 8189, protocol: "udp" }], []],
      [
        [{ target: 8889, hostIp: "::1", appProtocol: "http" }, { target: 8189, protocol: "udp" }, { target: 8554 }],
        [
          { service: "web", hostIp: "::1", published: 8889, target: 8889, mode: "http" },
          { service: "web", hostIp: "0.0.0.0", published: 8554, target: 8554, mode: "tcp" },
        ],
      ],
    ];
    for (const [ports, routes] of TABLE) assert.deepEqual(proxyRoutes([svc("web", ports)]), routes, JSON.stringify(ports));
    assert.deepEqual(
      proxyRoutes([svc("a", [{ target: 1 }]), svc("b", [{ target: 2 }])]).map((r) => r.service),
      ["a", "b"],
    );
  });

  it("publishes each route's port on its host address, the same number inside", () => {
    const TABLE: [ProxyRoute[], string[]][] = [
      [[], []],
      [[{ service: "web", hostIp: "0.0.0.0", published: 8088, target: 80, mode: "http" }], ["0.0.0.0:8088:8088/tcp"]],
      [
        [
          { service: "web", hostIp: "127.0.0.1", published: 19101, target: 8080, mode: "http" },
          { service: "rtsp", hostIp: "::1", published: 8554, target: 8554, mode: "tcp" },
          { service: "rtsp", hostIp: "fd00::5", published: 8555, target: 8554, mode: "tcp" },
        ],
        ["127.0.0.1:19101:19101/tcp", "[::1]:8554:8554/tcp", "[fd00::5]:8555:8555/tcp"],
      ],
    ];
    for (const [routes, ports] of TABLE) assert.deepEqual(proxyPorts(routes), ports);
  });

  it("renders the template: global, defaults, resolvers, one listen per route", () => {
    const routes = proxyRoutes([
      svc("web-ui", [{ target: 80, published: 8088, appProtocol: "http" }]),
      svc("mediamtx", [
        { target: 8554, hostIp: "::1" },
        { target: 8189, protocol: "udp" },
      ]),
    ]);
    const text = renderProxyConfig(routes, { drainTimeoutSeconds: 30 });
    assert.equal(
      text,
      `${HEAD}
listen web-ui-8088
    # published on 0.0.0.0:8088
    mode http
    bind 0.0.0.0:8088
    option idle-close-on-response
    option forwardfor
    server web-ui {{target:web-ui}}:80 ${SERVER}

listen mediamtx-8554
    # published on [::1]:8554
    mode tcp
    bind 0.0.0.0:8554
    timeout client 1h
    timeout server 1h
    server mediamtx {{target:mediamtx}}:8554 ${SERVER}
`,
    );
    assert.equal(renderProxyConfig(routes, { drainTimeoutSeconds: 30 }), text, "deterministic");
    assert.equal(renderProxyConfig([], { drainTimeoutSeconds: 30 }), HEAD);
    assert.match(renderProxyConfig([], { drainTimeoutSeconds: 600 }), /^ {4}hard-stop-after 600s$/m);
  });

  it("refuses what the proxy cannot route, in one sentence", () => {
    const route = (service: string, hostIp: string, published: number): ProxyRoute => ({
      service,
      hostIp,
      published,
      target: 80,
      mode: "http",
    });
    const twice = [route("web", "127.0.0.1", 8080), route("api", "::1", 8080)];
    const message =
      'services "web" and "api" both publish port 8080 (127.0.0.1:8080 and [::1]:8080); behind the blue-green proxy a published port carries one route, expected distinct published ports';
    for (const render of [() => renderProxyConfig(twice, { drainTimeoutSeconds: 30 }), () => proxyPorts(twice)]) {
      assert.throws(render, (e: unknown) => e instanceof ServiceArgsError && e.message === message);
    }
    for (const drain of [0, 1.5, -3]) {
      assert.throws(
        () => renderProxyConfig([], { drainTimeoutSeconds: drain }),
        (e: unknown) =>
          e instanceof ServiceArgsError && e.message === `proxy drain timeout ${drain}: expected a whole number of seconds, at least 1`,
      );
    }
  });

  it("inlines the proxy library into the switch script, which bash parses", () => {
    const script = renderServiceScript("proxy-switch");
    assert.doesNotMatch(script, /^source /m);
    assert.doesNotMatch(script, /shellcheck shell=bash/);
    for (const fn of ["proxy_install", "proxy_switch", "proxy_reload", "proxy_forget", "wait_container_healthy"]) {
      assert.match(script, new RegExp(`^${fn}\\(\\) \\{$`, "m"), fn);
    }
    execFileSync("bash", ["-n"], { input: script });
    // The other scripts keep their single library.
    assert.doesNotMatch(renderServiceScript("compose-apply"), /^source /m);
    assert.doesNotMatch(renderServiceScript("container-handover"), /^source /m);
  });
});
