// The Kubernetes target on a real cluster under the real engine: a control plane on this machine
// (tools/kube-cluster.sh) and three simulated Jetsons joined to it as nodes (tools/kube-node.sh:
// containerd, whose `nvidia` handler the stand-in NVIDIA toolkit configured, and a kubelet). The
// program is the dev stack's with `deploy.target: kubernetes`: `pulumi up` builds the inference
// image, pushes it and the detector model to a registry that needs a login, and applies the
// DaemonSet; each node pulls the image by digest with the stack's pull secret, builds its engine in
// the init containers, and runs the service under the `nvidia` runtime class until its probes pass.
// The rollout is awaited. Then: a no-op `up`; an image update, rolled node by node; a broken
// image, which stops the rollout on the first node while the others keep serving, and the `up`
// that recovers; and `destroy`, which leaves nothing in the cluster.
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { REPO, editStackConfig, engineStack, type EngineStack } from "../support/engine.ts";
import { startDevFleet, type DevFleet } from "../support/fleet.ts";
import type { SimHost } from "../support/jetson-sim.ts";
import { dockerBridgeGateway, joinNodes, startKubeCluster, type KubeCluster } from "../support/kubernetes.ts";
import { secretHits } from "../support/secrets.ts";
import { waitUntil } from "../support/images.ts";
import { run, scratchDir, startAuthRegistry, type AuthRegistry } from "../support/services.ts";

const STACK = "kube";
const NAMESPACE = "fleet-kube";
const DEV_REGISTRY = "127.0.0.1:5000";
const USERNAME = "fleet-puller";
const PASSWORD = "kube-pull-pass-7d21e4";
/** A secret environment value of the inference service (services[0].environment.API_TOKEN). */
const API_TOKEN = "kube-api-token-b83f0a";
const SELECTOR = "app.kubernetes.io/name=inference";
const WEB_UI_TAG = `${DEV_REGISTRY}/stand-in/nginx:1.27.4`;

interface Pod {
  metadata: { name: string; uid: string; creationTimestamp: string };
  spec: { nodeName: string; runtimeClassName?: string; imagePullSecrets?: { name: string }[]; containers: { image: string }[] };
  status: {
    phase: string;
    conditions?: { type: string; status: string; lastTransitionTime: string }[];
    containerStatuses?: { name: string; containerID?: string; imageID: string; ready: boolean; state: Record<string, unknown> }[];
    initContainerStatuses?: { name: string; state: { terminated?: { exitCode: number; reason: string } } }[];
  };
}
interface Health {
  status: string;
  model?: { name?: string; sha256?: string };
  engine: { loaded?: boolean; key?: string; readOnly?: boolean };
}

/**
 * The dev stack's inference (built here) and web UI (an exact version tag, resolved to its digest
 * at deploy time) as the kubernetes target takes them, with probes a test can wait for.
 */
