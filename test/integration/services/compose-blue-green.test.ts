// The compose mode's blue-green update on a simulated Jetson over real SSH, sent as ComposeProject's
// apply step sends it: the service behind the host's proxy (images/proxy, pushed to the hosts'
// registry), a good release under a request loop on the host loses nothing, a broken one never
// answers a request and is removed, a run cut off between starting the new version and removing
// the old one is finished by the next, and the delete takes the proxy's files with the project.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ServiceSpec, proxyDirectory, proxyRoutes, renderComposeFile, renderProxyConfig } from "../../../components/index.ts";
import { REPO } from "../../support/engine.ts";
import type { SimHost } from "../../support/jetson-sim.ts";
import { curlLoadScript, formatFigures, loadFigures, parseCurlSamples, type LoadFigures } from "../../support/load.ts";
import { run } from "../../support/services.ts";
import { startServiceHosts, type ServiceHosts } from "../../support/service-hosts.ts";

const PROJECT = "jetson-fleet";
const PORT = 18090;
const DRAIN = 5;
const web = ServiceSpec.parse({
  name: "web",
  image: "placeholder:1",
  ports: [{ target: 8080, published: PORT, hostIp: "127.0.0.1", appProtocol: "http" }],
  healthcheck: { test: ["CMD", "/web-probe", "probe"], interval: "1s", timeout: "2s", retries: 2, startPeriod: "2s" },
});
const PARAMS = {
  BLUE_GREEN: "web",
  PROXY_CONFIG: renderProxyConfig(proxyRoutes([web]), { drainTimeoutSeconds: DRAIN }),
  HEALTH_TIMEOUT: "40",
};

