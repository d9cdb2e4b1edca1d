// The Kubernetes fleet under the real engine, against a real API server (etcd + kube-apiserver
// built from k8s.io/kubernetes): every object is applied with server-side apply and so passes the
// server's schema, defaulting, validation and admission; kubectl reads them back; a second up
// changes nothing; an image not pinned by digest is refused before anything reaches the server.
import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { ServiceSpec, fleetManifests, manifestList } from "../../components/index.ts";
import { engineStack, type EngineStack } from "../support/engine.ts";
import { startKubeApiServer, type KubeApiServer } from "../support/kubernetes.ts";

const INFERENCE_REF = `registry.lab:5000/fleet/inference@sha256:${"4f".repeat(32)}`;
const WEBUI_REF = `registry.lab:5000/fleet/webui:2.0@sha256:${"a1".repeat(32)}`;
const PLUGIN_REF = `registry.lab:5000/nvidia/k8s-device-plugin:v0.17.1@sha256:${"9e".repeat(32)}`;
const MEDIAMTX_REF = `registry.lab:5000/bluenviron/mediamtx:1.9.3@sha256:${"0c".repeat(32)}`;
const REGISTRY_PASSWORD = "engine-pull-pass-5c81d2";
const NAMESPACE = "fleet-engine";

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

interface Obj {
  metadata: { name: string; generation?: number; resourceVersion: string; managedFields?: { manager: string; operation: string }[] };
  spec: Record<string, unknown> & {
    template: { spec: Record<string, unknown> & { containers: (Record<string, unknown> & { image: string })[] } };
  };
}

describe("Kubernetes fleet under the real engine against a real API server", () => {
  let kube: KubeApiServer;
  const stacks: EngineStack[] = [];

  async function fleetStack(
    stack: string,
    namespace: string,
    services: unknown[],
    extra: Record<string, unknown> = {},
  ): Promise<EngineStack> {
    const env = await engineStack({
      program: "test/engine/programs/kubernetes-fleet",
      stack,
      config: {
        ...extra,
        services,
        images: { inference: INFERENCE_REF },
        namespace,
        rollout: { maxUnavailable: "25%" },
        registryServer: "registry.lab:5000",
        registryUsername: "fleet",
        workloads: { webui: { kind: "Deployment", replicas: 2 } },
        gpu: { mode: "device-plugin", image: PLUGIN_REF },
      },
      secrets: { kubeconfig: kube.kubeconfig, registryPassword: REGISTRY_PASSWORD },
    });
    stacks.push(env);
    return env;
  }

  before(async () => {
    kube = await startKubeApiServer();
    console.log(`API server start (certificates, etcd, kube-apiserver until /readyz): ${(kube.startMs / 1000).toFixed(1)} s`);
  });

  after(async () => {
    // Without kube-controller-manager a namespace never finishes terminating, so the stacks are
    // dropped with the API server rather than destroyed.
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
    const result = await env.stack.up({ color: "never" });
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
      ],
    );
    assert.deepEqual(c["volumeMounts"], [
      { name: "volume-0", mountPath: "/models", readOnly: true },
      { name: "volume-1", mountPath: "/output" },
      { name: "shm", mountPath: "/dev/shm" },
    ]);
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
    // The password is a secret in the stack's state.
    const state = JSON.stringify(await env.stack.exportStack());
    assert.equal(state.includes(REGISTRY_PASSWORD), false, "the registry password is in the state in clear text");

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
        ].map(async (o) => [o, (await kube.get<Obj>("-n", NAMESPACE, o)).metadata.resourceVersion] as const),
      ),
    );
  });

  it("a second up changes nothing, in Pulumi and on the server", async () => {
    assert.ok(before1, "the first up ran");
    const env = stacks[0];
    assert.ok(env);
    const start = performance.now();
    const result = await env.stack.up({ color: "never" });
    console.log(`no-op fleet up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const changes = result.summary.resourceChanges ?? {};
    assert.deepEqual(Object.keys(changes), ["same"], JSON.stringify(changes));
    for (const [o, version] of Object.entries(before1)) {
      assert.equal((await kube.get<Obj>("-n", NAMESPACE, o)).metadata.resourceVersion, version, `${o} was written again`);
    }
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

  it("renders the same objects to a directory for GitOps, sending nothing to the server", async () => {
    const out = join(kube.dir, "gitops");
    const env = await fleetStack("gitops", "fleet-gitops", SERVICES, { renderYamlToDirectory: out });
    await env.stack.up({ color: "never" });
    const files = (readdirSync(out, { recursive: true }) as string[]).filter((f) => f.endsWith(".yaml"));
    const objects = files.flatMap((f) =>
      parseAllDocuments(readFileSync(join(out, f), "utf8")).map((d) => d.toJS() as { kind: string; metadata: { name: string } }),
    );
    const expected = manifestList(
      fleetManifests({
        services: SERVICES.map((s) => ServiceSpec.parse(s)),
        images: { inference: INFERENCE_REF },
        namespace: "fleet-gitops",
        rollout: { maxUnavailable: "25%" },
        registry: { server: "registry.lab:5000", username: "fleet" },
        workloads: { webui: { kind: "Deployment", replicas: 2 } },
        gpu: { mode: "device-plugin", image: PLUGIN_REF },
        source: { project: "kubernetes-fleet", stack: "gitops" },
      }),
      { server: "registry.lab:5000", username: "fleet", password: REGISTRY_PASSWORD },
    );
    const key = (o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;
    assert.deepEqual(objects.map(key).sort(), expected.map(key).sort());
    for (const want of expected) {
      const got = objects.find((o) => key(o) === key(want)) as Record<string, unknown> | undefined;
      for (const field of ["spec", "data", "handler", "type"]) {
        if (want[field] !== undefined) assert.deepEqual(got?.[field], JSON.parse(JSON.stringify(want[field])), `${key(want)} ${field}`);
      }
    }
    await assert.rejects(kube.kubectl("get", "namespace", "fleet-gitops"), /NotFound|not found/);
  });

  it("an image not pinned by digest is refused by our validation before anything is sent", async () => {
    const env = await fleetStack("invalid", "fleet-invalid", [{ name: "webui", image: "registry.lab:5000/fleet/webui:2.0" }]);
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