function devServices(): Record<string, unknown>[] {
  const dev = parse(readFileSync(join(REPO, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
  const services = dev.config["jetson-fleet:services"] as Record<string, unknown>[];
  const inference = { ...services.find((s) => s["name"] === "inference") };
  const webUi = { ...services.find((s) => s["name"] === "web-ui") };
  // Pods take no ulimits (the node's runtime sets them); start order is the probes'.
  delete inference["ulimits"];
  delete inference["dependsOn"];
  delete webUi["dependsOn"];
  inference["environment"] = { ...(inference["environment"] as Record<string, string>), API_TOKEN: "set as a secret" };
  inference["healthcheck"] = {
    test: ["CMD", "python3", "/opt/inference/app/healthcheck.py"],
    interval: "2s",
    timeout: "5s",
    retries: 3,
    startPeriod: "20s",
  };
  webUi["healthcheck"] = { ...(webUi["healthcheck"] as Record<string, unknown>), interval: "2s", timeout: "5s", retries: 3 };
  return [inference, webUi];
}

describe("the Kubernetes target on three simulated Jetsons as nodes under pulumi up", { timeout: 60 * 60_000 }, () => {
  let registry: AuthRegistry;
  let fleet: DevFleet;
  let kube: KubeCluster;
  let env: EngineStack;
  const figures: string[] = [];
  const host = (i: number): SimHost => fleet.hosts[i] as SimHost;
  const edit = (change: (cfg: Record<string, unknown>) => void) => editStackConfig(env, STACK, change);
  const setImage = (change: (image: Record<string, unknown>) => void) =>
    edit((cfg) => {
      const [image] = cfg["images"] as Record<string, unknown>[];
      assert.ok(image, "the stack builds the inference image");
      change(image);
    });

  async function up(): Promise<{ ok: boolean; output: string; changes: Record<string, number>; seconds: number }> {
    const start = Date.now();
    let output = "";
    try {
      const r = await env.stack.up({ color: "never", onOutput: (o) => (output += o) });
      return { ok: true, output, changes: r.summary.resourceChanges ?? {}, seconds: (Date.now() - start) / 1000 };
    } catch (err) {
      return {
        ok: false,
        output: `${output}\n${err instanceof Error ? err.message : String(err)}`,
        changes: {},
        seconds: (Date.now() - start) / 1000,
      };
    }
  }
  const nonSame = (changes: Record<string, number>) => Object.entries(changes).filter(([op]) => op !== "same");
  const pods = async (selector = SELECTOR) => (await kube.get<{ items: Pod[] }>("-n", NAMESPACE, "pods", "-l", selector)).items;
  const webUiPods = () => pods("app.kubernetes.io/name=web-ui");
  const ready = (p: Pod) => p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  const podOn = async (node: string) => (await pods()).filter((p) => p.spec.nodeName === node);
  const builtRef = async () => (await env.stack.outputs())["imageRefs"]?.value as Record<string, string>;
  const health = async (i: number): Promise<{ code: number; body?: Health }> => {
    try {
      const res = await fetch(`http://${host(i).address}:8080/health`, { signal: AbortSignal.timeout(3_000) });
      return { code: res.status, body: (await res.json()) as Health };
    } catch {
      return { code: 0 };
    }
  };
  /** The container id (containerd's) of a pod's service container. */
  const containerId = (p: Pod) =>
    (
      p.status.containerStatuses?.find((c) => c.name === "inference")?.containerID ?? assert.fail(`${p.metadata.name}: no container id`)
    ).replace(/^containerd:\/\//, "");

  /** Every node runs one Ready pod of `image`, under the nvidia runtime class, serving its engine. */
  async function assertServing(image: string): Promise<Pod[]> {
    const all = await pods();
    assert.deepEqual(all.map((p) => p.spec.nodeName).sort(), fleet.hosts.map((h) => h.name).sort(), "one pod per node");
    for (const p of all) {
      assert.ok(ready(p), `${p.metadata.name} on ${p.spec.nodeName} is not Ready: ${JSON.stringify(p.status)}`);
      assert.equal(p.spec.containers[0]?.image, image, p.spec.nodeName);
      assert.equal(p.spec.runtimeClassName, "nvidia", p.spec.nodeName);
    }
    for (const [i, h] of fleet.hosts.entries()) {
      const { code, body } = await health(i);
      assert.equal(code, 200, `${h.name}: ${JSON.stringify(body)}`);
      assert.equal(body?.model?.name, "detector", h.name);
      assert.equal(body?.engine.loaded, true, h.name);
      assert.equal(body?.engine.readOnly, true, h.name);
    }
    return all;
  }

  before(
    async () => {
      registry = await startAuthRegistry(USERNAME, PASSWORD);
      fleet = await startDevFleet({
        prefix: "jetson-kube",
        addressNet: "127.0.11",
        portBase: 23100,
        publish: "8080 8088",
        registries: [DEV_REGISTRY, registry.server],
      });
      kube = await startKubeCluster(await dockerBridgeGateway());
      const joinMs = await joinNodes(
        kube,
        fleet.hosts.map((h) => h.name),
        [DEV_REGISTRY, registry.server],
      );
      figures.push(
        `control plane start (certificates, etcd, API server, scheduler, controller manager): ${(kube.startMs / 1000).toFixed(1)} s`,
        `three sims joined as nodes (containerd, CNI, NVIDIA toolkit, kubelet) until Ready: ${(joinMs / 1000).toFixed(1)} s`,
      );
      env = await engineStack({
        stack: STACK,
        stackFile: "Pulumi.dev.yaml",
        config: {
          registry: { server: registry.server, username: USERNAME },
          services: devServices(),
          deploy: {
            target: "kubernetes",
            rollout: { maxUnavailable: 1 },
            kubernetes: { namespace: NAMESPACE, nodeSelector: { "kubernetes.io/arch": "amd64" }, rolloutTimeout: "60s" },
          },
        },
        secrets: {
          "registry.password": PASSWORD,
          "deploy.kubernetes.kubeconfig": kube.kubeconfig,
          "services[0].environment.API_TOKEN": API_TOKEN,
        },
        env: fleet.buildEnv,
      });
      // The per-host proxy has nothing to do on Kubernetes.
      edit((cfg) => delete cfg["proxy"]);
    },
    { timeout: 30 * 60_000 },
  );
  after(async () => {
    if (figures.length > 0) console.log(`kubernetes nodes figures:\n${figures.join("\n")}`);
    await env?.dispose().catch(() => undefined);
    await fleet?.stop();
    await kube?.stop();
    await registry?.stop();
  });

  let first: Pod[] = [];
  it("up runs one inference pod per node under the nvidia runtime class, pulled by digest with the pull secret, Ready, serving its engine", async () => {
    const r = await up();
    assert.ok(r.ok, r.output);
    const image = (await builtRef())["inference"] ?? assert.fail("no inference image ref");
    assert.match(image, new RegExp(`^${registry.server.replace(/\./g, "\\.")}/.+@sha256:[0-9a-f]{64}$`));
    first = await assertServing(image);
    const readyAt = Math.max(
      ...first.map((p) => Date.parse(p.status.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime ?? "")),
    );
    for (const p of first) {
      const i = fleet.hosts.findIndex((h) => h.name === p.spec.nodeName);
      // The registry needs a login for every request: the pull itself proves the secret worked.
      assert.deepEqual(p.spec.imagePullSecrets, [{ name: "registry-credentials" }]);
      assert.equal(p.status.containerStatuses?.[0]?.imageID, image);
      // The engine's init containers ran and finished.
      assert.deepEqual(
        p.status.initContainerStatuses?.map((c) => [c.name, c.state.terminated?.exitCode, c.state.terminated?.reason]),
        [
          ["node-facts", 0, "Completed"],
          ["engine-detector", 0, "Completed"],
        ],
      );
      // The handler that ran it: containerd's nvidia runtime, whose binary is the toolkit's runtime.
      const id = containerId(p);
      const config = await fleet.exec(host(i), "cat /etc/containerd/config.toml");
      assert.match(
        config,
        /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.nvidia\.options\]\n\s+BinaryName = "\/usr\/bin\/nvidia-container-runtime"/,
      );
      const runtimeLog = await fleet.exec(host(i), "cat /var/log/nvidia-container-runtime.log");
      assert.match(
        runtimeLog,
        new RegExp(`msg="Running nvidia-container-runtime" args=".* create .*${id}`),
        `${p.spec.nodeName}: ${runtimeLog}`,
      );
      // The secret value is in the running service's environment, and nowhere in the pod's spec or state.
      const pid = (await fleet.exec(host(i), `ctr -n k8s.io tasks ls | awk '$1 == "${id}" { print $2 }'`)).trim();
      assert.match(pid, /^[0-9]+$/, `${p.spec.nodeName}: no task for ${id}`);
      const environ = (await fleet.exec(host(i), `tr '\\0' '\\n' </proc/${pid}/environ`)).split("\n");
      assert.ok(environ.includes(`API_TOKEN=${API_TOKEN}`), `${p.spec.nodeName}: API_TOKEN is not in the service's environment`);
      assert.deepEqual(secretHits({ API_TOKEN }, { [`pod ${p.metadata.name}`]: JSON.stringify(p) }), []);
    }
    // The web UI: its tag resolved to the digest the registry holds for it, one Ready pod per node
    // (a pod network of its own, the host port through the CNI's portmap), answering on every node.
    const webUi = await webUiPods();
    assert.equal(webUi.length, fleet.hosts.length);
    const digest = (
      await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${WEB_UI_TAG}`])
    ).stdout.trim();
    const webUiRef = `${WEB_UI_TAG.replace(/:[^:/]+$/, "")}@${digest}`;
    for (const p of webUi) {
      assert.ok(ready(p), `${p.metadata.name} on ${p.spec.nodeName}`);
      assert.equal(p.spec.containers[0]?.image, webUiRef);
    }
    for (const h of fleet.hosts) {
      const res = await fetch(`http://${h.address}:8088/`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(res.status, 200, h.name);
    }
    figures.push(
      `first up (image build and push, model push, DaemonSet, pulls, engine builds, probes; awaited): ${r.seconds.toFixed(0)} s; last pod Ready ${((readyAt - Date.now()) / 1000 + r.seconds).toFixed(0)} s after up started`,
    );
  });

  it("a second up changes nothing: no resource, no pod", async () => {
    assert.ok(first.length, "the first up ran");
    const r = await up();
    assert.ok(r.ok, r.output);
    assert.deepEqual(nonSame(r.changes), []);
    assert.deepEqual((await pods()).map((p) => p.metadata.uid).sort(), first.map((p) => p.metadata.uid).sort());
    figures.push(`no-op up: ${r.seconds.toFixed(1)} s, 0 changes, every pod the same`);
  });

  /** Samples each node's /health every 500 ms while `during` runs: per node, the windows it did not answer 200. */
  async function sampleAvailability<T>(
    during: () => Promise<T>,
  ): Promise<{ result: T; down: { start: number; end: number }[][]; maxDown: number }> {
    const down: { start: number; end: number }[][] = fleet.hosts.map(() => []);
    let maxDown = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = Date.now();
        const codes = await Promise.all(fleet.hosts.map((_, i) => health(i).then((h) => h.code)));
        maxDown = Math.max(maxDown, codes.filter((c) => c !== 200).length);
        codes.forEach((c, i) => {
          const windows = down[i] as { start: number; end: number }[];
          const last = windows[windows.length - 1];
          if (c !== 200) {
            if (last && last.end === -1) return;
            windows.push({ start: now, end: -1 });
          } else if (last && last.end === -1) last.end = now;
        });
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    try {
      return { result: await during(), down, maxDown };
    } finally {
      sampling = false;
      await sampler;
    }
  }

  let updated = "";
  it("an image update rolls node by node (maxUnavailable 1): never more than one node down, each back on the new image", async () => {
    const before = (await builtRef())["inference"];
    const webUi = (await webUiPods()).map((p) => p.metadata.uid).sort();
    setImage((image) => (image["buildArgs"] = { VERSION: `1.0.1-kube-${process.pid}` }));
    const { result: r, down, maxDown } = await sampleAvailability(up);
    assert.ok(r.ok, r.output);
    updated = (await builtRef())["inference"] ?? "";
    assert.notEqual(updated, before, "a new digest");
    await assertServing(updated);
    assert.equal(maxDown, 1, `at most one node down at a time: ${JSON.stringify(down)}`);
    assert.deepEqual((await webUiPods()).map((p) => p.metadata.uid).sort(), webUi, "the web UI's pods are untouched");
    // Each node went down once and came back, one after another.
    const windows = down.map((w, i) => {
      assert.equal(w.length, 1, `${host(i).name}: ${JSON.stringify(w)}`);
      return w[0] as { start: number; end: number };
    });
    const order = [...windows].sort((a, b) => a.start - b.start);
    for (let k = 1; k < order.length; k++)
      assert.ok((order[k] as { start: number }).start >= (order[k - 1] as { end: number }).end, JSON.stringify(order));
    figures.push(
      `image update: up ${r.seconds.toFixed(0)} s; per node down (old pod stopped to new pod serving): ${windows.map((w, i) => `${host(i).name} ${((w.end - w.start) / 1000).toFixed(1)} s`).join(", ")}`,
    );
  });

  it("a broken image stops the rollout on the first node with the pod's failure in the error; the other nodes keep serving the previous version; the next up recovers", async () => {
    assert.ok(updated, "the image update ran");
    // The inference image with a service that exits at start: a real build of a broken release.
    const context = join(scratchDir("kube-broken"), "inference");
    cpSync(join(REPO, "images", "inference"), context, { recursive: true });
    const server = join(context, "service", "server.py");
    writeFileSync(
      server,
      `import sys\nsys.exit("inference: this release is broken (kubernetes-nodes test)")\n${readFileSync(server, "utf8")}`,
    );
    setImage((image) => (image["context"] = context));
    const { result: r, down } = await sampleAvailability(up);
    assert.equal(r.ok, false, "the broken rollout fails the up");
    const broken = (await builtRef())["inference"];
    const all = await pods();
    const onBroken = all.filter((p) => p.spec.containers[0]?.image !== updated);
    assert.equal(
      onBroken.length,
      1,
      `one node tried the broken image: ${all.map((p) => `${p.spec.nodeName} ${p.spec.containers[0]?.image}`).join(", ")}`,
    );
    const failed = onBroken[0] as Pod;
    assert.ok(!ready(failed));
    // `up` printed the pod's failure as the rollout waited (its last log line, the termination message), then the timeout.
    const pod = failed.metadata.name;
    assert.match(
      r.output,
      new RegExp(`\\[Pod ${NAMESPACE}/${pod}\\]: containers with unready status: \\[inference\\].*inference: this release is broken`),
    );
    assert.match(
      r.output,
      new RegExp(`\\[Pod ${NAMESPACE}/${pod}\\]: containers with unready status: \\[inference\\]\\[CrashLoopBackOff\\]`),
    );
    assert.match(
      r.output,
      /the Kubernetes API server reported that "fleet-kube\/inference" failed to fully initialize or become live: timed out waiting for the condition/,
    );
    // The others still run the previous version, Ready and serving.
    for (const [i, h] of fleet.hosts.entries()) {
      if (h.name === failed.spec.nodeName) continue;
      const [p] = await podOn(h.name);
      assert.equal(p?.spec.containers[0]?.image, updated, h.name);
      assert.ok(p && ready(p), h.name);
      assert.equal((await health(i)).code, 200, h.name);
    }
    figures.push(
      `broken image ${broken ?? "(its ref)"}: up failed after ${r.seconds.toFixed(0)} s on ${failed.spec.nodeName}; the other ${fleet.hosts.length - 1} nodes served throughout (down windows: ${down.map((w) => w.length).join(", ")})`,
    );
    // What the operator does (README, "Kubernetes fleet"): the previous release back in the stack, up.
    setImage((image) => (image["context"] = "images/inference"));
    const back = await up();
    assert.ok(back.ok, back.output);
    assert.equal((await builtRef())["inference"], updated, "the previous image, rebuilt from the same inputs, has the same digest");
    await assertServing(updated);
    figures.push(
      `recovery up (the previous release back): ${back.seconds.toFixed(0)} s, every node on ${updated.split("@")[1]?.slice(0, 19)}`,
    );
  });

  it("destroy removes the namespace and everything in it, and the runtime class; nothing is left in the cluster or on the nodes", async () => {
    const start = Date.now();
    await env.stack.destroy({ color: "never" });
    await assert.rejects(kube.kubectl("get", "namespace", NAMESPACE), /NotFound|not found/);
    await assert.rejects(kube.kubectl("get", "runtimeclass", "nvidia"), /NotFound|not found/);
    assert.equal((await kube.kubectl("get", "pods", "-A", "-l", "app.kubernetes.io/part-of=jetson-fleet", "-o", "name")).trim(), "");
    // No container of the fleet's pods is left in any node's runtime (the kubelet removes them once their pods are gone).
    const left = (h: SimHost) =>
      fleet.exec(
        h,
        `ctr -n k8s.io containers ls --quiet | xargs -r -n1 ctr -n k8s.io containers info | grep -c '"io.kubernetes.pod.namespace": "${NAMESPACE}"' || true`,
      );
    await waitUntil(
      "no container of the fleet left on the nodes",
      async () => (await Promise.all(fleet.hosts.map(left))).every((n) => n.trim() === "0"),
      120_000,
    );
    figures.push(`destroy: ${((Date.now() - start) / 1000).toFixed(0)} s, namespace and runtime class gone, no container left on any node`);
  });
});
