// The engine tier's policy-pack program: a stack that passes every rule, or (config `case`) the
// same stack with one rule broken. It registers what the policy pack reads: a host, a GpuImage,
// services and a Kubernetes DaemonSet. The host and the services are registered with the exact
// inputs their components register (the host's command steps and the services' Docker resources
// need plugins this machine lacks, and the rules read only the components' inputs); the GpuImage
// is the real component; the DaemonSet is a real Kubernetes resource rendered to YAML, so no
// cluster is needed.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { HostSpec, RuntimeSpec, ServiceSpec } from "../../../../components/config/index.ts";
import { jetsonHostInputs } from "../../../../components/host/index.ts";
import { GpuImage } from "../../../../components/image/index.ts";

type Mutable<T> = { -readonly [K in keyof T]: Mutable<T[K]> };
type ServiceInput = Mutable<z.input<typeof ServiceSpec>>;

const config = new pulumi.Config();
const testCase = config.get("case") ?? "pass";
const DIGEST = "sha256:4f7b1c4b7e0d5a1e6f3b2c9d8a7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5";

const inference: ServiceInput = {
  name: "inference",
  image: `registry.lab:5000/fleet/inference@${DIGEST}`,
  runtime: "nvidia",
  network: "host",
  environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video" },
  volumes: [
    { source: "/opt/fleet/models", target: "/models", readOnly: true },
    { source: "/opt/fleet/videos", target: "/videos", readOnly: true },
    { source: "/opt/fleet/output", target: "/output" },
  ],
  shmSize: "2g",
  healthcheck: { test: ["CMD", "curl", "-f", "http://localhost:8080/health"] },
  resources: { cpus: 4, memory: "6g", gpus: "all" },
};
const mediamtx: ServiceInput = {
  name: "mediamtx",
  image: "bluenviron/mediamtx:1.9.3",
  ports: [{ target: 8554 }, { target: 8889 }],
  healthcheck: { test: ["CMD", "wget", "-q", "-O-", "http://localhost:9997/v3/paths/list"] },
  resources: { memory: "512m" },
};
const hostInput: Mutable<z.input<typeof HostSpec>> = {
  name: "orin-01",
  address: "192.168.50.11",
  user: "fleet",
  privateKey: config.require("privateKey"),
  hostKey: config.require("hostKey"),
  l4tRelease: "36.4.3",
};
const registry = {
  address: "registry.lab:5000",
  username: "fleet",
  password: config.requireSecret("registryPassword") as pulumi.Input<string>,
};
// Registered beside the schema's fields: keys the schema does not have (yet), which the rules still refuse.
const extraFields: Record<string, Record<string, unknown>> = {};

// Each case breaks exactly one rule of the passing stack above.
const cases: Record<string, () => void> = {
  pass: () => {},
  "images-pinned": () => (mediamtx.image = "bluenviron/mediamtx:latest"),
  "gpu-runtime-nvidia": () => (inference.runtime = "runc"),
  "model-mounts-read-only": () => (inference.volumes![0]!.readOnly = false),
  "healthcheck-required": () => delete mediamtx.healthcheck,
  "log-rotation-required": () => (mediamtx.logging = { driver: "json-file", options: { "max-size": "10m" } }),
  "memory-limit-required": () => (mediamtx.resources = {}),
  "no-privileged": () => (inference.capAdd = ["SYS_ADMIN"]),
  "no-host-pid": () => (extraFields["inference"] = { pid: "host" }),
  "host-keys-pinned": () => delete hostInput.hostKey,
  "registry-credentials-secret": () => (registry.password = config.require("registryPasswordPlain")),
  // A service running the image this stack builds: its digest is unknown during preview.
  "built-image": () => {},
  // The pod template's rules, broken together: the same rule functions as the services'.
  kubernetes: () => {},
};
const breakRule = cases[testCase];
if (!breakRule) throw new Error(`unknown case "${testCase}"; expected one of ${Object.keys(cases).join(", ")}`);
breakRule();

const host = HostSpec.parse(hostInput);
const runtime = RuntimeSpec.parse({ docker: { version: "27.5.1" }, nvidiaToolkitVersion: "1.16.2-1" });
new pulumi.ComponentResource(
  "jetson:host:JetsonHost",
  host.name,
  jetsonHostInputs({ host, runtime, production: config.requireBoolean("production") }),
);
const built = new GpuImage("inference", {
  context: config.require("context"),
  repository: "registry.lab:5000/fleet/inference",
  tag: "1.4.2",
  registry,
  builderName: "jetson-fleet-policy-test",
});
for (const spec of [inference, mediamtx]) {
  const service = { ...ServiceSpec.parse(spec), ...extraFields[spec.name] };
  // The built image's digest is unknown until the build runs (as in a first preview).
  const image = testCase === "built-image" && spec.name === "inference" ? built.ref : service.image;
  new pulumi.ComponentResource("jetson:services:Service", `${host.name}-${service.name}`, {
    host: host.name,
    service: { ...service, image },
  });
}

const brokenPod = testCase === "kubernetes";
const podSpec: k8s.types.input.core.v1.PodSpec = {
  runtimeClassName: brokenPod ? "runc" : "nvidia",
  ...(brokenPod ? { hostPID: true } : {}),
  containers: [
    {
      name: "inference",
      image: `registry.lab:5000/fleet/inference${brokenPod ? ":latest" : `@${DIGEST}`}`,
      resources: { limits: { "nvidia.com/gpu": "1", memory: "6Gi" } },
      livenessProbe: { httpGet: { path: "/health", port: 8080 } },
      ...(brokenPod ? { securityContext: { privileged: true } } : {}),
      volumeMounts: [
        { name: "models", mountPath: "/models", readOnly: !brokenPod },
        { name: "output", mountPath: "/output" },
      ],
    },
  ],
  volumes: [
    { name: "models", hostPath: { path: "/opt/fleet/models" } },
    { name: "output", hostPath: { path: "/opt/fleet/output" } },
  ],
};
const provider = new k8s.Provider("render", { renderYamlToDirectory: config.require("renderDir") });
new k8s.apps.v1.DaemonSet(
  "inference",
  {
    metadata: { name: "inference" },
    spec: { selector: { matchLabels: { app: "inference" } }, template: { metadata: { labels: { app: "inference" } }, spec: podSpec } },
  },
  { provider },
);
