// KubernetesFleet under mocks: which resources it registers, with what inputs; the
// `jetson:services:Service` contract; the pull secret stays secret; bad specs register nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { KubernetesFleet, ModelSpec, ServiceSpec, engineScript, fleetManifests } from "../../../components/index.ts";
import { ResourceRecorder, settle, unwrap, useMockStack } from "../../support/mocks.ts";

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const REF = `registry.lab:5000/fleet/inference@sha256:${"4f".repeat(32)}`;
const WEBUI_REF = `registry.lab:5000/fleet/webui@sha256:${"a1".repeat(32)}`;
const SERVICES = [
  ServiceSpec.parse({ name: "inference", build: "inference", runtime: "nvidia", network: "host", ports: [{ target: 8080 }] }),
  ServiceSpec.parse({ name: "webui", image: WEBUI_REF, ports: [{ target: 3000 }] }),
];

describe("KubernetesFleet", () => {
  it("registers the namespace, RuntimeClass, pull secret and per service a jetson:services:Service with its workload and PDB", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    const fleet = new KubernetesFleet("fleet", {
      services: SERVICES,
      images: { inference: REF },
      registry: { server: "registry.lab:5000", username: "fleet", password: pulumi.secret("pull-pass") },
      workloads: { webui: { kind: "Deployment", replicas: 2 } },
      kubeconfig: "apiVersion: v1\nkind: Config\n",
    });
    assert.equal(await unwrap(fleet.namespace), "jetson-fleet");
    assert.deepEqual(await unwrap(fleet.images), { inference: REF, webui: WEBUI_REF });
    await settle();
    assert.deepEqual(
      rec.resources.map((r) => `${r.type} ${r.name}`).sort(),
      [
        "jetson:kubernetes:Fleet fleet",
        "pulumi:providers:kubernetes fleet-provider",
        "kubernetes:core/v1:Namespace fleet-namespace",
        "kubernetes:node.k8s.io/v1:RuntimeClass fleet-runtime-class",
        "kubernetes:core/v1:Secret fleet-registry-credentials",
        "jetson:services:Service fleet-inference",
        "jetson:services:Service fleet-webui",
        "kubernetes:apps/v1:DaemonSet fleet-inference-daemonset",
        "kubernetes:policy/v1:PodDisruptionBudget fleet-inference-pdb",
        "kubernetes:apps/v1:Deployment fleet-webui-deployment",
        "kubernetes:policy/v1:PodDisruptionBudget fleet-webui-pdb",
      ].sort(),
    );
    // The contract policy packs read: exactly host and the defaulted service with its pinned image.
    const svc = rec.ofType("jetson:services:Service").find((r) => r.name === "fleet-inference");
    const { build: _build, ...inference } = SERVICES[0] ?? assert.fail();
    void _build;
    assert.deepEqual(svc?.inputs, { host: "jetson-fleet", service: { ...inference, image: REF } });
    // The objects are exactly what fleetManifests renders.
    const rendered = fleetManifests({
      services: SERVICES,
      images: { inference: REF },
      registry: { server: "registry.lab:5000", username: "fleet" },
      workloads: { webui: { kind: "Deployment", replicas: 2 } },
      source: { project: "jetson-fleet", stack: "prod" },
    });
    const ds = rec.ofType("kubernetes:apps/v1:DaemonSet")[0];
    assert.deepEqual(ds?.inputs["spec"], JSON.parse(JSON.stringify(rendered.services[0]?.workload.spec)));
    assert.deepEqual(ds?.inputs["metadata"], rendered.services[0]?.workload.metadata);
    // The kubeconfig and the pull secret's data are secrets in state.
    const provider = rec.ofType("pulumi:providers:kubernetes")[0];
    assert.equal((provider?.inputs["kubeconfig"] as Record<string, unknown>)[SECRET_SIG] !== undefined, true);
    const secret = rec.ofType("kubernetes:core/v1:Secret")[0];
    assert.equal(secret?.inputs["type"], "kubernetes.io/dockerconfigjson");
    const data = secret?.inputs["data"] as Record<string, unknown>;
    assert.ok(data[SECRET_SIG], "the pull secret's data is a Pulumi secret");
    const json = Buffer.from((data["value"] as Record<string, string>)[".dockerconfigjson"] ?? "", "base64").toString();
    assert.deepEqual(JSON.parse(json), {
      auths: { "registry.lab:5000": { username: "fleet", password: "pull-pass", auth: Buffer.from("fleet:pull-pass").toString("base64") } },
    });
  });

  it("an image not pinned by digest is rejected before any Kubernetes resource is registered", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    assert.throws(
      () =>
        new KubernetesFleet("fleet", {
          services: [ServiceSpec.parse({ name: "webui", image: "registry.lab:5000/fleet/webui:2.0" })],
          kubeconfig: "apiVersion: v1\nkind: Config\n",
        }),
      {
        name: "StackConfigError",
        message:
          'invalid stack config (1 problem); nothing was changed:\nPulumi.prod.yaml: jetson-fleet:services[0].image: "registry.lab:5000/fleet/webui:2.0" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>',
      },
    );
    await settle();
    assert.deepEqual(
      rec.resources.filter((r) => r.type.startsWith("kubernetes:") || r.type.startsWith("pulumi:providers:")),
      [],
    );
  });

  it("runs a tagged image by the digest the caller resolved (serviceImages), known only once resolved", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    const resolved = `registry.lab:5000/fleet/webui@sha256:${"b2".repeat(32)}`;
    const fleet = new KubernetesFleet("fleet", {
      services: [ServiceSpec.parse({ name: "webui", image: "registry.lab:5000/fleet/webui:2.0" })],
      serviceImages: { webui: pulumi.output(resolved) },
      kubeconfig: "apiVersion: v1\nkind: Config\n",
    });
    await settle();
    const ds = rec.ofType("kubernetes:apps/v1:DaemonSet")[0];
    const spec = ds?.inputs["spec"] as { template: { spec: { containers: { image: string }[] } } };
    assert.equal(spec.template.spec.containers[0]?.image, resolved);
    assert.deepEqual(await unwrap(fleet.images), { webui: resolved });
  });

  it("renders to a directory for GitOps through the provider it builds; no kubeconfig, no provider of its own", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    const gitops = new KubernetesFleet("gitops", {
      services: SERVICES,
      images: { inference: REF },
      renderYamlToDirectory: "gitops/jetson-fleet",
    });
    new KubernetesFleet("ambient", { services: SERVICES, images: { inference: REF }, namespace: "other" });
    await unwrap(gitops.namespace);
    await settle();
    const providers = rec.ofType("pulumi:providers:kubernetes");
    assert.deepEqual(
      providers.map((p) => [p.name, p.inputs["renderYamlToDirectory"], p.inputs["enableServerSideApply"]]),
      [["gitops-provider", "gitops/jetson-fleet", "true"]],
    );
  });

  it("a registry username without a password is rejected", () => {
    useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    assert.throws(
      () => new KubernetesFleet("fleet", { services: SERVICES, images: { inference: REF }, registry: { server: "r:5000", username: "u" } }),
      {
        message:
          "invalid stack config (1 problem); nothing was changed:\nPulumi.prod.yaml: jetson-fleet:registry.password: is missing; expected the registry password (a Pulumi secret) with registry.username",
      },
    );
  });
});

