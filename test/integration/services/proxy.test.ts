// The blue/green proxy on this machine's Docker: the proxy image (images/proxy/build.sh) on a user
// network of its own, publishing one HTTP route on 127.0.0.1, web-probe backends beside it, and
// the host scripts driven as the containers mode runs them (proxy-switch.sh with its environment)
// or through a small harness that sources proxy-lib.sh. Under a request loop (keep-alive and fresh
// connections) a switch loses no request and moves every answer to the new version; a broken
// release is refused with the exact message, never answers, and is removed; a template haproxy
// refuses leaves the old config serving; a restarted proxy routes to the recorded targets; a
// forgotten route answers 503. Everything it makes carries one unique name prefix and goes at the end.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { PROXY_CONFIG_DIR, ServiceSpec, proxyPorts, proxyRoutes, renderProxyConfig } from "../../../components/index.ts";
import { startLoad } from "../../support/load.ts";
import { DOCKER, docker, run } from "../../support/services.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SCRIPTS = join(ROOT, "components", "services", "scripts");
const PREFIX = `jf-proxy-it-${process.pid}`;
const PROJECT = "proxy-it";
const HOST = "test-host";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bash with `env` added to this process's environment; never rejects. */
function bash(args: string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve) => {
    execFile("bash", args, { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A free port on 127.0.0.1 within 19100-19199 (the range tests on this machine may bind). */
async function freeRangePort(taken: readonly number[] = []): Promise<number> {
  for (let port = 19100 + (process.pid % 100), n = 0; n < 100; n++, port = port === 19199 ? 19100 : port + 1) {
    if (taken.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free port in 127.0.0.1:19100-19199");
}

describe("blue/green proxy on this machine's Docker", { timeout: 10 * 60_000 }, () => {
  const state = mkdtempSync(join(tmpdir(), "jetson-fleet-proxy-"));
  const dir = join(state, PROJECT);
  const proxy = `${PREFIX}-proxy`;
  const network = `${PREFIX}-net`;
  const image = { v1: `${PREFIX}-probe:1`, v2: `${PREFIX}-probe:2`, bad: `${PREFIX}-probe:bad` };
  let proxyImage = "";
  let port = 0;
  let url = "";
  /** A second service, routed by TCP. */
  let apiUrl = "";
  let template = "";

  /** The containers mode's step: proxy-switch.sh with `env`. */
  const step = (env: Record<string, string>) =>
    bash([join(SCRIPTS, "proxy-switch.sh")], { PROJECT, HOST_NAME: HOST, PROXY_CONTAINER: proxy, PROXY_ROOT: state, ...env });
  /** One library function through a harness that sources proxy-lib.sh; stdout ends with the globals it sets. */
  const lib = (...args: string[]) =>
    bash(
      [
        "-c",
        `set -uo pipefail; source ${SCRIPTS}/proxy-lib.sh; "$@"; rc=$?; echo "proxy_error=$proxy_error"; echo "health_output=$health_output"; exit $rc`,
        "harness",
        ...args,
      ],
      {},
    );
  const backend = async (name: string, img: string) => {
    await docker("run", "-d", "--name", `${PREFIX}-${name}`, "--network", network, img);
    return `${PREFIX}-${name}`;
  };
  const get = async (to = url): Promise<string> => {
    const res = await fetch(to, { signal: AbortSignal.timeout(3_000) });
    return res.status === 200 ? (await res.text()).trim() : `HTTP ${res.status}`;
  };
  /** The master's reload count (show proc), to tell a no-op from a reload. */
  const reloads = async () => {
    const { stdout } = await run("bash", [
      "-c",
      `echo 'show proc' | ${DOCKER} exec -i ${proxy} socat -t 2 - UNIX-CONNECT:/run/haproxy/master.sock`,
    ]);
    return Number(/^\d+\s+master\s+(\d+)/m.exec(stdout)?.[1]);
  };
  const healthy = async (name: string) => {
    for (let i = 0; i < 120; i++) {
      const { stdout } = await docker("inspect", "-f", "{{.State.Health.Status}}", name);
      if (stdout.trim() === "healthy") return;
      await sleep(250);
    }
    throw new Error(`${name} did not become healthy`);
  };

  before(
    async () => {
      const built = await run(join(ROOT, "images", "proxy", "build.sh"), [], { maxBuffer: 16 * 1024 * 1024 });
      proxyImage = /^PROXY_IMAGE=(\S+)$/m.exec(built.stdout)?.[1] ?? "";
      assert.match(proxyImage, /^jetson-fleet\/proxy:2\.6\.\d+-[0-9a-f]{12}$/);
      const probe = join(ROOT, "images", "web-probe", "build.sh");
      await Promise.all([
        run(probe, [image.v1, "1", "true"]),
        run(probe, [image.v2, "2", "true"]),
        run(probe, [image.bad, "bad", "false"]),
      ]);
      await docker("network", "create", network);
      port = await freeRangePort();
      url = `http://127.0.0.1:${port}/`;
      const apiPort = await freeRangePort([port]);
      apiUrl = `http://127.0.0.1:${apiPort}/`;
      const routes = proxyRoutes([
        ServiceSpec.parse({
          name: "web",
          image: "web-probe:1",
          ports: [{ target: 8080, published: port, hostIp: "127.0.0.1", appProtocol: "http" }],
        }),
        ServiceSpec.parse({ name: "api", image: "web-probe:1", ports: [{ target: 8080, published: apiPort, hostIp: "127.0.0.1" }] }),
      ]);
      template = renderProxyConfig(routes, { drainTimeoutSeconds: 5 });
      const installed = await step({ ACTION: "config", PROXY_CONFIG: template });
      assert.equal(installed.code, 0, installed.stderr);
      assert.equal(
        installed.stderr,
        `proxy-switch: host ${HOST}: installed the proxy config of ${PROJECT}; ${proxy} is not running, it loads the config when it starts\n`,
      );
      const publish = proxyPorts(routes).flatMap((p) => ["-p", p]);
      await docker("run", "-d", "--name", proxy, "--network", network, ...publish, "-v", `${dir}:${PROXY_CONFIG_DIR}:ro`, proxyImage);
      await healthy(proxy);
    },
    { timeout: 8 * 60_000 },
  );
  after(async () => {
    const { stdout } = await docker("ps", "-aq", "--filter", `name=^${PREFIX}-`);
    const ids = stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await docker("rm", "-f", ...ids);
    await docker("network", "rm", network).catch(() => undefined);
    await docker("rmi", image.v1, image.v2, image.bad).catch(() => undefined);
    rmSync(state, { recursive: true, force: true });
  });

  it("answers 503 for a service with no target yet, then routes to the first one", async () => {
    assert.equal(await get(), "HTTP 503");
    const v1 = await backend("v1", image.v1);
    const r = await step({ ACTION: "switch", SERVICE: "web", CONTAINER: v1, IMAGE: image.v1, HEALTH_TIMEOUT: "60" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `switched web to ${v1}\n`);
    assert.equal(await get(), "1");
    assert.equal(readFileSync(join(dir, "targets", "web"), "utf8"), `${v1}\n`);
  });

  it("switches under load without losing a request, every answer then from v2; a re-run reloads nothing", async (t) => {
    const v2 = await backend("v2", image.v2);
    const load = startLoad([{ name: "web", url }], { workers: 4, pauseMs: 2 });
    await sleep(1_500);
    load.mark("switch");
    const r = await step({ ACTION: "switch", SERVICE: "web", CONTAINER: v2, IMAGE: image.v2, HEALTH_TIMEOUT: "60" });
    await sleep(1_500);
    const figures = (await load.stop())["web"]!;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `switched web to ${v2}\n`);
    const samples = load.samples("web");
    const byConnection = (c: string) => samples.filter((s) => s.connection === c).length;
    t.diagnostic(
      `${figures.requests} requests (${byConnection("keep-alive")} keep-alive, ${byConnection("fresh")} fresh), ${figures.failed} failed, ` +
        `answers ${JSON.stringify(figures.answers)}, longest gap ${figures.longestGapMs.toFixed(0)} ms`,
    );
    assert.ok(byConnection("keep-alive") > 50 && byConnection("fresh") > 50, JSON.stringify(figures));
    assert.equal(figures.failed, 0, JSON.stringify(figures.failures));
    assert.equal(figures.retried, 0);
    assert.deepEqual(Object.keys(figures.answers).sort(), ["1", "2"]);
    // After the switch returned, nothing answers from v1 any more.
    const last1 = figures.answeredFrom["1"]!.last;
    assert.ok(samples.filter((s) => s.t > last1).every((s) => s.answer === "2"));
    assert.ok(samples.filter((s) => s.answer === "2").length > 20);
    for (let i = 0; i < 20; i++) assert.equal(await get(), "2");

    const before = await reloads();
    const again = await step({ ACTION: "switch", SERVICE: "web", CONTAINER: v2, IMAGE: image.v2 });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, `switched web to ${v2}\n`);
    assert.equal(await reloads(), before);
  });

  it("refuses a broken release: exact message, never answers, removed, the old one serving", async () => {
    const bad = await backend("bad", image.bad);
    const load = startLoad([{ name: "web", url }], { workers: 2 });
    const r = await step({ ACTION: "switch", SERVICE: "web", CONTAINER: bad, IMAGE: image.bad, HEALTH_TIMEOUT: "60" });
    const figures = (await load.stop())["web"]!;
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `proxy-switch: host ${HOST}: service web is not healthy after the update to ${image.bad}; health output: 503 version bad: model failed to load; ` +
        `traffic stayed on the previous version (${PREFIX}-v2), the new container was removed\n`,
    );
    assert.deepEqual(figures.answers, { "2": figures.requests });
    assert.equal(figures.failed, 0);
    assert.equal((await docker("ps", "-aq", "--filter", `name=^${bad}$`)).stdout, "");
    assert.equal(readFileSync(join(dir, "targets", "web"), "utf8"), `${PREFIX}-v2\n`);
    assert.equal(await get(), "2");
  });

  it("keeps serving the old config when haproxy refuses a template, and says why", async () => {
    const live = readFileSync(join(dir, "haproxy.cfg"), "utf8");
    const before = await reloads();
    const broken = template.replace("option idle-close-on-response", "option no-such-option");
    const r = await step({ ACTION: "config", PROXY_CONFIG: broken });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `proxy-switch: host ${HOST}: the proxy ${proxy} kept its previous config: haproxy refused the config: ` +
        `config : parsing [${PROXY_CONFIG_DIR}/haproxy.cfg.next:32] : unknown option 'no-such-option'; the previous template was put back\n`,
    );
    assert.equal(readFileSync(join(dir, "haproxy.cfg"), "utf8"), live);
    assert.equal(readFileSync(join(dir, "haproxy.cfg.tmpl"), "utf8"), template);
    assert.equal(await reloads(), before);
    assert.equal(await get(), "2");
    // The library's own contract, through the harness: 1 and the reason in proxy_error.
    const installed = await lib("proxy_install", dir, broken);
    assert.equal(installed.code, 0, installed.stdout);
    const reloaded = await lib("proxy_reload", dir, proxy);
    assert.equal(reloaded.code, 1);
    assert.match(
      reloaded.stdout,
      /^proxy_error=haproxy refused the config: config : parsing \[.*haproxy\.cfg\.next:32\] : unknown option 'no-such-option'; the previous template was put back$/m,
    );
    assert.equal(readFileSync(join(dir, "haproxy.cfg"), "utf8"), live);
    // The compose mode's way: install, then a switch loads the pending template; refused, it goes back too.
    await lib("proxy_install", dir, broken);
    const switched = await lib("proxy_switch", dir, proxy, "web", `${PREFIX}-v1`);
    assert.equal(switched.code, 1);
    assert.match(
      switched.stdout,
      /^proxy_error=haproxy refused the config: .*unknown option 'no-such-option'; the previous template was put back$/m,
    );
    assert.deepEqual(
      [
        readFileSync(join(dir, "haproxy.cfg"), "utf8"),
        readFileSync(join(dir, "haproxy.cfg.tmpl"), "utf8"),
        readFileSync(join(dir, "targets", "web"), "utf8"),
      ],
      [live, template, `${PREFIX}-v2\n`],
    );
    assert.equal(await get(), "2");
    // An unchanged template: nothing to load.
    const same = await step({ ACTION: "config", PROXY_CONFIG: template });
    assert.equal(same.code, 0, same.stderr);
    assert.equal(await reloads(), before);
  });

  it("routes to the recorded targets after the proxy container restarts", async () => {
    await docker("restart", proxy);
    await healthy(proxy);
    for (let i = 0; i < 10; i++) assert.equal(await get(), "2");
  });

  it("switches two services at once, an HTTP and a TCP route, one reload after the other", async () => {
    const api = await backend("api-2", image.v2);
    const before = await reloads();
    const [web, other] = await Promise.all([
      step({ ACTION: "switch", SERVICE: "web", CONTAINER: `${PREFIX}-v1`, IMAGE: image.v1 }),
      step({ ACTION: "switch", SERVICE: "api", CONTAINER: api, IMAGE: image.v2, HEALTH_TIMEOUT: "60" }),
    ]);
    assert.deepEqual(
      [web.code, web.stdout, other.code, other.stdout],
      [0, `switched web to ${PREFIX}-v1\n`, 0, `switched api to ${api}\n`],
    );
    assert.equal(await reloads(), before + 2);
    assert.deepEqual([await get(), await get(apiUrl)], ["1", "2"]);
  });

  it("forgets a route only while it still points at the removed container", async () => {
    const stale = await lib("proxy_forget", dir, proxy, "web", `${PREFIX}-v2`);
    assert.equal(stale.code, 0, stale.stdout);
    assert.equal(await get(), "1");
    const r = await step({ ACTION: "delete", SERVICE: "web", CONTAINER: `${PREFIX}-v1` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await get(), "HTTP 503");
    assert.throws(() => readFileSync(join(dir, "targets", "web")), { code: "ENOENT" });
    assert.equal(await get(apiUrl), "2");
  });

  it("tells a healthy, an unhealthy and a missing container apart", async () => {
    const v1 = `${PREFIX}-v1`;
    const ok = await lib("wait_container_healthy", v1, "30");
    assert.equal(ok.code, 0, ok.stdout);
    const missing = await lib("wait_container_healthy", `${PREFIX}-nope`, "5");
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, new RegExp(`^health_output=container ${PREFIX}-nope does not exist$`, "m"));
    // Exited: the state and its last log lines.
    const gone = `${PREFIX}-exited`;
    await docker("run", "--name", gone, "--network", network, "--entrypoint", "/web-probe", image.v1, "probe").catch(() => undefined);
    const exited = await lib("wait_container_healthy", gone, "5");
    assert.equal(exited.code, 1);
    assert.match(
      exited.stdout,
      /^health_output=container exited; last log lines: Get "http:\/\/127\.0\.0\.1:8080\/health": dial tcp 127\.0\.0\.1:8080: connect: connection refused$/m,
    );
  });
});