describe("compose mode: blue-green behind the host's proxy on a simulated Jetson", { timeout: 30 * 60_000 }, () => {
  let env: ServiceHosts;
  let host: SimHost;
  let proxyImage: string;
  const file = (image: string) => renderComposeFile([web], { web: image }, { image: proxyImage, project: PROJECT, services: ["web"] });
  /** The web service's containers: `name image` lines, sorted. */
  const webContainers = async () =>
    (
      await env.sh(
        host,
        `docker ps -aq --filter label=com.docker.compose.project=${PROJECT} --filter label=com.docker.compose.service=web | xargs -r docker inspect -f '{{.Name}} {{.Config.Image}}' | sed 's|^/||' | sort`,
      )
    )
      .trim()
      .split("\n")
      .filter(Boolean);
  const target = async () => (await env.sh(host, `cat ${proxyDirectory(PROJECT)}/targets/web`)).trim();
  /** An apply under a request loop on the host itself (the port is the host's loopback only). */
  async function applyUnderLoad(image: string): Promise<{ code: number; stderr: string; figures: LoadFigures }> {
    const loop = curlLoadScript(`http://127.0.0.1:${PORT}/`, "/tmp/bg-load.stop");
    await env.sh(host, `cat >/tmp/bg-load.sh <<'LOOP'\n${loop}LOOP\nsetsid nohup sh /tmp/bg-load.sh >/tmp/bg-load.out 2>&1 </dev/null &`);
    await new Promise((r) => setTimeout(r, 3_000));
    const mark = { label: "apply", t: Date.now() };
    const r = await env.apply(host, file(image), PARAMS);
    await env.sh(host, "touch /tmp/bg-load.stop; sleep 1.5");
    const samples = parseCurlSamples(await env.sh(host, "cat /tmp/bg-load.out"));
    return { code: r.code, stderr: r.stderr, figures: loadFigures(samples, [mark]) };
  }

  before(
    async () => {
      env = await startServiceHosts(1, process.env["JETSON_SIM_PREFIX"] ?? "jf15-bluegreen");
      host = env.hosts[0]!;
      const { stdout } = await run(join(REPO, "images", "proxy", "build.sh"), []);
      const local = /^PROXY_IMAGE=(\S+)$/m.exec(stdout)?.[1] ?? assert.fail(`images/proxy/build.sh printed: ${stdout}`);
      proxyImage = await env.push(local, "jetson-fleet/proxy", "2.6.12");
    },
    { timeout: 25 * 60_000 },
  );
  after(() => env?.stop());

  it("puts the service behind the proxy on first apply: the proxy publishes its port and routes to its container", async () => {
    const r = await env.apply(host, file(env.releases.v1), PARAMS);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await env.sh(host, `curl -sf http://127.0.0.1:${PORT}/`)).trim(), "1.0.0");
    const [only, ...rest] = await webContainers();
    assert.deepEqual(rest, []);
    assert.equal(only?.split(" ")[0], await target());
    // The service itself publishes nothing; the proxy holds the port.
    const bindings = await env.sh(host, `docker inspect -f '{{json .HostConfig.PortBindings}}' ${await target()}`);
    assert.equal(bindings.trim(), "{}");
    const again = await env.apply(host, file(env.releases.v1), PARAMS);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^unchanged\n/);
  });

  it("switches a good release with 0 failed requests, the old container drained and removed", async () => {
    const before = await target();
    const { code, stderr, figures } = await applyUnderLoad(env.releases.v2);
    console.log(formatFigures("compose-apply blue-green, good release", figures));
    assert.equal(code, 0, stderr);
    assert.equal(figures.failed, 0);
    assert.ok((figures.answers["1.0.0"] ?? 0) > 0 && (figures.answers["2.0.0"] ?? 0) > 0, JSON.stringify(figures.answers));
    const containers = await webContainers();
    assert.equal(containers.length, 1, containers.join(", "));
    assert.notEqual(await target(), before);
    assert.equal(containers[0], `${await target()} ${env.releases.v2}`);
  });

  it("never sends a request to a broken release: it is removed, the previous version keeps serving, the step fails naming it", async () => {
    const before = await webContainers();
    const { code, stderr, figures } = await applyUnderLoad(env.releases.broken);
    console.log(formatFigures("compose-apply blue-green, broken release", figures));
    assert.equal(code, 1);
    assert.equal(
      stderr.trim().split("\n").at(-1),
      `compose-apply: host ${host.name}: service web is not healthy after the update to ${env.releases.broken}; health output: 503 version 3.0.0: model failed to load; traffic stayed on the previous version (${await target()}), the new container was removed; nothing else was changed on this host`,
    );
    assert.equal(figures.failed, 0);
    assert.equal(figures.answers["3.0.0"], undefined);
    assert.deepEqual(await webContainers(), before);
  });

  it("finishes a run cut off between starting the new version and removing the old one: the one the proxy routes to stays", async () => {
    const serving = await target();
    // What a cut-off run leaves: a second container of the service beside the one serving.
    await env.sh(
      host,
      `docker-compose -p ${PROJECT} -f /var/lib/jetson-fleet/compose/${PROJECT}/current.yaml up -d --no-deps --no-recreate --scale web=2 web 2>/dev/null`,
    );
    assert.equal((await webContainers()).length, 2);
    const r = await env.apply(host, file(env.releases.v2), PARAMS);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /service web: removed .+'s leftover twin/);
    assert.deepEqual(await webContainers(), [`${serving} ${env.releases.v2}`]);
    assert.equal((await env.sh(host, `curl -sf http://127.0.0.1:${PORT}/`)).trim(), "2.0.0");
  });

  it("removes the proxy and its files with the project", async () => {
    // This file was applied by three "steps" above; as the last one standing, this delete acts.
    await env.sh(host, `rm -f /var/lib/jetson-fleet/compose/${PROJECT}/owners`);
    const r = await env.remove(host, file(env.releases.v2));
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await env.sh(host, `docker ps -aq --filter label=com.docker.compose.project=${PROJECT} | wc -l`)).trim(), "0");
    assert.equal((await env.sh(host, `test -e ${proxyDirectory(PROJECT)} && echo present || echo gone`)).trim(), "gone");
  });
});