describe("KubernetesFleet: arguments", () => {
  it("refuses kubeconfig together with renderYamlToDirectory, naming both, before anything is registered", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    assert.throws(
      () =>
        new KubernetesFleet("fleet", {
          services: SERVICES,
          images: { inference: REF },
          kubeconfig: "apiVersion: v1\nkind: Config\n",
          renderYamlToDirectory: "gitops/jetson-fleet",
        }),
      {
        name: "KubernetesFleetArgsError",
        message:
          "invalid KubernetesFleet arguments (1 problem); nothing was changed:\nkubeconfig, renderYamlToDirectory: both are set; expected one of them: kubeconfig to apply to a cluster, or renderYamlToDirectory to write YAML for a GitOps repository (it needs no cluster)",
      },
    );
    await settle();
    assert.deepEqual(
      rec.resources.filter((r) => r.type !== "jetson:kubernetes:Fleet"),
      [],
    );
  });

  it("wrong workloads and gpu name the arguments, not stack config keys", () => {
    useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    assert.throws(
      () =>
        new KubernetesFleet("fleet", {
          services: SERVICES,
          images: { inference: REF },
          workloads: { webiu: { kind: "Deployment", replicas: 0 } },
          gpu: { mode: "device-plugin", image: "nvcr.io/nvidia/k8s-device-plugin:v0.17.1" },
          kubeconfig: "apiVersion: v1\nkind: Config\n",
        }),
      {
        name: "KubernetesFleetArgsError",
        message: [
          "invalid KubernetesFleet arguments (3 problems); nothing was changed:",
          'workloads.webiu: service "webiu" is not defined; expected one of: inference, webui',
          "workloads.webiu.replicas: got 0; expected a whole number of at least 1",
          'gpu.image: "nvcr.io/nvidia/k8s-device-plugin:v0.17.1" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>',
        ].join("\n"),
      },
    );
  });

  it("a kubeconfig and a registry password that are outputs of other resources stay secrets", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    new KubernetesFleet("fleet", {
      services: SERVICES,
      images: { inference: REF },
      registry: { server: "registry.lab:5000", username: "fleet", password: pulumi.output("generated-pass") },
      kubeconfig: pulumi.output("apiVersion: v1\nkind: Config\n"),
    });
    await settle();
    const provider = rec.ofType("pulumi:providers:kubernetes")[0];
    assert.ok((provider?.inputs["kubeconfig"] as Record<string, unknown>)[SECRET_SIG], "the kubeconfig is a secret");
    const secret = rec.ofType("kubernetes:core/v1:Secret").find((r) => r.name === "fleet-registry-credentials");
    assert.ok((secret?.inputs["data"] as Record<string, unknown>)[SECRET_SIG], "the pull secret's data is a secret");
  });
});

