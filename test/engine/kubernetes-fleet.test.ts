// The Kubernetes fleet under the real engine, against a real API server (etcd + kube-apiserver
// built from k8s.io/kubernetes): every object is applied with server-side apply and so passes the
// server's schema, defaulting, validation and admission; kubectl reads them back; a second up
// changes nothing; an image not pinned by digest is refused before anything reaches the server.
// A secret environment value reaches the pods only through a Secret (`secretKeyRef`): it is not in
// the workload, not in `pulumi stack export` or the backend's files, not in a rendered directory.
// A service with a model gets the init containers that build its engine on the node (node-facts,
// engine-<model>) and the ConfigMap of their script, which the server accepts as rendered (the
// cluster has no nodes: nothing runs them here).
import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  ENGINE_SCRIPT_ANNOTATION,
  ModelSpec,
  ServiceSpec,
  dockerConfigJson,
  engineScript,
  engineScriptSha256,
  fleetManifests,
  manifestList,
} from "../../components/index.ts";
import { engineStack, type EngineStack } from "../support/engine.ts";
import { startKubeCluster, type KubeCluster } from "../support/kubernetes.ts";
import { secretHits, secretLeaks } from "../support/secrets.ts";

const INFERENCE_REF = `registry.lab:5000/fleet/inference@sha256:${"4f".repeat(32)}`;
const WEBUI_REF = `registry.lab:5000/fleet/webui:2.0@sha256:${"a1".repeat(32)}`;
const PLUGIN_REF = `registry.lab:5000/nvidia/k8s-device-plugin:v0.17.1@sha256:${"9e".repeat(32)}`;
const MEDIAMTX_REF = `registry.lab:5000/bluenviron/mediamtx:1.9.3@sha256:${"0c".repeat(32)}`;
const REGISTRY_PASSWORD = "engine-pull-pass-5c81d2";
/** A secret environment value of the inference service, stored encrypted at services[0].environment.API_TOKEN. */
const API_TOKEN = "engine-api-token-0f4e9b";
const SECRET_ENVIRONMENT = { inference: ["API_TOKEN"] };
const NAMESPACE = "fleet-engine";
const DETECTOR_SHA256 = "3b1f".repeat(16);
const MODELS = [
  {
    name: "detector",
    source: { file: "models/detector.onnx" },
    sha256: DETECTOR_SHA256,
    engine: { precision: "fp16", workspace: "1g", flags: ["--builderOptimizationLevel=3"] },
  },
];

const SERVICES = [
  {
    name: "inference",
    build: "inference",
    runtime: "nvidia",
    network: "host",
    ports: [{ target: 8080 }],
    environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video" },
    volumes: [
      { source: "/opt/fleet/models", target: "/models", readOnly: true },
      { source: "/opt/fleet/output", target: "/output" },
    ],
    shmSize: "2g",
    healthcheck: { test: ["CMD", "python3", "/app/healthcheck.py"], startPeriod: "30s" },
    resources: { cpus: 1.5, memory: "1g", gpus: "all" },
    user: "1000:1000",
    readOnlyRootFilesystem: true,
    capDrop: ["ALL"],
    models: [{ name: "detector", path: "/engines/detector.engine" }],
  },
  {
    name: "mediamtx",
    image: MEDIAMTX_REF,
    ports: [{ target: 8554 }, { target: 8889, published: 18889, hostIp: "127.0.0.1" }, { target: 8189, protocol: "udp" }],
    volumes: [
      { type: "tmpfs", target: "/tmp" },
      { type: "volume", source: "recordings", target: "/recordings" },
    ],
    ipc: "host",
    securityOpt: ["no-new-privileges:true", "seccomp=unconfined"],
  },
  {
    name: "webui",
    image: WEBUI_REF,
    ports: [{ target: 3000, published: 13000 }],
    healthcheck: { test: ["CMD-SHELL", "wget -qO- http://localhost:3000/"] },
  },
];

