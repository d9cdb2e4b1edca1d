// The engine tier's Kubernetes fleet program: services from the stack config applied through a
// provider built from the kubeconfig the stack holds as a secret, with registry pull credentials.
import * as pulumi from "@pulumi/pulumi";
import { type GpuAccess, KubernetesFleet, ModelSpec, ServiceSpec, type Workload } from "../../../../components/index.ts";

const config = new pulumi.Config();
const fleet = new KubernetesFleet("fleet", {
  services: config.requireObject<unknown[]>("services").map((s) => ServiceSpec.parse(s)),
  models: (config.getObject<unknown[]>("models") ?? []).map((m) => ModelSpec.parse(m)),
  images: config.getObject<Record<string, string>>("images") ?? {},
  // Which environment keys are secrets, by service (the program derives it from the stack file's secure paths).
  secretEnvironment: config.getObject<Record<string, string[]>>("secretEnvironment") ?? {},
  namespace: config.require("namespace"),
  rollout: config.requireObject<{ maxUnavailable: number | string }>("rollout"),
  registry: {
    server: config.require("registryServer"),
    username: config.require("registryUsername"),
    password: config.requireSecret("registryPassword"),
  },
  workloads: config.getObject<Record<string, Workload>>("workloads") ?? {},
  gpu: config.getObject<GpuAccess>("gpu") ?? { mode: "runtime-class" },
  // The test cluster has no nodes: no pod ever becomes ready.
  awaitRollout: false,
  // Either a cluster (kubeconfig) or a GitOps directory to render into.
  ...(config.get("renderYamlToDirectory")
    ? { renderYamlToDirectory: config.require("renderYamlToDirectory") }
    : { kubeconfig: config.requireSecret("kubeconfig") }),
});

export const namespace = fleet.namespace;
export const images = fleet.images;