describe("KubernetesFleet: secret environment values", () => {
  const TOKEN = "unit-api-token-7d1f";
  const WITH_SECRET = [
    ServiceSpec.parse({
      name: "inference",
      build: "inference",
      runtime: "nvidia",
      environment: { API_TOKEN: TOKEN, MODE: "live" },
    }),
    ServiceSpec.parse({ name: "webui", image: WEBUI_REF, environment: { API_TOKEN: "not-secret-here" } }),
  ];

  /** Every string in a recorded value, secrets unwrapped, with whether a secret wrapper held it. */
  function strings(value: unknown, inSecret = false, out: [string, boolean][] = []): [string, boolean][] {
    if (typeof value === "string") out.push([value, inSecret]);
    else if (Array.isArray(value)) for (const v of value) strings(v, inSecret, out);
    else if (value && typeof value === "object") {
      const o = value as Record<string, unknown>;
      if (o[SECRET_SIG]) strings(o["value"], true, out);
      else for (const v of Object.values(o)) strings(v, inSecret, out);
    }
    return out;
  }

  it("go into a Secret (its data a Pulumi secret) that the workload reads with secretKeyRef; no value in the workload", async () => {
    // The engine names the Secret (autonaming): the workload must follow that name.
    const named = (args: pulumi.runtime.MockResourceArgs) =>
      args.type === "kubernetes:core/v1:Secret"
        ? { metadata: { ...(args.inputs["metadata"] as object), name: `${args.name}-0a1b2c3d` } }
        : {};
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder(named));
    new KubernetesFleet("fleet", {
      services: WITH_SECRET,
      images: { inference: REF },
      secretEnvironment: { inference: ["API_TOKEN"] },
      kubeconfig: "apiVersion: v1\nkind: Config\n",
    });
    await settle();
    const ds = rec.ofType("kubernetes:apps/v1:DaemonSet").find((r) => r.name === "fleet-inference-daemonset");
    const containers = (ds?.inputs["spec"] as { template: { spec: { containers: { env: unknown }[] } } }).template.spec.containers;
    assert.deepEqual(containers[0]?.env, [
      { name: "API_TOKEN", valueFrom: { secretKeyRef: { name: "fleet-inference-environment-0a1b2c3d", key: "API_TOKEN" } } },
      { name: "MODE", value: "live" },
    ]);
    // The key is secret for inference only: webui's API_TOKEN is a plain value.
    const webui = rec.ofType("kubernetes:apps/v1:DaemonSet").find((r) => r.name === "fleet-webui-daemonset");
    assert.deepEqual(
      (webui?.inputs["spec"] as { template: { spec: { containers: { env: unknown }[] } } }).template.spec.containers[0]?.env,
      [{ name: "API_TOKEN", value: "not-secret-here" }],
    );
    const secrets = rec.ofType("kubernetes:core/v1:Secret");
    assert.deepEqual(
      secrets.map((r) => r.name),
      ["fleet-inference-environment"],
    );
    const secret = secrets[0];
    // No fixed name: a new value replaces the Secret by a new one (created first), and the pods roll onto it.
    assert.deepEqual(secret?.inputs["metadata"], {
      annotations: { "pulumi.com/deletionPropagationPolicy": "background" },
      namespace: "jetson-fleet",
      labels: { "app.kubernetes.io/name": "inference", "app.kubernetes.io/part-of": "jetson-fleet" },
    });
    assert.equal(secret?.inputs["type"], "Opaque");
    const data = secret?.inputs["data"] as Record<string, unknown>;
    assert.ok(data[SECRET_SIG], "the Secret's data is a Pulumi secret");
    assert.deepEqual(data["value"], { API_TOKEN: Buffer.from(TOKEN).toString("base64") });
    // Nowhere outside a secret: not in any resource's inputs, base64 or not.
    const b64 = Buffer.from(TOKEN).toString("base64");
    for (const r of rec.resources) {
      for (const [text, inSecret] of strings(r.inputs)) {
        if (text.includes(TOKEN) || text.includes(b64)) assert.ok(inSecret, `${r.type} ${r.name} holds the value outside a secret`);
      }
    }
    // The registered service (what policy packs read) is a secret as a whole.
    const svc = rec.ofType("jetson:services:Service").find((r) => r.name === "fleet-inference");
    assert.ok((svc?.inputs["service"] as Record<string, unknown>)[SECRET_SIG], "the service input is a secret");
  });

  it("rendering YAML writes no Secret at all (environment or pull secret); the workload still reads secretKeyRef", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    new KubernetesFleet("gitops", {
      services: WITH_SECRET,
      images: { inference: REF },
      secretEnvironment: { inference: ["API_TOKEN"] },
      registry: { server: "registry.lab:5000", username: "fleet" },
      renderYamlToDirectory: "gitops/jetson-fleet",
    });
    await settle();
    assert.deepEqual(rec.ofType("kubernetes:core/v1:Secret"), []);
    const ds = rec.ofType("kubernetes:apps/v1:DaemonSet").find((r) => r.name === "gitops-inference-daemonset");
    const pod = (ds?.inputs["spec"] as { template: { spec: { imagePullSecrets: unknown; containers: { env: unknown }[] } } }).template.spec;
    assert.deepEqual(pod.imagePullSecrets, [{ name: "registry-credentials" }]);
    assert.deepEqual(pod.containers[0]?.env, [
      { name: "API_TOKEN", valueFrom: { secretKeyRef: { name: "inference-environment", key: "API_TOKEN" } } },
      { name: "MODE", value: "live" },
    ]);
    for (const r of rec.resources.filter((x) => x.type.startsWith("kubernetes:"))) {
      assert.equal(JSON.stringify(r.inputs).includes(TOKEN), false, `${r.type} ${r.name} holds the value`);
    }
  });
});

