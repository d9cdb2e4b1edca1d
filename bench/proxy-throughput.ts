// Prints what the blue/green proxy (images/proxy, HAProxy 2.6) costs an HTTP service on this
// machine's Docker: requests/s and p50/p99 latency reached directly and through the proxy, for
//   (a) a host-network service, the proxy on the stack's bridge network reaching it at the
//       network's gateway address (the layout a host-network service behind the proxy gets), and
//       for comparison a proxy on the host network too;
//   (b) a bridge service, the proxy routing to its container name (the usual layout);
// with keep-alive clients and a fresh connection per request (ApacheBench, `ab`, from
// apache2-utils, 8 concurrent clients, a fixed time each), and the proxy's RSS idle and under load.
// The service is the inference image when the local Docker has one (label
// org.opencontainers.image.title "jetson-fleet inference") or the dev registry (127.0.0.1:5000)
// serves inference:dev, requesting its /health; else (or with PROXY_BENCH_SERVICE=web-probe)
// web-probe's /, for which (a) is left out (it listens on every address). The output says which.
// Ports: 127.0.0.1:19171-19176 only (and the bench network's gateway address, port 19171).
//   node bench/proxy-throughput.ts [SECONDS]      (default 8 per measurement)
// Figures are single runs on a shared 2-core machine, the load generator on the same cores: read
// them as ratios measured in the same run.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, chmodSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { PROXY_CONFIG_DIR, proxyTarget, renderProxyConfig, type ProxyRoute } from "../components/index.ts";

const run = promisify(execFile);
const DOCKER = "/usr/bin/docker";
const docker = (...args: string[]) => run(DOCKER, args, { maxBuffer: 64 * 1024 * 1024 });
const seconds = Number(process.argv[2] ?? 8);
const PREFIX = "jf-bench-proxy";
const NETWORK = `${PREFIX}-net`;
const ROOT = join(import.meta.dirname, "..");
const PORT = { hostService: 19171, hostViaProxy: 19172, bridgeDirect: 19173, bridgeViaProxy: 19174, hostViaHostProxy: 19176 };

interface Server {
  readonly what: string;
  readonly image: string;
  /** The path requested. */
  readonly path: string;
  /** The port it listens on in a bridge container. */
  readonly port: number;
  /** docker run arguments (after the image) that make it listen on ADDRESS:PORT in the host network; undefined: it cannot. */
  hostCommand?(address: string, port: number): string[];
}

/** The inference server bound to one address: its server.py listens on every address, which a host-network run here must not. */
const inferenceOn = (address: string) => [
  "python3",
  "-c",
  [
    "import sys, http.server",
    "sys.path.insert(0, '/opt/inference/app')",
    "import server",
    `server.ThreadingHTTPServer = lambda addr, handler: http.server.ThreadingHTTPServer((${JSON.stringify(address)}, addr[1]), handler)`,
    "server.main()",
  ].join("\n"),
];

