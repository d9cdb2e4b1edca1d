// KubernetesFleet under mocks: which resources it registers, with what inputs; the
// `jetson:services:Service` contract; the pull secret stays secret; bad specs register nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { KubernetesFleet, ServiceSpec, fleetManifests } from "../../../components/index.ts";
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

  it("renders to a directory for GitOps through the provider it builds; no kubeconfig, no provider of its own", async () => {
    const rec = useMockStack({ stack: "prod", config: {} }, new ResourceRecorder());
    const gitops = new KubernetesFleet("gitops", {
      services: SERVICES,
      images: { inference: REF },
      kubeconfig: "apiVersion: v1\nkind: Config\n",
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
