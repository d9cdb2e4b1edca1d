// The containers mode under the real engine: `pulumi up` of the dev stack with
// `deploy.target: containers` bootstraps three simulated Jetsons and runs every service as a
// `docker.Container` through each host's ssh:// Docker provider (plugin 5.1.0), reached with the
// stack's key and pinned host keys only. A change to one service previews as exactly that
// service's containers; drift made by hand (a container stopped, one removed) shows in
// `preview --refresh` and `refresh` and the next `up` repairs it, while an environment edited in
// place is invisible to the provider and needs `--replace`; a broken release of the recreated
// probe stops after the first batch and that host gets its previous container back; the
// blue-green probe-bg updates behind each host's proxy under load with no failed request, and a
// broken release of it never takes one.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { EngineEvent } from "@pulumi/pulumi/automation/index.js";
import { dockerSshAgentName } from "../../components/index.ts";
import { editStackConfig, engineStack, storedState, type EngineStack } from "../support/engine.ts";
import {
  PROBE_PORT,
  PROBE_SECOND_PORT,
  devServicesWithProbe,
  probeService as probeSpec,
  pushProbe,
  startDevFleet,
  type DevFleet,
  type Probe,
} from "../support/fleet.ts";
import type { SimHost } from "../support/jetson-sim.ts";
import { formatFigures, loadLoop, startLoad, type LoadFigures } from "../support/load.ts";
import { containerMemoryBytes } from "../support/memory.ts";
import { secretLeaks } from "../support/secrets.ts";

const STACK = "containers";
/** A secret environment value of the probe service (`--secret --path`), which only its container may see. */
const PROBE_TOKEN = "ctr-probe-token-0b8e6f13";

/** What `docker inspect` says about one container, the parts these tests look at. */
interface Running {
  readonly id: string;
  readonly image: string;
  readonly status: string;
  readonly health: string;
  readonly runtime: string;
  readonly env: readonly string[];
  readonly restored: boolean;
}