async function pickServer(): Promise<Server> {
  if (process.env["PROXY_BENCH_SERVICE"] === "web-probe") return webProbe();
  const local = (
    await docker(
      "image",
      "ls",
      "--filter",
      "label=org.opencontainers.image.title=jetson-fleet inference",
      "--format",
      "{{.Repository}}:{{.Tag}}",
    )
  ).stdout
    .split("\n")
    .filter((r) => r && !r.endsWith(":<none>"));
  let image = local[0];
  if (!image) {
    const dev = "127.0.0.1:5000/inference:dev";
    const answered = await fetch("http://127.0.0.1:5000/v2/inference/tags/list", { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (answered) {
      await run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${dev}`, `docker-daemon:${PREFIX}/inference:dev`]);
      image = `${PREFIX}/inference:dev`;
    }
  }
  if (image) {
    return {
      what: `inference (${image}, GET /health)`,
      image,
      path: "/health",
      port: 8080,
      hostCommand: (address, port) => ["env", `PORT=${port}`, ...inferenceOn(address)],
    };
  }
  return webProbe();
}

async function webProbe(): Promise<Server> {
  const probe = `${PREFIX}/web-probe:1`;
  await run(join(ROOT, "images", "web-probe", "build.sh"), [probe, "1"]);
  // web-probe listens on every address: in the host network that is 0.0.0.0, which this machine's
  // tests must not bind, so (a) is left out.
  return { what: `web-probe (${probe}, GET /)`, image: probe, path: "/", port: 8080 };
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
}

/** `ab` for `seconds` against url: requests/s, p50 and p99 (ms, from its percentile CSV), failed. */
async function ab(url: string, keepAlive: boolean, onSample?: () => Promise<void>): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), "jf-bench-ab-"));
  const csv = join(dir, "p.csv");
  const args = ["-q", "-c", "8", "-t", String(seconds), "-n", "10000000", "-s", "5", "-e", csv, ...(keepAlive ? ["-k"] : []), url];
  const done = run("ab", args, { maxBuffer: 16 * 1024 * 1024 });
  let sampling = onSample !== undefined;
  const sampler = (async () => {
    await sleep(1_000);
    while (sampling && onSample) {
      await onSample();
      await sleep(500);
    }
  })();
  const { stdout } = await done;
  sampling = false;
  await sampler;
  const pct = new Map(
    readFileSync(csv, "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.split(",").map(Number) as [number, number]),
  );
  rmSync(dir, { recursive: true, force: true });
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  // Not "Length": a body whose length varies (a health document) is no failure.
  const errors = /\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)/.exec(stdout);
  const failed = (errors ? Number(errors[1]) + Number(errors[2]) + Number(errors[3]) : 0) + (num(/^Non-2xx responses:\s+(\d+)/m) || 0);
  return { rps: num(/^Requests per second:\s+([\d.]+)/m), p50: pct.get(50) ?? NaN, p99: pct.get(99) ?? NaN, failed };
}

/** The summed RSS (MiB) of a container's processes, as the host's ps sees them. */
async function rssMiB(container: string): Promise<number> {
  const { stdout } = await docker("top", container, "-o", "pid,rss");
  return stdout
    .split("\n")
    .slice(1)
    .filter(Boolean)
    .reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[1]) / 1024, 0);
}

async function waitAnswers(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(url, { signal: AbortSignal.timeout(1_000) }).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await sleep(200);
  }
  throw new Error(`${url} does not answer`);
}

async function cleanup(): Promise<void> {
  const { stdout } = await docker("ps", "-aq", "--filter", `name=^${PREFIX}-`);
  const ids = stdout.split("\n").filter(Boolean);
  if (ids.length > 0) await docker("rm", "-f", ...ids);
  await docker("network", "rm", NETWORK).catch(() => undefined);
}

const server = await pickServer();
const proxyImage = (await run(join(ROOT, "images", "proxy", "build.sh"), [])).stdout
  .trim()
  .split("\n")
  .pop()!
  .replace(/^PROXY_IMAGE=/, "");
await cleanup();
const state = mkdtempSync(join(tmpdir(), "jf-bench-proxy-"));
try {
  await docker("network", "create", NETWORK);
  const gateway = (await docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", NETWORK)).stdout.trim();
  console.log(`service: ${server.what}; proxy: ${proxyImage}; ${seconds} s per measurement, ab -c 8`);

  // (b) the bridge service, published directly and routed by the proxy to its container name.
  await docker(
    "run",
    "-d",
    "--name",
    `${PREFIX}-bridge`,
    "--network",
    NETWORK,
    "-p",
    `127.0.0.1:${PORT.bridgeDirect}:${server.port}`,
    server.image,
  );
  const routes: ProxyRoute[] = [
    { service: "bridge", hostIp: "127.0.0.1", published: PORT.bridgeViaProxy, target: server.port, mode: "http" },
  ];
  if (server.hostCommand) {
    // (a) the host-network service, on the bench network's gateway address only.
    await docker(
      "run",
      "-d",
      "--name",
      `${PREFIX}-host`,
      "--network",
      "host",
      server.image,
      ...server.hostCommand(gateway, PORT.hostService),
    );
    routes.push({ service: "host", hostIp: "127.0.0.1", published: PORT.hostViaProxy, target: PORT.hostService, mode: "http" });
  }
  const fill = (text: string) => text.replace(proxyTarget("bridge"), `${PREFIX}-bridge`).replace(proxyTarget("host"), gateway);
  const dir = join(state, "bridge");
  const hostDir = join(state, "host");
  // The proxy's user reads them: 0755 directories, 0644 files.
  await run("install", ["-d", "-m", "0755", dir, hostDir]);
  chmodSync(state, 0o755);
  writeFileSync(join(dir, "haproxy.cfg"), fill(renderProxyConfig(routes, { drainTimeoutSeconds: 30 })), { mode: 0o644 });
  const publish = routes.flatMap((r) => ["-p", `127.0.0.1:${r.published}:${r.published}`]);
  await docker(
    "run",
    "-d",
    "--name",
    `${PREFIX}-proxy`,
    "--network",
    NETWORK,
    ...publish,
    "-v",
    `${dir}:${PROXY_CONFIG_DIR}:ro`,
    proxyImage,
  );
  if (server.hostCommand) {
    // The alternative for a host-network service: a proxy in the host network as well (bound to 127.0.0.1 here).
    const hostRoute: ProxyRoute = {
      service: "host",
      hostIp: "127.0.0.1",
      published: PORT.hostViaHostProxy,
      target: PORT.hostService,
      mode: "http",
    };
    const text = fill(renderProxyConfig([hostRoute], { drainTimeoutSeconds: 30 })).replace(
      `bind 0.0.0.0:${PORT.hostViaHostProxy}`,
      `bind 127.0.0.1:${PORT.hostViaHostProxy}`,
    );
    writeFileSync(join(hostDir, "haproxy.cfg"), text, { mode: 0o644 });
    await docker("run", "-d", "--name", `${PREFIX}-hostproxy`, "--network", "host", "-v", `${hostDir}:${PROXY_CONFIG_DIR}:ro`, proxyImage);
  }

  const url = (address: string, port: number) => `http://${address}:${port}${server.path}`;
  const cases: [string, string, string][] = [
    ["(b) bridge service", url("127.0.0.1", PORT.bridgeDirect), url("127.0.0.1", PORT.bridgeViaProxy)],
  ];
  if (server.hostCommand) {
    cases.unshift(["(a) host-network service, bridge proxy", url(gateway, PORT.hostService), url("127.0.0.1", PORT.hostViaProxy)]);
    cases.push(["(a') host-network service, host-network proxy", url(gateway, PORT.hostService), url("127.0.0.1", PORT.hostViaHostProxy)]);
  }
  for (const [, direct, proxied] of cases) {
    await waitAnswers(direct);
    await waitAnswers(proxied);
  }
  await sleep(2_000);
  const idle = await rssMiB(`${PREFIX}-proxy`);
  let loaded = 0;
  const sample = async () => {
    loaded = Math.max(loaded, await rssMiB(`${PREFIX}-proxy`));
  };
  const fmt = (f: Figures) =>
    `${f.rps.toFixed(0)} req/s, p50 ${f.p50.toFixed(2)} ms, p99 ${f.p99.toFixed(2)} ms${f.failed ? `, ${f.failed} failed` : ""}`;
  for (const [name, direct, proxied] of cases) {
    for (const keepAlive of [true, false]) {
      const d = await ab(direct, keepAlive);
      const p = await ab(proxied, keepAlive, proxied.includes(`:${PORT.hostViaHostProxy}/`) ? undefined : sample);
      const conn = keepAlive ? "keep-alive" : "fresh connections";
      console.log(`${name}, ${conn}: direct ${fmt(d)}; proxy ${fmt(p)}`);
      console.log(
        `  ratio proxy/direct: throughput ${(p.rps / d.rps).toFixed(2)}, p50 ${(p.p50 / d.p50).toFixed(2)}, p99 ${(p.p99 / d.p99).toFixed(2)}` +
          ` (p50 +${(p.p50 - d.p50).toFixed(2)} ms)`,
      );
    }
  }
  console.log(`proxy RSS (master + worker): idle ${idle.toFixed(1)} MiB, under load ${loaded.toFixed(1)} MiB (max of 0.5 s samples)`);
} finally {
  await cleanup();
  rmSync(state, { recursive: true, force: true });
}