describe("KubernetesFleet: models", () => {
  const MODELS = [ModelSpec.parse({ name: "detector", source: { file: "models/detector.onnx" }, sha256: "3b".repeat(32) })];
  const WITH_MODEL = [
    ServiceSpec.parse({
      name: "inference",
      build: "inference",
      runtime: "nvidia",
      network: "host",
      models: [{ name: "detector", path: "/engines/detector.engine" }],
    }),
    ServiceSpec.parse({ name: "webui", image: WEBUI_REF }),
  ];
  for (const mode of ["applied", "rendered to a directory"] as const) {
    it(`${mode}: the engine script's ConfigMap is registered before the workloads, and the DaemonSet has the init containers`, async () => {
      const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
      new KubernetesFleet("fleet", {
        services: WITH_MODEL,
        models: MODELS,
        images: { inference: REF },
        registry: {
          server: "registry.lab:5000",
          username: "fleet",
          ...(mode === "applied" ? { password: pulumi.secret("pull-pass") } : {}),
        },
        ...(mode === "applied" ? { kubeconfig: "apiVersion: v1\nkind: Config\n" } : { renderYamlToDirectory: "gitops/jetson-fleet" }),
      });
      await settle();
      const configMaps = rec.ofType("kubernetes:core/v1:ConfigMap");
      assert.deepEqual(
        configMaps.map((r) => [r.name, r.inputs["metadata"], r.inputs["data"]]),
        [
          [
            "fleet-engine-init",
            { name: "engine-init", namespace: "jetson-fleet", labels: { "app.kubernetes.io/part-of": "jetson-fleet" } },
            { "engine-init.sh": engineScript() },
          ],
        ],
      );
      const rendered = fleetManifests({
        services: WITH_MODEL,
        models: MODELS,
        images: { inference: REF },
        registry: { server: "registry.lab:5000", username: "fleet" },
        source: { project: "jetson-fleet", stack: "prod" },
      });
      const ds = rec.ofType("kubernetes:apps/v1:DaemonSet").find((r) => r.name === "fleet-inference-daemonset");
      assert.deepEqual(ds?.inputs["spec"], JSON.parse(JSON.stringify(rendered.services[0]?.workload.spec)));
      const init = (ds?.inputs["spec"] as { template: { spec: { initContainers: { name: string }[] } } }).template.spec.initContainers;
      assert.deepEqual(
        init.map((c) => c.name),
        ["node-facts", "engine-detector"],
      );
    });
  }

  it("services with models need the models argument and a registry, before anything is registered", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    assert.throws(() => new KubernetesFleet("fleet", { services: WITH_MODEL, images: { inference: REF }, kubeconfig: "x" }), {
      name: "KubernetesFleetArgsError",
      message: [
        "invalid KubernetesFleet arguments (2 problems); nothing was changed:",
        "models: is not set, but services inference run models (services[].models); expected the stack's models (config.models)",
        "registry: is not set, but services inference run models, which nodes fetch from the stack's registry; expected { server } (registry.server)",
      ].join("\n"),
    });
    await settle();
    assert.deepEqual(
      rec.resources.filter((r) => r.type.startsWith("kubernetes:")),
      [],
    );
  });
});