describe("the containers mode on three simulated Jetsons under pulumi up", { timeout: 90 * 60_000 }, () => {
  let fleet: DevFleet;
  let env: EngineStack;
  let probe: Probe;
  let services: Record<string, unknown>[];
  const figures: string[] = [];
  /** Everything the engine printed, for the secret search. */
  let engineOutput = "";
  const host = (i: number): SimHost => fleet.hosts[i] as SimHost;

  const edit = (change: (cfg: Record<string, unknown>) => void) => editStackConfig(env, STACK, change);
  const probeService = (cfg: Record<string, unknown>) =>
    (cfg["services"] as Record<string, unknown>[]).find((s) => s["name"] === "probe") as Record<string, unknown>;

  /** The named containers on host i, as docker inspect shows them (absent ones left out). */
  /**
   * The named services' containers on host i, as docker inspect shows them (absent ones left out):
   * a blue-green service's container is `<service>-<generation>`, the others' the service's name.
   */
  async function running(
    i: number,
    names: readonly string[] = ["inference", "mediamtx", "web-ui", "probe", "probe-bg"],
  ): Promise<Record<string, Running>> {
    const out = await fleet.exec(
      host(i),
      `for n in ${names.join(" ")}; do for c in $(docker ps -a --format '{{.Names}}' | grep -E "^$n(-[0-9a-f]{12})?$"); do docker inspect -f '{{.Name}}|{{.Id}}|{{.Config.Image}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.HostConfig.Runtime}}|{{json .Config.Env}}|{{index .Config.Labels "jetson-fleet.restored"}}' "$c"; done; done`,
    );
    return Object.fromEntries(
      out
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const [name = "", id = "", image = "", status = "", health = "", runtime = "", envJson = "[]", restored = ""] = line.split("|");
          return [
            name.replace(/^\//, "").replace(/-[0-9a-f]{12}$/, ""),
            { id, image, status, health, runtime, env: JSON.parse(envJson) as string[], restored: restored === "true" },
          ];
        }),
    );
  }
  const probeVersion = async (i: number, port = PROBE_PORT) =>
    (await fetch(`http://${host(i).address}:${port}/`, { signal: AbortSignal.timeout(5_000) })).text().then((t) => t.trim());
  /** The container name a service runs under on host i (a blue-green one's carries its generation). */
  const containerName = async (i: number, service: string) =>
    (await fleet.exec(host(i), `docker ps -a --format '{{.Names}}' | grep -E '^${service}(-[0-9a-f]{12})?$'`)).trim();

  /** `pulumi up`, timed; the resources it changed by operation. */
  async function up(label: string): Promise<{ ok: boolean; changes: Record<string, number>; message: string; seconds: number }> {
    const start = Date.now();
    try {
      const result = await env.stack.up({ color: "never", continueOnError: true });
      engineOutput += result.stdout + result.stderr;
      return { ok: true, changes: result.summary.resourceChanges ?? {}, message: "", seconds: (Date.now() - start) / 1000 };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      engineOutput += message;
      return { ok: false, changes: {}, message, seconds: (Date.now() - start) / 1000 };
    } finally {
      figures.push(`${label}: ${((Date.now() - start) / 1000).toFixed(1)} s`);
    }
  }
  /** The operations a preview would run, by "type name", `same` and reads left out. */
  async function plannedSteps(run: (onEvent: (e: EngineEvent) => void) => Promise<unknown>): Promise<Record<string, string>> {
    const steps: Record<string, string> = {};
    await run((e) => {
      const m = e.resourcePreEvent?.metadata;
      if (!m || ["same", "read", "refresh"].includes(m.op) || m.type === "pulumi:pulumi:Stack") return;
      // A replacement comes as its parts (create-replacement, delete-replaced): one "replace".
      steps[`${m.type} ${m.urn.split("::").pop() ?? m.urn}`] = /replace/.test(m.op) ? "replace" : m.op;
    });
    return steps;
  }
  const nonSame = (changes: Record<string, number>) => Object.entries(changes).filter(([op]) => op !== "same");

  before(
    async () => {
      fleet = await startDevFleet({
        prefix: "jetson-ctr",
        addressNet: "127.0.4",
        portBase: 22300,
        publish: `8080 8554 8889 8189/udp 8088 ${PROBE_PORT} ${PROBE_SECOND_PORT}`,
      });
      probe = await pushProbe("containers");
      // The probe recreated, its guard putting the previous container back when a release fails;
      // probe-bg updated blue-green behind the host's proxy, as the web UI is.
      services = devServicesWithProbe(probe.v1, {
        environment: { PROBE_MODE: "steady" },
        resources: { cpus: 0.25, memory: "64m" },
        update: "recreate",
      });
      services.splice(
        services.length - 1,
        0,
        probeSpec(probe.v1, {
          name: "probe-bg",
          ports: [{ target: 8080, published: PROBE_SECOND_PORT, appProtocol: "http" }],
          resources: { cpus: 0.25, memory: "64m" },
        }),
      );
      env = await engineStack({
        stack: STACK,
        stackFile: "Pulumi.dev.yaml",
        // The one change from the dev stack: the deploy target.
        config: { hosts: fleet.hostsConfig(), services, deploy: { target: "containers", rollout: { maxUnavailable: 1 } } },
        secrets: { ...fleet.hostSecrets(), [`services[${services.length - 1}].environment.PROBE_TOKEN`]: PROBE_TOKEN },
        env: fleet.buildEnv,
      });
    },
    { timeout: 30 * 60_000 },
  );
  after(async () => {
    console.log(`containers: ${figures.join("; ")}`);
    await env?.dispose({ runProgram: true }).catch((err: unknown) => console.log(`containers: destroy failed: ${String(err)}`));
    await fleet?.stop();
  });

  it("runs every service as a docker.Container on every host, pulled by digest, healthy, through plugin 5.1.0 over the stack's own ssh", async () => {
    const r = await up("first up");
    assert.ok(r.ok, r.message);
    const outputs = await env.stack.outputs();
    const images = outputs["serviceImages"]?.value as Record<string, string>;
    for (const i of [0, 1, 2]) {
      const now = await running(i);
      assert.deepEqual(Object.keys(now).sort(), ["inference", "mediamtx", "probe", "probe-bg", "web-ui"]);
      for (const [name, c] of Object.entries(now)) {
        assert.equal(c.image, images[name], `${host(i).name} ${name} runs its digest`);
        assert.match(c.image, /@sha256:[0-9a-f]{64}$/);
        assert.equal(c.status, "running", `${host(i).name} ${name}`);
      }
      for (const name of ["inference", "web-ui", "probe", "probe-bg"])
        assert.equal(now[name]?.health, "healthy", `${host(i).name} ${name}`);
      // Blue-green services run under a generation's name behind the proxy, which holds their ports.
      assert.match(await containerName(i, "web-ui"), /^web-ui-[0-9a-f]{12}$/);
      assert.equal(await probeVersion(i, PROBE_SECOND_PORT), "1.0.0");
      assert.equal((await fetch(`http://${host(i).address}:8088/`, { signal: AbortSignal.timeout(5_000) })).status, 200);
      assert.equal(now["inference"]?.runtime, "nvidia");
      assert.ok(now["probe"]?.env.includes(`PROBE_TOKEN=${PROBE_TOKEN}`), "the probe got its secret environment value");
      assert.equal(await probeVersion(i), "1.0.0");
      // The login user reaches the engine: JetsonHost put it in the docker group.
      assert.match(await fleet.exec(host(i), "id -nG jetson"), /\bdocker\b/);
    }
    // Every Docker provider asked for the installed plugin.
    const state = JSON.parse(await storedState(env, STACK)) as {
      deployment: { resources: { type: string; inputs?: Record<string, unknown> }[] };
    };
    const providers = state.deployment.resources.filter((res) => res.type === "pulumi:providers:docker");
    assert.equal(providers.length, 3);
    for (const p of providers) assert.equal(p.inputs?.["version"], "5.1.0");
    // The key went to an agent, never to a file: no file there holds a private key, and once the
    // update ended its agent is gone (unless another run on this machine, with the same sim key,
    // still uses it: each run that attached keeps a pid file, alive).
    const agents = join(homedir(), ".ssh", "jetson-fleet");
    const socket = join(agents, `${dockerSshAgentName(fleet.privateKey)}.sock`);
    const users = () => (existsSync(`${socket}.pids`) ? readdirSync(`${socket}.pids`) : []);
    for (let i = 0; i < 50 && existsSync(socket) && users().length <= 1; i++) await new Promise((res) => setTimeout(res, 100));
    for (const f of readdirSync(agents, { recursive: true, encoding: "utf8" })) {
      if (statSync(join(agents, f)).isFile()) assert.doesNotMatch(readFileSync(join(agents, f), "utf8"), /PRIVATE KEY/, f);
    }
    if (existsSync(socket)) {
      for (const pid of users()) assert.doesNotThrow(() => process.kill(Number(pid), 0), `run ${pid} using the agent is alive`);
    }
  });

  it("changes nothing on a second up", async () => {
    const r = await up("no-op up");
    assert.ok(r.ok, r.message);
    assert.deepEqual(nonSame(r.changes), []);
  });

  it("previews a change to one service as exactly that service's containers on each host, then rolls it out", async () => {
    edit((cfg) => {
      (probeService(cfg)["environment"] as Record<string, unknown>)["PROBE_MODE"] = "changed";
    });
    const steps = await plannedSteps((onEvent) => env.stack.preview({ color: "never", onEvent }));
    const expected: Record<string, string> = {};
    for (const h of fleet.hosts) {
      // The container, its guard step, and the Service standing for it (its inputs are the spec).
      expected[`docker:index/container:Container services-${h.name}-probe`] = "replace";
      expected[`command:remote:Command services-${h.name}-probe-handover`] = "replace";
      expected[`jetson:services:Service services-${h.name}-probe`] = "update";
    }
    assert.deepEqual(steps, expected);
    const r = await up("update of one service (3 hosts)");
    assert.ok(r.ok, r.message);
    for (const i of [0, 1, 2]) assert.ok((await running(i, ["probe"]))["probe"]?.env.includes("PROBE_MODE=changed"));
  });

  it("finds a container stopped or removed by hand with preview --refresh and refresh and repairs it on the next up; an environment edited in place needs --replace", async () => {
    const before = await Promise.all([0, 1, 2].map((i) => running(i)));
    // Host 1: the probe stopped. Host 2: web-ui removed. Host 3: the probe's environment edited in
    // the engine's own record of the container (dockerd stopped, config.v2.json changed, started).
    await fleet.exec(host(0), "docker stop probe >/dev/null");
    await fleet.exec(host(1), `docker rm -f ${await containerName(1, "web-ui")} >/dev/null`);
    const id = before[2]?.["probe"]?.id ?? "";
    await fleet.exec(
      host(2),
      `systemctl stop docker.socket docker && f=/var/lib/docker/containers/${id}/config.v2.json && jq -c '.Config.Env |= map(if startswith("PROBE_MODE=") then "PROBE_MODE=edited" else . end)' "$f" >"$f.new" && mv "$f.new" "$f" && systemctl start docker`,
    );
    await fleet.exec(
      host(2),
      "for i in $(seq 1 60); do [ \"$(docker inspect -f '{{.State.Health.Status}}' probe 2>/dev/null)\" = healthy ] && exit 0; sleep 1; done; exit 1",
    );
    assert.ok((await running(2, ["probe"]))["probe"]?.env.includes("PROBE_MODE=edited"));

    const previewed = await plannedSteps((onEvent) => env.stack.preview({ color: "never", refresh: true, runProgram: true, onEvent }));
    const [h1, h2, h3] = fleet.hosts.map((h) => h.name);
    const container = (h: string | undefined, s: string) => `docker:index/container:Container services-${h}-${s}`;
    assert.deepEqual(previewed, {
      // Stopped: the provider reads it back stopped (must_run false) and makes it anew.
      [container(h1, "probe")]: "replace",
      // Removed: gone from the refreshed state, created again (under the same generation), and
      // the proxy pointed at it again.
      [container(h2, "web-ui")]: "create",
      [`command:remote:Command services-${h2}-web-ui-switch`]: "replace",
      // Host 3's edited environment is not there: the provider (5.1.0) never reads a container's
      // environment back from the engine, so no refresh can see it (README: drift).
    });
    const refreshed = await env.stack.refresh({ color: "never", runProgram: true });
    figures.push(`refresh after drift: ${JSON.stringify(refreshed.summary.resourceChanges)}`);
    // The stopped container read back changed, the removed one gone.
    assert.deepEqual(nonSame(refreshed.summary.resourceChanges ?? {}).sort(), [
      ["delete", 1],
      ["update", 1],
    ]);

    const r = await up("up repairing the drift");
    assert.ok(r.ok, r.message);
    for (const i of [0, 1, 2]) {
      const now = await running(i);
      for (const name of ["inference", "mediamtx", "web-ui", "probe", "probe-bg"])
        assert.equal(now[name]?.status, "running", `${host(i).name} ${name}`);
      assert.equal(now["web-ui"]?.health, "healthy");
    }
    assert.ok((await running(0, ["probe"]))["probe"]?.env.includes("PROBE_MODE=changed"));
    assert.ok((await running(2, ["probe"]))["probe"]?.env.includes("PROBE_MODE=edited"), "the edit in place stays");
    // What the operator does about an edit refresh cannot see: replace that container.
    const urn = (await env.stack.exportStack()).deployment.resources.find(
      (res: { type: string; urn: string }) => res.type === "docker:index/container:Container" && res.urn.endsWith(`::services-${h3}-probe`),
    )?.urn as string;
    const replaced = await env.stack.up({ color: "never", replace: [urn] });
    assert.deepEqual(nonSame(replaced.summary.resourceChanges ?? {}), [["replace", 1]]);
    assert.ok((await running(2, ["probe"]))["probe"]?.env.includes("PROBE_MODE=changed"));
    const again = await up("no-op up after the repair");
    assert.deepEqual(nonSame(again.changes), []);
  });

  it("rolls a good release host by host, and stops a broken one after the first batch with that host back on its previous container", async () => {
    // A good release under load on every host.
    edit((cfg) => {
      probeService(cfg)["image"] = probe.v2;
    });
    let loads = fleet.hosts.map((h) => loadLoop(`http://${h.address}:${PROBE_PORT}/`));
    const good = await up("good release (3 hosts, one per batch)");
    const goodLoad = await Promise.all(loads.map((l) => l.stop()));
    assert.ok(good.ok, good.message);
    for (const i of [0, 1, 2]) assert.equal(await probeVersion(i), "2.0.0");
    figures.push(`good release load: ${loadSummary(goodLoad)}`);

    // A broken release: its health check fails.
    edit((cfg) => {
      probeService(cfg)["image"] = probe.broken;
    });
    const previous = await Promise.all([0, 1, 2].map((i) => running(i, ["probe"])));
    loads = fleet.hosts.map((h) => loadLoop(`http://${h.address}:${PROBE_PORT}/`));
    const broken = await up("broken release");
    const brokenLoad = await Promise.all(loads.map((l) => l.stop()));
    assert.ok(!broken.ok, "the broken release fails the update");
    const [h1] = fleet.hosts.map((h) => h.name);
    assert.match(broken.message, new RegExp(`docker:index:Container \\(services-${h1}-probe\\)`));
    assert.doesNotMatch(broken.message, /services-jetson-ctr-[23]-probe\)/);
    // Host 1 is back on its previous digest (the guard made the recorded container again), serving.
    const restored = (await running(0, ["probe"]))["probe"];
    assert.equal(restored?.image, previous[0]?.["probe"]?.image);
    assert.equal(restored?.restored, true);
    assert.equal(await probeVersion(0), "2.0.0");
    const guard = await fleet.exec(host(0), "cat /var/lib/jetson-fleet/containers/probe.guard");
    assert.match(
      guard,
      new RegExp(
        `^restored ${previous[0]?.["probe"]?.image.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} after ${probe.broken.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} failed`,
      ),
    );
    // Hosts 2 and 3 were never touched.
    for (const i of [1, 2]) assert.deepEqual((await running(i, ["probe"]))["probe"], previous[i]?.["probe"]);
    // Host 1's broken release answered from its start until the guard put the previous one back.
    const served = brokenLoad[0]?.answeredFrom["3.0.0"];
    figures.push(
      `broken release load: ${loadSummary(brokenLoad)}; the broken version answered ${brokenLoad.reduce((n, l) => n + (l.answeredBy["3.0.0"] ?? 0), 0)} requests` +
        (served ? `, for ${((served.last - served.first) / 1000).toFixed(1)} s on host 1 before the previous container was back` : ""),
    );

    // Back to the good release: the restored container (not Pulumi's) gives way, all converge.
    edit((cfg) => {
      probeService(cfg)["image"] = probe.v2;
    });
    const back = await up("back to the good release");
    assert.ok(back.ok, back.message);
    for (const i of [0, 1, 2]) {
      const now = (await running(i, ["probe"]))["probe"];
      assert.equal(now?.health, "healthy");
      assert.equal(now?.restored, false);
      assert.equal(await probeVersion(i), "2.0.0");
    }
    const again = await up("no-op up after the rollback");
    assert.deepEqual(nonSame(again.changes), []);
  });

  it("updates the blue-green probe-bg behind each host's proxy with 0 failed requests; a broken release never takes a request, is removed, and stops the rollout after the first batch", async () => {
    const setBg = (image: string) =>
      edit((cfg) => {
        const entry = (cfg["services"] as Record<string, unknown>[]).find((s) => s["name"] === "probe-bg");
        if (entry) entry["image"] = image;
      });
    const targets = fleet.hosts.map((h) => ({ name: h.name, url: `http://${h.address}:${PROBE_SECOND_PORT}/` }));
    /** `pulumi up` under a load on every host's probe-bg, 3 s of steady load first. */
    const underLoad = async (label: string) => {
      const load = startLoad(targets);
      let r: Awaited<ReturnType<typeof up>>;
      try {
        await new Promise((res) => setTimeout(res, 3_000));
        load.mark("up");
        r = await up(label);
      } finally {
        loads[label] = await load.stop();
      }
      return r;
    };
    const loads: Record<string, Record<string, LoadFigures>> = {};

    setBg(probe.v2);
    const good = await underLoad("blue-green good release");
    assert.ok(good.ok, good.message);
    for (const [i, h] of fleet.hosts.entries()) {
      const f = loads["blue-green good release"]?.[h.name] ?? assert.fail("no figures");
      console.log(formatFigures(`good update, containers, ${h.name}, probe-bg (blue-green)`, f));
      assert.equal(f.failed, 0, `${h.name}: requests failed during the blue-green update`);
      assert.ok((f.answers["1.0.0"] ?? 0) > 0 && (f.answers["2.0.0"] ?? 0) > 0, JSON.stringify(f.answers));
      assert.equal(await probeVersion(i, PROBE_SECOND_PORT), "2.0.0");
      // One container of it left: the previous one was deleted after the switch.
      assert.equal((await fleet.exec(host(i), "docker ps -a --format '{{.Names}}' | grep -c '^probe-bg-'")).trim(), "1");
      const bytes = await containerMemoryBytes((script) => fleet.exec(host(i), script), `jetson-fleet-${STACK}-proxy`);
      console.log(`proxy memory, containers, ${h.name}: ${(bytes / 1024 ** 2).toFixed(1)} MiB`);
    }

    const previous = await Promise.all([0, 1, 2].map((i) => running(i, ["probe-bg"])));
    setBg(probe.broken);
    const broken = await underLoad("blue-green broken release");
    assert.ok(!broken.ok, "the broken release fails the update");
    const [h1] = fleet.hosts.map((h) => h.name);
    assert.match(
      broken.message,
      new RegExp(
        `host ${h1}: service probe-bg is not healthy after the update to ${probe.broken.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}; health output: .+; traffic stayed on the previous version \\(probe-bg-[0-9a-f]{12}\\), the new container was removed`,
      ),
    );
    // Only host 1 failed: no step or container of hosts 2 and 3 is among the errors.
    assert.doesNotMatch(broken.message, /(Command|Container) \(services-jetson-ctr-[23]-/);
    for (const [i, h] of fleet.hosts.entries()) {
      const f = loads["blue-green broken release"]?.[h.name] ?? assert.fail("no figures");
      console.log(formatFigures(`broken release, containers, ${h.name}, probe-bg (blue-green)`, f));
      assert.equal(f.failed, 0, `${h.name}: requests failed`);
      assert.equal(f.answers["3.0.0"], undefined, `${h.name}: the broken release answered`);
      // The same container as before serves; the broken one is gone.
      assert.deepEqual((await running(i, ["probe-bg"]))["probe-bg"], previous[i]?.["probe-bg"]);
      assert.equal((await fleet.exec(host(i), `docker ps -aq --filter ancestor=${probe.broken} | wc -l`)).trim(), "0");
    }

    // Back to the good release: a container of a new generation (the serving one keeps its name until it is deleted).
    setBg(probe.v2);
    const back = await up("blue-green back to the good release");
    assert.ok(back.ok, back.message);
    for (const i of [0, 1, 2]) assert.equal(await probeVersion(i, PROBE_SECOND_PORT), "2.0.0");
    const again = await up("no-op up after the blue-green rollback");
    assert.deepEqual(nonSame(again.changes), []);
  });

  it("keeps every secret of the stack out of the state, the engine's output, the hosts' files and journals, and the logs", async () => {
    assert.ok(engineOutput.length > 0);
    const leaks = await secretLeaks(
      { "the private key": fleet.privateKey, "the sudo password": fleet.sudoPassword, "the probe's PROBE_TOKEN": PROBE_TOKEN },
      { env, stack: STACK, engineOutput, fleet, neededOnHosts: ["the probe's PROBE_TOKEN"] },
    );
    assert.deepEqual(leaks, []);
  });
});

function loadSummary(loads: readonly LoadFigures[]): string {
  return loads
    .map((l, i) => `host ${i + 1}: ${l.requests} requests, ${l.failed} failed, longest gap ${(l.longestGapMs / 1000).toFixed(2)} s`)
    .join(", ");
}
