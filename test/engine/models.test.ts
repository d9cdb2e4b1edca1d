// Models and TensorRT engines under the real engine: `pulumi up` of the dev stack on three
// simulated Jetsons (its detector model replaced by one of this run's own) pushes the model to the
// dev registry, each host fetches it and builds
// its engine inside the inference image (the stand-in trtexec of the stand-in L4T base), and the
// inference service loads it and reports it in /health. Then: a no-op `up` that runs no command on
// any host; a new model version, rebuilt and restarted batch by batch, inference only; a new
// image, which rebuilds the engines; and a malformed model, which fails the first host with the
// builder's output and leaves every host on its previous engine, serving.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { EngineEvent } from "@pulumi/pulumi/automation/index.js";
import { editStackConfig, engineStack, type EngineStack } from "../support/engine.ts";
import { startDevFleet, type DevFleet } from "../support/fleet.ts";
import type { SimHost } from "../support/jetson-sim.ts";
import { malformedOnnx, onnxModel, sha256Hex } from "../support/onnx.ts";

const STACK = "models";
const PROJECT = `jetson-fleet-${STACK}`;
const ENGINES = `/var/lib/jetson-fleet/engines/${PROJECT}`;
const STORE = `/var/lib/jetson-fleet/models/${PROJECT}/sha256`;
const V1_BYTES = 256 * 1024;
/** Big enough that its build (1 s per MiB with the stand-in trtexec) prints a progress line in the engine's output. */
const V2_BYTES = 12 * 1024 * 1024;

interface Health {
  status: string;
  model?: { name?: string; sha256?: string };
  engine: { loaded?: boolean; key?: string; readOnly?: boolean };
}
/** An event of one resource: its step starting (`pre`) or its outputs recorded (`done`), seconds since the epoch. */
interface StepEvent {
  readonly name: string;
  readonly kind: "pre" | "done";
  readonly op: string;
  readonly at: number;
  /** The step's report (`done` of a command that ran). */
  readonly stdout?: string;
}