/** The Secret the inference container reads API_TOKEN from. */
function secretRefOf(ds: Obj): string {
  const env = (ds.spec.template.spec.containers[0]?.["env"] ?? []) as { name: string; value?: string; valueFrom?: unknown }[];
  const token = env.find((e) => e.name === "API_TOKEN");
  assert.equal(token?.value, undefined, "API_TOKEN is a plain value in the workload");
  const ref = (token?.valueFrom as { secretKeyRef?: { name: string; key: string } } | undefined)?.secretKeyRef;
  assert.equal(ref?.key, "API_TOKEN", JSON.stringify(token));
  return ref?.name ?? "";
}

interface Obj {
  metadata: { name: string; generation?: number; resourceVersion: string; managedFields?: { manager: string; operation: string }[] };
  spec: Record<string, unknown> & {
    template: { spec: Record<string, unknown> & { containers: (Record<string, unknown> & { image: string })[] } };
  };
}

describe("Kubernetes fleet under the real engine against a real API server", () => {
  let kube: KubeCluster;
  const stacks: EngineStack[] = [];
  /** Everything the engine printed, for the secret search. */
  let engineOutput = "";
  async function up(env: EngineStack) {
    const result = await env.stack.up({ color: "never" });
    engineOutput += result.stdout + result.stderr;
    return result;
  }
  /** Every secret of the fleet stack, and the forms the registry login takes in a pull secret. */
  const fleetSecrets = (more: Record<string, string> = {}) => ({
    "the kubeconfig": kube.kubeconfig,
    "the registry password": REGISTRY_PASSWORD,
    "the pull secret's .dockerconfigjson": dockerConfigJson("registry.lab:5000", "fleet", REGISTRY_PASSWORD),
    "services[0].environment.API_TOKEN": API_TOKEN,
    ...more,
  });

  async function fleetStack(
    stack: string,
    namespace: string,
    services: unknown[],
    extra: Record<string, unknown> = {},
    secrets: Record<string, string> = { "services[0].environment.API_TOKEN": API_TOKEN },
  ): Promise<EngineStack> {
    const env = await engineStack({
      program: "test/engine/programs/kubernetes-fleet",
      stack,
      config: {
        ...extra,
        services,
        models: MODELS,
        secretEnvironment: SECRET_ENVIRONMENT,
        images: { inference: INFERENCE_REF },
        namespace,
        rollout: { maxUnavailable: "25%" },
        registryServer: "registry.lab:5000",
        registryUsername: "fleet",
        workloads: { webui: { kind: "Deployment", replicas: 2 } },
        gpu: { mode: "device-plugin", image: PLUGIN_REF },
      },
      secrets: { kubeconfig: kube.kubeconfig, registryPassword: REGISTRY_PASSWORD, ...secrets },
    });
    stacks.push(env);
    return env;
  }

  before(async () => {
    kube = await startKubeCluster();
    console.log(`API server start (certificates, etcd, kube-apiserver until /readyz): ${(kube.startMs / 1000).toFixed(1)} s`);
  });

  after(async () => {
    // No node runs these objects, so the stacks are dropped with the control plane rather than
    // destroyed (kubernetes-nodes.test.ts destroys a fleet on real nodes).
    await kube?.stop();
    for (const s of stacks) {
      rmSync(s.dir, { recursive: true, force: true });
      rmSync(s.stateDir, { recursive: true, force: true });
    }
  });

  let before1: Record<string, string> | undefined;

  it("up applies every object and the API server accepts it; kubectl reads them back", async () => {
    const env = await fleetStack("fleet", NAMESPACE, SERVICES);
    const start = performance.now();
    const result = await up(env);
    console.log(`fleet up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    assert.equal(result.outputs["namespace"]?.value, NAMESPACE);
    assert.deepEqual(result.outputs["images"]?.value, { inference: INFERENCE_REF, mediamtx: MEDIAMTX_REF, webui: WEBUI_REF });

    assert.equal((await kube.get<{ status: { phase: string } }>("namespace", NAMESPACE)).status.phase, "Active");
    assert.equal((await kube.get<{ handler: string }>("runtimeclass", "nvidia")).handler, "nvidia");

    const ds = await kube.get<Obj>("-n", NAMESPACE, "daemonset", "inference");
    const pod = ds.spec.template.spec;
    const c = pod.containers[0];
    assert.ok(c);
    assert.equal(c.image, INFERENCE_REF);
    assert.equal(pod["runtimeClassName"], "nvidia");
    assert.equal(pod["hostNetwork"], true);
    assert.deepEqual(pod["nodeSelector"], { "kubernetes.io/arch": "arm64" });
    assert.deepEqual(pod["imagePullSecrets"], [{ name: "registry-credentials" }]);
    assert.deepEqual(ds.spec["updateStrategy"], { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: 0 } });
    // Server-side defaulting ran (the server, not the client, filled these in).
    assert.equal(c["terminationMessagePath"], "/dev/termination-log");
    assert.equal(pod["restartPolicy"], "Always");
    assert.deepEqual(
      (pod["volumes"] as { name: string; hostPath?: { path: string; type: string } }[]).map((v) => [v.name, v.hostPath?.path]),
      [
        ["volume-0", "/opt/fleet/models"],
        ["volume-1", "/opt/fleet/output"],
        ["shm", undefined],
        ["engine-init", undefined],
        ["node-facts", undefined],
        ["host-etc", "/etc"],
        ["host-firmware", "/sys/firmware"],
        ["engine-store", "/var/lib/jetson-fleet/engines"],
        ["model-store", `/var/lib/jetson-fleet/models/${NAMESPACE}`],
        ["engine-tmp", undefined],
        ["registry-auth", undefined],
        ["engines", `/var/lib/jetson-fleet/engines/${NAMESPACE}/inference`],
        ["engine-links-0", undefined],
      ],
    );
    assert.deepEqual(c["volumeMounts"], [
      { name: "volume-0", mountPath: "/models", readOnly: true },
      { name: "volume-1", mountPath: "/output" },
      { name: "shm", mountPath: "/dev/shm" },
      { name: "engines", mountPath: `/var/lib/jetson-fleet/engines/${NAMESPACE}/inference`, readOnly: true },
      { name: "engine-links-0", mountPath: "/engines", readOnly: true },
    ]);
    // The engine's init containers, as the server stores them (its defaults filled in), in order.
    const init = (pod["initContainers"] ?? []) as (Record<string, unknown> & { env: { name: string; value?: string }[] })[];
    assert.deepEqual(
      init.map((x) => [x["name"], x["image"], x["command"], x["args"], x["terminationMessagePolicy"]]),
      [
        ["node-facts", INFERENCE_REF, ["sh", "/jetson-fleet/engine-init/engine-init.sh", "facts"], undefined, "FallbackToLogsOnError"],
        [
          "engine-detector",
          INFERENCE_REF,
          ["sh", "/jetson-fleet/engine-init/engine-init.sh", "build"],
          ["--fp16", "--memPoolSize=workspace:1024M", "--skipInference", "--builderOptimizationLevel=3"],
          "FallbackToLogsOnError",
        ],
      ],
    );
    const build = init[1];
    assert.ok(build);
    const envOf = (name: string) => build.env.find((e) => e.name === name)?.value;
    assert.equal(envOf("ENGINE_MODEL_URL"), `https://registry.lab:5000/v2/models/detector/blobs/sha256:${DETECTOR_SHA256}`);
    assert.equal(envOf("ENGINE_NAMESPACE"), NAMESPACE);
    assert.equal(envOf("ENGINE_REGISTRY_AUTH"), "/jetson-fleet/registry/config.json");
    assert.deepEqual(build["securityContext"], {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.deepEqual((init[0]?.["securityContext"] as { runAsUser: number }).runAsUser, 65534);
    assert.equal(build["terminationMessagePath"], "/dev/termination-log");
    assert.deepEqual(build["resources"], c["resources"]);
    // The script's ConfigMap, whose hash rolls the pods when it changes.
    const configMap = await kube.get<{ data: Record<string, string> }>("-n", NAMESPACE, "configmap", "engine-init");
    assert.deepEqual(configMap.data, { "engine-init.sh": engineScript() });
    assert.equal(
      (ds.spec.template as unknown as { metadata: { annotations: Record<string, string> } }).metadata.annotations[ENGINE_SCRIPT_ANNOTATION],
      engineScriptSha256(),
    );
    assert.deepEqual(c["resources"], {
      requests: { cpu: "1500m", memory: "1Gi", "nvidia.com/gpu": "1" },
      limits: { cpu: "1500m", memory: "1Gi", "nvidia.com/gpu": "1" },
    });
    assert.deepEqual((c["readinessProbe"] as { exec: unknown }).exec, { command: ["python3", "/app/healthcheck.py"] });
    assert.deepEqual(c["securityContext"], {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    assert.deepEqual(pod["securityContext"], { runAsUser: 1000, runAsGroup: 1000 });
    // Server-side apply by the Pulumi provider.
    const managed = (await kube.get<Obj>("--show-managed-fields", "-n", NAMESPACE, "daemonset", "inference")).metadata.managedFields;
    assert.ok(
      managed?.some((f) => f.operation === "Apply" && f.manager.startsWith("pulumi")),
      JSON.stringify(managed),
    );

    const plugin = await kube.get<Obj>("-n", NAMESPACE, "daemonset", "nvidia-device-plugin");
    assert.equal(plugin.spec.template.spec.containers[0]?.image, PLUGIN_REF);
    assert.equal(plugin.spec.template.spec["runtimeClassName"], "nvidia");

    const mediamtx = await kube.get<Obj>("-n", NAMESPACE, "daemonset", "mediamtx");
    assert.equal(mediamtx.spec.template.spec["hostIPC"], true);
    assert.equal(mediamtx.spec.template.spec["runtimeClassName"], undefined);
    assert.deepEqual(mediamtx.spec.template.spec.containers[0]?.["ports"], [
      { containerPort: 8554, protocol: "TCP" },
      { containerPort: 8889, hostIP: "127.0.0.1", hostPort: 18889, protocol: "TCP" },
      { containerPort: 8189, protocol: "UDP" },
    ]);
    assert.deepEqual(mediamtx.spec.template.spec.containers[0]?.["securityContext"], {
      allowPrivilegeEscalation: false,
      seccompProfile: { type: "Unconfined" },
    });

    const deploy = await kube.get<Obj>("-n", NAMESPACE, "deployment", "webui");
    assert.equal(deploy.spec["replicas"], 2);
    assert.deepEqual(deploy.spec["strategy"], { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: 0 } });
    assert.equal(deploy.spec.template.spec.containers[0]?.image, WEBUI_REF);
    assert.deepEqual(deploy.spec.template.spec.containers[0]?.["ports"], [{ containerPort: 3000, hostPort: 13000, protocol: "TCP" }]);

    const pdbs = await kube.get<{ items: { metadata: { name: string }; spec: { maxUnavailable: unknown } }[] }>("-n", NAMESPACE, "pdb");
    assert.deepEqual(
      pdbs.items.map((p) => [p.metadata.name, p.spec.maxUnavailable]),
      [
        ["inference", "25%"],
        ["mediamtx", "25%"],
        ["webui", "25%"],
      ],
    );

    const secret = await kube.get<{ type: string; data: Record<string, string> }>("-n", NAMESPACE, "secret", "registry-credentials");
    assert.equal(secret.type, "kubernetes.io/dockerconfigjson");
    const auths = (
      JSON.parse(Buffer.from(secret.data[".dockerconfigjson"] ?? "", "base64").toString()) as { auths: Record<string, unknown> }
    ).auths;
    assert.deepEqual(auths, {
      "registry.lab:5000": {
        username: "fleet",
        password: REGISTRY_PASSWORD,
        auth: Buffer.from(`fleet:${REGISTRY_PASSWORD}`).toString("base64"),
      },
    });
    // The secret environment value: from the service's Secret, never a value in the workload.
    const tokenRef = secretRefOf(ds);
    assert.match(tokenRef, /^fleet-inference-environment-[a-z0-9]+$/, "the Secret is named by Pulumi");
    const env0 = c["env"] as { name: string; value?: string; valueFrom?: unknown }[];
    assert.deepEqual(
      env0.filter((e) => e.name !== "API_TOKEN"),
      [
        { name: "NVIDIA_DRIVER_CAPABILITIES", value: "compute,utility,video" },
        { name: "NVIDIA_VISIBLE_DEVICES", value: "all" },
      ],
    );
    assert.deepEqual(secretHits({ API_TOKEN }, { "the DaemonSet": JSON.stringify(ds) }), []);
    const envSecret = await kube.get<{ type: string; data: Record<string, string> }>("-n", NAMESPACE, "secret", tokenRef);
    assert.equal(envSecret.type, "Opaque");
    assert.deepEqual(envSecret.data, { API_TOKEN: Buffer.from(API_TOKEN).toString("base64") });
    // No secret is in the state as `pulumi stack export` prints it, the backend's files or the engine's output, in any form.
    assert.deepEqual(await secretLeaks(fleetSecrets(), { env, stack: "fleet", engineOutput }), []);

    before1 = Object.fromEntries(
      await Promise.all(
        [
          "daemonset/inference",
          "daemonset/mediamtx",
          "daemonset/nvidia-device-plugin",
          "deployment/webui",
          "pdb/inference",
          "pdb/webui",
          "secret/registry-credentials",
          `secret/${tokenRef}`,
          "configmap/engine-init",
        ].map(async (o) => [o, (await kube.get<Obj>("-n", NAMESPACE, o)).metadata.resourceVersion] as const),
      ),
    );
  });

  it("a second up changes nothing, in Pulumi and on the server", async () => {
    assert.ok(before1, "the first up ran");
    const env = stacks[0];
    assert.ok(env);
    const start = performance.now();
    const result = await up(env);
    console.log(`no-op fleet up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const changes = result.summary.resourceChanges ?? {};
    assert.deepEqual(Object.keys(changes), ["same"], JSON.stringify(changes));
    for (const [o, version] of Object.entries(before1)) {
      assert.equal((await kube.get<Obj>("-n", NAMESPACE, o)).metadata.resourceVersion, version, `${o} was written again`);
    }
  });

  it("a new secret value is a new Secret the workload rolls onto; the old one goes; the value stays out of the state", async () => {
    const env = stacks[0];
    assert.ok(env && before1, "the first up ran");
    const rotated = "engine-api-token-rotated-61c2";
    const old = secretRefOf(await kube.get<Obj>("-n", NAMESPACE, "daemonset", "inference"));
    const generation = (await kube.get<Obj>("-n", NAMESPACE, "daemonset", "inference")).metadata.generation ?? 0;
    await env.stack.setConfig("kubernetes-fleet:services[0].environment.API_TOKEN", { value: rotated, secret: true }, true);
    await up(env);
    const ds = await kube.get<Obj>("-n", NAMESPACE, "daemonset", "inference");
    const now = secretRefOf(ds);
    assert.notEqual(now, old, "the workload reads a new Secret");
    assert.ok((ds.metadata.generation ?? 0) > generation, "the DaemonSet's pod template changed (pods roll)");
    const secret = await kube.get<{ data: Record<string, string> }>("-n", NAMESPACE, "secret", now);
    assert.deepEqual(secret.data, { API_TOKEN: Buffer.from(rotated).toString("base64") });
    await assert.rejects(kube.kubectl("get", "-n", NAMESPACE, "secret", old), /NotFound|not found/);
    // Nothing else was written.
    for (const o of ["daemonset/mediamtx", "daemonset/nvidia-device-plugin", "deployment/webui", "secret/registry-credentials"]) {
      assert.equal((await kube.get<Obj>("-n", NAMESPACE, o)).metadata.resourceVersion, before1[o], `${o} was written again`);
    }
    assert.deepEqual(await secretLeaks(fleetSecrets({ "the rotated API_TOKEN": rotated }), { env, stack: "fleet", engineOutput }), []);
  });

  it("the server's validation is live: it refuses an object our manifests would never produce", async () => {
    // Host networking with a host port other than the container port is invalid on the server.
    const file = join(kube.dir, "invalid-daemonset.json");
    const labels = { "app.kubernetes.io/name": "invalid" };
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: "apps/v1",
        kind: "DaemonSet",
        metadata: { name: "invalid", namespace: NAMESPACE },
        spec: {
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              hostNetwork: true,
              containers: [{ name: "invalid", image: WEBUI_REF, ports: [{ containerPort: 8080, hostPort: 9000 }] }],
            },
          },
        },
      }),
    );
    await assert.rejects(kube.kubectl("apply", "--server-side", "-f", file), /must match `containerPort` when `hostNetwork` is true/);
    await assert.rejects(kube.kubectl("get", "-n", NAMESPACE, "daemonset", "invalid"), /NotFound|not found/);
  });

  it("renders the same objects to a directory for GitOps, no Secret and no secret value in it, sending nothing to the server", async () => {
    const out = join(kube.dir, "gitops");
    const env = await fleetStack("gitops", "fleet-gitops", SERVICES, { renderYamlToDirectory: out });
    await up(env);
    const files = (readdirSync(out, { recursive: true }) as string[]).filter((f) => f.endsWith(".yaml"));
    const objects = files.flatMap((f) =>
      parseAllDocuments(readFileSync(join(out, f), "utf8")).map((d) => d.toJS() as { kind: string; metadata: { name: string } }),
    );
    // Secrets are applied apart (the README, "Kubernetes fleet"): none is written, neither is any value.
    assert.deepEqual(
      objects.filter((o) => o.kind === "Secret").map((o) => o.metadata.name),
      [],
    );
    assert.deepEqual(await secretLeaks(fleetSecrets(), { env, stack: "gitops", engineOutput, renderedDirs: [out] }), []);
    const withToken = SERVICES.map((s, i) => (i === 0 ? { ...s, environment: { ...s.environment, API_TOKEN } } : s));
    const expected = manifestList(
      fleetManifests({
        services: withToken.map((s) => ServiceSpec.parse(s)),
        models: MODELS.map((m) => ModelSpec.parse(m)),
        secretEnvironment: SECRET_ENVIRONMENT,
        images: { inference: INFERENCE_REF },
        namespace: "fleet-gitops",
        rollout: { maxUnavailable: "25%" },
        registry: { server: "registry.lab:5000", username: "fleet" },
        workloads: { webui: { kind: "Deployment", replicas: 2 } },
        gpu: { mode: "device-plugin", image: PLUGIN_REF },
        source: { project: "kubernetes-fleet", stack: "gitops" },
      }),
    );
    const key = (o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;
    assert.deepEqual(objects.map(key).sort(), expected.map(key).sort());
    // The engine build's script is rendered too (it holds no secret).
    assert.ok(objects.map(key).includes("ConfigMap/engine-init"), objects.map(key).join(", "));
    for (const want of expected) {
      const got = objects.find((o) => key(o) === key(want)) as Record<string, unknown> | undefined;
      for (const field of ["spec", "data", "handler", "type"]) {
        if (want[field] !== undefined) assert.deepEqual(got?.[field], JSON.parse(JSON.stringify(want[field])), `${key(want)} ${field}`);
      }
    }
    await assert.rejects(kube.kubectl("get", "namespace", "fleet-gitops"), /NotFound|not found/);
  });

  it("an image not pinned by digest is refused by our validation before anything is sent", async () => {
    const env = await fleetStack("invalid", "fleet-invalid", [{ name: "webui", image: "registry.lab:5000/fleet/webui:2.0" }], {}, {});
    let output = "";
    const err = await env.stack.up({ color: "never", onOutput: (o) => (output += o) }).then(
      () => assert.fail("up should fail"),
      (e: unknown) => e as Error,
    );
    const text = `${err.message}\n${output}`;
    assert.match(
      text,
      /Pulumi\.invalid\.yaml: kubernetes-fleet:services\[0\]\.image: "registry\.lab:5000\/fleet\/webui:2\.0" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository\[:tag\]@sha256:<64 hex digits>/,
    );
    // Nothing reached the server: not even the namespace.
    await assert.rejects(kube.kubectl("get", "namespace", "fleet-invalid"), /NotFound|not found/);
    const state = (await env.stack.exportStack()).deployment as { resources?: { type: string }[] };
    assert.deepEqual(
      (state.resources ?? []).map((r) => r.type).filter((t) => t.startsWith("kubernetes:")),
      [],
    );
  });
});