describe("models and engines on three simulated Jetsons under pulumi up", { timeout: 75 * 60_000 }, () => {
  let fleet: DevFleet;
  let env: EngineStack;
  const figures: string[] = [];
  const host = (i: number): SimHost => fleet.hosts[i] as SimHost;
  const edit = (change: (cfg: Record<string, unknown>) => void) => editStackConfig(env, STACK, change);
  const setModel = (file: string, sha256: string) =>
    edit((cfg) => {
      const [model] = cfg["models"] as Record<string, unknown>[];
      if (model === undefined) throw new Error("the dev stack has no model");
      model["source"] = { file };
      model["sha256"] = sha256;
    });
  /** A model file of the test's own, outside the repository. */
  const writeModel = (name: string, content: Buffer) => {
    const dir = join(env.dir, "test-models");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), content);
    return { file: join(dir, name), sha256: sha256Hex(content) };
  };

  async function up(): Promise<{ ok: boolean; output: string; changes: Record<string, number>; events: StepEvent[]; seconds: number }> {
    const events: StepEvent[] = [];
    const onEvent = (e: EngineEvent) => {
      const pre = e.resourcePreEvent?.metadata;
      const done = e.resOutputsEvent?.metadata;
      const meta = pre ?? done;
      const stdout = done?.new?.outputs?.["stdout"];
      if (meta)
        events.push({
          name: meta.urn.split("::").pop() ?? "",
          kind: pre ? "pre" : "done",
          op: meta.op,
          at: e.timestamp,
          ...(typeof stdout === "string" ? { stdout } : {}),
        });
    };
    const start = Date.now();
    try {
      const r = await env.stack.up({ color: "never", onEvent });
      return {
        ok: true,
        output: r.stdout + r.stderr,
        changes: r.summary.resourceChanges ?? {},
        events,
        seconds: (Date.now() - start) / 1000,
      };
    } catch (err) {
      return {
        ok: false,
        output: err instanceof Error ? err.message : String(err),
        changes: {},
        events,
        seconds: (Date.now() - start) / 1000,
      };
    }
  }
  const nonSame = (changes: Record<string, number>) => Object.entries(changes).filter(([op]) => op !== "same");
  const health = async (i: number): Promise<{ code: number; body: Health }> => {
    const res = await fetch(`http://${host(i).address}:8080/health`, { signal: AbortSignal.timeout(5_000) });
    return { code: res.status, body: (await res.json()) as Health };
  };
  /** The lines of the host's build log (one per finished build attempt). */
  const builds = async (i: number) =>
    (await fleet.exec(host(i), `cat ${ENGINES}/builds.log 2>/dev/null || true`)).split("\n").filter((l) => l.trim() !== "");
  const containerIds = async (i: number) =>
    Object.fromEntries(Object.entries(await fleet.composeContainers(host(i), PROJECT)).map(([s, c]) => [s, c.id]));
  const engineKeys = async () => (await env.stack.outputs())["engineKeys"]?.value as Record<string, Record<string, string>>;
  /** What the steps that ran reported: the artifact step's pushed bytes, each host's fetched (or present) bytes and seconds. */
  const transfers = (events: StepEvent[]) => {
    // A replacement reports its new step twice (create-replacement, then replace): its create counts.
    const ran = events.filter(
      (e) => e.kind === "done" && ["create", "update", "create-replacement"].includes(e.op) && e.stdout !== undefined,
    );
    return {
      pushed: ran.filter((e) => e.name === "detector-push").map((e) => Number(/ bytes=([0-9]+)/.exec(e.stdout ?? "")?.[1])),
      fetched: ran
        .filter((e) => /^services-.+-models-detector$/.test(e.name))
        .map(
          (e) =>
            /^(fetched|present) model=detector sha256=[0-9a-f]+ bytes=([0-9]+) seconds=([0-9.]+)$/m.exec(e.stdout ?? "") ??
            assert.fail(`${e.name}: ${e.stdout}`),
        )
        .map((m) => ({ bytes: Number(m[2]), seconds: Number(m[3]) })),
    };
  };
  const stepsOf = (events: StepEvent[], suffix: string) => events.filter((e) => e.name.endsWith(suffix) && e.op !== "same");
  const at = (events: StepEvent[], name: string, kind: "pre" | "done") =>
    events.find((e) => e.name === name && e.kind === kind && e.op !== "same")?.at ?? assert.fail(`no ${kind} event of ${name}`);

  /** Each host's engine serves: health names the model and the key the stack output gives. */
  async function assertServing(sha256: string, keys: Record<string, Record<string, string>>) {
    for (const [i, h] of fleet.hosts.entries()) {
      const { code, body } = await health(i);
      assert.equal(code, 200, `${h.name}: ${JSON.stringify(body)}`);
      assert.equal(body.model?.name, "detector", h.name);
      assert.equal(body.model?.sha256, sha256, h.name);
      assert.equal(body.engine.loaded, true, h.name);
      assert.equal(body.engine.readOnly, true, h.name);
      assert.equal(body.engine.key, keys[h.name]?.["inference/detector"], h.name);
    }
  }

  before(
    async () => {
      fleet = await startDevFleet({
        prefix: "jetson-models",
        addressNet: "127.0.9",
        portBase: 22900,
        publish: "8080 8554 8889 8189/udp 8088",
      });
      env = await engineStack({
        stack: STACK,
        stackFile: "Pulumi.dev.yaml",
        config: { hosts: fleet.hostsConfig() },
        secrets: fleet.hostSecrets(),
        env: fleet.buildEnv,
      });
    },
    { timeout: 30 * 60_000 },
  );
  after(async () => {
    if (figures.length > 0) console.log(`models figures:\n${figures.join("\n")}`);
    await env?.dispose().catch(() => undefined);
    await fleet?.stop();
  });

  let keys: Record<string, Record<string, string>> = {};
  it("delivers the model and builds its engine on every host; the inference service reports both in /health", async () => {
    // A model of this run's own: the dev registry keeps what earlier runs pushed.
    const v1 = writeModel("detector-v1.onnx", onnxModel({ bytes: V1_BYTES, version: `detector-1-${process.pid}-${Date.now()}` }));
    setModel(v1.file, v1.sha256);
    const r = await up();
    assert.ok(r.ok, r.output);
    const t = transfers(r.events);
    assert.deepEqual(t.pushed, [V1_BYTES]);
    assert.deepEqual(
      t.fetched.map((f) => f.bytes),
      [V1_BYTES, V1_BYTES, V1_BYTES],
    );
    keys = await engineKeys();
    for (const [i, h] of fleet.hosts.entries()) {
      const key = keys[h.name]?.["inference/detector"] ?? assert.fail(`no engine key for ${h.name}`);
      assert.match(key, /^[0-9a-f]{16}$/);
      // The model by content, and one engine with its record, built once.
      assert.equal((await fleet.exec(host(i), `sha256sum ${STORE}/${v1.sha256}`)).split(" ")[0], v1.sha256);
      assert.equal((await fleet.exec(host(i), `ls ${ENGINES}/inference/detector`)).trim(), key);
      const record = JSON.parse(await fleet.exec(host(i), `cat ${ENGINES}/inference/detector/${key}/engine.json`)) as Record<
        string,
        unknown
      >;
      assert.equal(record["sha256"], v1.sha256);
      assert.equal(record["key"], key);
      const log = await builds(i);
      assert.equal(log.length, 1, log.join("\n"));
      assert.match(log[0] ?? "", new RegExp(`host=${h.name} service=inference model=detector key=${key} result=built`));
    }
    // Every host's key is the same: the sims share L4T release, GPU (none) and image.
    assert.equal(new Set(Object.values(keys).map((k) => k["inference/detector"])).size, 1);
    await assertServing(v1.sha256, keys);
    figures.push(
      `first up: ${r.seconds.toFixed(0)} s; pushed ${t.pushed.join(", ")} bytes; fetched ${t.fetched.map((f) => `${f.bytes} bytes in ${f.seconds} s`).join(", ")}; builds 3 (one per host)`,
    );
  });

  it("changes nothing on a second up: no byte transferred, no engine built, no command run on any host", async () => {
    const logins = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
    const before = await Promise.all(fleet.hosts.map((_, i) => builds(i)));
    const r = await up();
    assert.ok(r.ok, r.output);
    assert.deepEqual(nonSame(r.changes), []);
    assert.deepEqual(transfers(r.events), { pushed: [], fetched: [] });
    assert.deepEqual(await Promise.all(fleet.hosts.map((h) => fleet.logins(h))), logins);
    assert.deepEqual(await Promise.all(fleet.hosts.map((_, i) => builds(i))), before);
    assert.deepEqual(stepsOf(r.events, "-models-detector"), []);
    figures.push(`no-op up: ${r.seconds.toFixed(0)} s, 0 bytes pushed or fetched, 0 builds, 0 SSH logins (0 s on models: no step ran)`);
  });

  it("rebuilds a new model version on every host batch by batch, restarting only the inference service", async () => {
    const v2 = writeModel("detector-v2.onnx", onnxModel({ bytes: V2_BYTES, version: `detector-2-${process.pid}-${Date.now()}` }));
    const ids = await Promise.all(fleet.hosts.map((_, i) => containerIds(i)));
    setModel(v2.file, v2.sha256);
    const r = await up();
    assert.ok(r.ok, r.output);
    const t = transfers(r.events);
    assert.deepEqual(t.pushed, [V2_BYTES]);
    assert.deepEqual(
      t.fetched.map((f) => f.bytes),
      [V2_BYTES, V2_BYTES, V2_BYTES],
    );
    const newKeys = await engineKeys();
    for (const [i, h] of fleet.hosts.entries()) {
      assert.notEqual(newKeys[h.name]?.["inference/detector"], keys[h.name]?.["inference/detector"], h.name);
      assert.equal((await builds(i)).length, 2, h.name);
      const now = await containerIds(i);
      assert.notEqual(now["inference"], ids[i]?.["inference"], `${h.name}: inference restarted`);
      for (const other of ["mediamtx", "web-ui", "jetson-fleet-proxy"])
        assert.equal(now[other], ids[i]?.[other], `${h.name}: ${other} untouched`);
      // The previous engine stays for a rollback (keep 2).
      assert.equal((await fleet.exec(host(i), `ls ${ENGINES}/inference/detector | wc -l`)).trim(), "2");
    }
    // Batch by batch: a host's build starts only once the previous host's services are healthy.
    for (const i of [1, 2]) {
      const [prev, cur] = [host(i - 1).name, host(i).name];
      assert.ok(
        at(r.events, `services-${cur}-models-inference-detector`, "pre") >= at(r.events, `services-${prev}-apply`, "done"),
        `${cur}'s build waited for ${prev}'s apply`,
      );
    }
    // A long build shows its progress in the engine's output as it runs.
    assert.match(r.output, /host \S+: model detector: building the engine \(key [0-9a-f]{16}\): [0-9]+ s/);
    keys = newKeys;
    await assertServing(v2.sha256, keys);
    const build = (i: number) =>
      at(r.events, `services-${host(i).name}-models-inference-detector`, "done") -
      at(r.events, `services-${host(i).name}-models-inference-detector`, "pre");
    figures.push(
      `new model (${V2_BYTES} bytes): up ${r.seconds.toFixed(0)} s; pushed ${t.pushed.join(", ")} bytes; fetched ${t.fetched.map((f) => `${f.bytes} bytes in ${f.seconds} s`).join(", ")}; builds 3, each step ${[0, 1, 2].map((i) => `${build(i)} s`).join(", ")}; only inference restarted`,
    );
  });

  it("rebuilds the engines for a new inference image, fetching nothing", async () => {
    edit((cfg) => {
      const [image] = cfg["images"] as Record<string, unknown>[];
      if (image === undefined) throw new Error("the dev stack builds no image");
      image["buildArgs"] = { VERSION: "0.0.1-models" };
    });
    const r = await up();
    assert.ok(r.ok, r.output);
    assert.deepEqual(transfers(r.events), { pushed: [], fetched: [] });
    const newKeys = await engineKeys();
    for (const [i, h] of fleet.hosts.entries()) {
      assert.notEqual(newKeys[h.name]?.["inference/detector"], keys[h.name]?.["inference/detector"], h.name);
      assert.equal((await builds(i)).length, 3, h.name);
      // Three engines built, two kept (engine.keep): the current one and the one before it.
      assert.equal((await fleet.exec(host(i), `ls ${ENGINES}/inference/detector | wc -l`)).trim(), "2", h.name);
    }
    keys = newKeys;
    const sha = (await health(0)).body.model?.sha256 ?? "";
    await assertServing(sha, keys);
    figures.push(`new image: up ${r.seconds.toFixed(0)} s; 0 bytes fetched; builds 3 (one per host)`);
  });

  it("fails the first host on a malformed model with the builder's output, and leaves every host on its previous engine, serving", async () => {
    const served = await Promise.all(fleet.hosts.map((_, i) => health(i)));
    const ids = await Promise.all(fleet.hosts.map((_, i) => containerIds(i)));
    const before = await Promise.all(fleet.hosts.map((_, i) => builds(i)));
    const bad = writeModel("detector-bad.onnx", malformedOnnx(64 * 1024));
    setModel(bad.file, bad.sha256);
    const r = await up();
    assert.ok(!r.ok, "the update fails");
    assert.match(r.output, new RegExp(`host ${host(0).name}: model detector: the engine build failed \\(exit 1\\)`));
    assert.match(r.output, /Failed to parse ONNX model/);
    assert.match(r.output, /the previous engine and service inference are unchanged/);
    const after = await Promise.all(fleet.hosts.map((_, i) => builds(i)));
    assert.equal(after[0]?.length, (before[0]?.length ?? 0) + 1, "host 1 tried once");
    assert.match(after[0]?.at(-1) ?? "", /result=failed/);
    assert.deepEqual(after.slice(1), before.slice(1), "no later host tried");
    for (const [i, h] of fleet.hosts.entries()) {
      const now = await health(i);
      assert.equal(now.code, 200, h.name);
      assert.deepEqual(now.body.model, served[i]?.body.model, `${h.name} still runs the previous model`);
      assert.equal(now.body.engine.key, served[i]?.body.engine.key, `${h.name} still runs the previous engine`);
      assert.deepEqual(await containerIds(i), ids[i], `${h.name}: no container changed`);
    }
    figures.push(
      `malformed model: host 1 failed after ${r.seconds.toFixed(0)} s, builds: 1 failed on host 1, 0 on hosts 2 and 3; every host serving its previous engine`,
    );
  });
});
