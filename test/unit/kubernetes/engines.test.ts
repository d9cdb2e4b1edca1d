// A service's models on Kubernetes: the init containers that build their engines on the node
// (exact commands, environment, mounts, security), the volumes that show the engines to the
// service, the script's ConfigMap and its hash in the pod template, and what is refused first.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  ENGINE_SCRIPT_ANNOTATION,
  type FleetManifestOptions,
  ModelSpec,
  ServiceSpec,
  engineScriptManifest,
  engineScriptSha256,
  fleetManifests,
  manifestList,
  renderYaml,
} from "../../../components/index.ts";

const SCRIPT = readFileSync(join(import.meta.dirname, "..", "..", "..", "components", "kubernetes", "scripts", "engine-init.sh"), "utf8");
const REF = `registry.lab:5000/fleet/inference@sha256:${"4f".repeat(32)}`;
const SOURCE = { project: "jetson-fleet", stack: "prod" };
const DETECTOR = ModelSpec.parse({
  name: "detector",
  source: { file: "models/detector.onnx" },
  sha256: "3b".repeat(32),
  engine: { workspace: "1g", timeout: "45m", keep: 3 },
});
const POSE = ModelSpec.parse({
  name: "pose",
  source: { artifact: `registry.lab:5000/vision/pose@sha256:${"c7".repeat(32)}` },
  sha256: "9d".repeat(32),
  engine: {
    precision: "int8",
    shapes: { min: { images: "1x3x640x640" }, opt: { images: "4x3x640x640" }, max: { images: "8x3x640x640" } },
    flags: ["--useDLACore=0", "--allowGPUFallback"],
    builder: "/opt/tensorrt/bin/trtexec",
  },
});
const INFERENCE = {
  name: "inference",
  image: REF,
  runtime: "nvidia",
  network: "host",
  environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility", MODE: "live" },
  volumes: [{ source: "/opt/fleet/output", target: "/output" }],
  resources: { cpus: 2, memory: "2g" },
  user: "1000:1000",
  healthcheck: { test: ["CMD", "true"] },
  models: [{ name: "detector", path: "/engines/detector.engine" }],
};

function options(services: readonly unknown[], extra: Partial<FleetManifestOptions> = {}): FleetManifestOptions {
  return {
    services: services.map((s) => ServiceSpec.parse(s)),
    models: [DETECTOR, POSE],
    registry: { server: "registry.lab:5000", username: "fleet" },
    namespace: "vision",
    source: SOURCE,
    ...extra,
  };
}

type Obj = Record<string, unknown>;
function podOf(
  fleet: ReturnType<typeof fleetManifests>,
  i = 0,
): { metadata: Obj; spec: Obj & { containers: Obj[]; initContainers?: Obj[] } } {
  return (fleet.services[i]?.workload.spec as { template: { metadata: Obj; spec: Obj & { containers: Obj[] } } }).template;
}

const SECURITY = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};
const NODE_NAME = { name: "ENGINE_NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } };
const FACTS = {
  name: "node-facts",
  image: REF,
  imagePullPolicy: "IfNotPresent",
  command: ["sh", "/jetson-fleet/engine-init/engine-init.sh", "facts"],
  env: [
    { name: "ENGINE_FACTS", value: "/jetson-fleet/facts" },
    { name: "ENGINE_HOST_ETC", value: "/host/etc" },
    { name: "ENGINE_HOST_FIRMWARE", value: "/host/sys/firmware" },
    NODE_NAME,
  ],
  resources: { requests: { cpu: "100m", memory: "32Mi" }, limits: { cpu: "100m", memory: "32Mi" } },
  securityContext: { runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, ...SECURITY },
  terminationMessagePolicy: "FallbackToLogsOnError",
  volumeMounts: [
    { name: "engine-init", mountPath: "/jetson-fleet/engine-init", readOnly: true },
    { name: "node-facts", mountPath: "/jetson-fleet/facts" },
    { name: "host-etc", mountPath: "/host/etc", readOnly: true },
    { name: "host-firmware", mountPath: "/host/sys/firmware", readOnly: true },
  ],
};
const NVIDIA_ENV = [
  { name: "NVIDIA_DRIVER_CAPABILITIES", value: "compute,utility" },
  { name: "NVIDIA_VISIBLE_DEVICES", value: "all" },
];
const RESOURCES = { requests: { cpu: "2", memory: "2Gi" }, limits: { cpu: "2", memory: "2Gi" } };

function buildContainer(model: string, args: string[], env: Record<string, string>, links: string, auth = true): Obj {
  const values = {
    ENGINE_NAMESPACE: "vision",
    ENGINE_SERVICE: "inference",
    ENGINE_MODEL: model,
    ...env,
    ENGINE_REGISTRY: "registry.lab:5000",
    ENGINE_REGISTRY_AUTH: auth ? "/jetson-fleet/registry/config.json" : "",
    ENGINE_FACTS: "/jetson-fleet/facts",
    ENGINE_ROOT: "/var/lib/jetson-fleet/engines",
    ENGINE_MODEL_STORE_ROOT: "/var/lib/jetson-fleet/models",
    TMPDIR: "/tmp",
    HOME: "/tmp",
  };
  return {
    name: `engine-${model}`,
    image: REF,
    imagePullPolicy: "IfNotPresent",
    command: ["sh", "/jetson-fleet/engine-init/engine-init.sh", "build"],
    args,
    env: [...NVIDIA_ENV, ...Object.entries(values).map(([name, value]) => ({ name, value })), NODE_NAME],
    resources: RESOURCES,
    securityContext: { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, ...SECURITY },
    terminationMessagePolicy: "FallbackToLogsOnError",
    volumeMounts: [
      { name: "engine-init", mountPath: "/jetson-fleet/engine-init", readOnly: true },
      { name: "node-facts", mountPath: "/jetson-fleet/facts", readOnly: true },
      { name: "engine-store", mountPath: "/var/lib/jetson-fleet/engines" },
      { name: "model-store", mountPath: "/var/lib/jetson-fleet/models/vision" },
      { name: links, mountPath: `/jetson-fleet/links/${links.replace("engine-links-", "")}` },
      { name: "engine-tmp", mountPath: "/tmp" },
      ...(auth ? [{ name: "registry-auth", mountPath: "/jetson-fleet/registry", readOnly: true }] : []),
    ],
  };
}

const DETECTOR_ENV = {
  ENGINE_MODEL_SHA256: "3b".repeat(32),
  ENGINE_IMAGE: REF,
  ENGINE_BUILDER: "/usr/src/tensorrt/bin/trtexec",
  ENGINE_TIMEOUT_SECONDS: "2700",
  ENGINE_KEEP: "3",
  ENGINE_LINK: "/jetson-fleet/links/0/detector.engine",
  ENGINE_MODEL_URL: `https://registry.lab:5000/v2/models/detector/blobs/sha256:${"3b".repeat(32)}`,
};
const DETECTOR_ARGS = ["--fp16", "--memPoolSize=workspace:1024M", "--skipInference"];

function volumes(links: string[], auth = true): Obj[] {
  return [
    { name: "volume-0", hostPath: { path: "/opt/fleet/output" } },
    { name: "engine-init", configMap: { name: "engine-init", defaultMode: 0o444 } },
    { name: "node-facts", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
    { name: "host-etc", hostPath: { path: "/etc", type: "Directory" } },
    { name: "host-firmware", hostPath: { path: "/sys/firmware", type: "Directory" } },
    { name: "engine-store", hostPath: { path: "/var/lib/jetson-fleet/engines", type: "DirectoryOrCreate" } },
    { name: "model-store", hostPath: { path: "/var/lib/jetson-fleet/models/vision", type: "DirectoryOrCreate" } },
    { name: "engine-tmp", emptyDir: {} },
    ...(auth
      ? [
          {
            name: "registry-auth",
            secret: { secretName: "registry-credentials", items: [{ key: ".dockerconfigjson", path: "config.json" }], defaultMode: 0o400 },
          },
        ]
      : []),
    { name: "engines", hostPath: { path: "/var/lib/jetson-fleet/engines/vision/inference", type: "DirectoryOrCreate" } },
    ...links.map((name) => ({ name, emptyDir: { medium: "Memory", sizeLimit: "1Mi" } })),
  ];
}

describe("fleetManifests: a service's models", () => {
  it("one model: node-facts then engine-detector before the service, which mounts the engine's links and its engines read-only", () => {
    const fleet = fleetManifests(options([INFERENCE]));
    const template = podOf(fleet);
    assert.deepEqual(template.spec.initContainers, [FACTS, buildContainer("detector", DETECTOR_ARGS, DETECTOR_ENV, "engine-links-0")]);
    assert.deepEqual(template.spec["volumes"], volumes(["engine-links-0"]));
    const c = template.spec.containers[0];
    assert.deepEqual(c?.["volumeMounts"], [
      { name: "volume-0", mountPath: "/output" },
      { name: "engines", mountPath: "/var/lib/jetson-fleet/engines/vision/inference", readOnly: true },
      { name: "engine-links-0", mountPath: "/engines", readOnly: true },
    ]);
    // The pod still runs as the service's user; only the build container is root.
    assert.deepEqual(template.spec["securityContext"], { runAsUser: 1000, runAsGroup: 1000 });
    assert.equal(template.spec["runtimeClassName"], "nvidia");
    assert.deepEqual(template.metadata["annotations"], { [ENGINE_SCRIPT_ANNOTATION]: engineScriptSha256() });
    assert.equal(engineScriptSha256(), createHash("sha256").update(SCRIPT).digest("hex"));
  });

  it("two models: one build container each, in order; engines in different directories get an emptyDir each", () => {
    const fleet = fleetManifests(
      options([
        {
          ...INFERENCE,
          models: [
            { name: "detector", path: "/engines/detector.engine" },
            { name: "pose", path: "/opt/app/pose/model.plan" },
          ],
        },
      ]),
    );
    const template = podOf(fleet);
    assert.deepEqual(template.spec.initContainers, [
      FACTS,
      buildContainer("detector", DETECTOR_ARGS, DETECTOR_ENV, "engine-links-0"),
      buildContainer(
        "pose",
        [
          "--int8",
          "--minShapes=images:1x3x640x640",
          "--optShapes=images:4x3x640x640",
          "--maxShapes=images:8x3x640x640",
          "--skipInference",
          "--useDLACore=0",
          "--allowGPUFallback",
        ],
        {
          ENGINE_MODEL_SHA256: "9d".repeat(32),
          ENGINE_IMAGE: REF,
          ENGINE_BUILDER: "/opt/tensorrt/bin/trtexec",
          ENGINE_TIMEOUT_SECONDS: "1800",
          ENGINE_KEEP: "2",
          ENGINE_LINK: "/jetson-fleet/links/1/model.plan",
          // An artifact source: its own repository, the blob the ONNX file is.
          ENGINE_MODEL_URL: `https://registry.lab:5000/v2/vision/pose/blobs/sha256:${"9d".repeat(32)}`,
        },
        "engine-links-1",
      ),
    ]);
    assert.deepEqual(template.spec["volumes"], volumes(["engine-links-0", "engine-links-1"]));
    assert.deepEqual(template.spec.containers[0]?.["volumeMounts"], [
      { name: "volume-0", mountPath: "/output" },
      { name: "engines", mountPath: "/var/lib/jetson-fleet/engines/vision/inference", readOnly: true },
      { name: "engine-links-0", mountPath: "/engines", readOnly: true },
      { name: "engine-links-1", mountPath: "/opt/app/pose", readOnly: true },
    ]);
  });

  it("engines in the same directory share its emptyDir; anonymous pulls mount no login; loopback registries speak HTTP", () => {
    const fleet = fleetManifests(
      options(
        [
          {
            ...INFERENCE,
            models: [
              { name: "detector", path: "/engines/detector.engine" },
              { name: "pose", path: "/engines/pose.engine" },
            ],
          },
        ],
        { registry: { server: "127.0.0.1:5000" }, models: [DETECTOR, { ...POSE, source: { file: "models/pose.onnx" } }] },
      ),
    );
    const template = podOf(fleet);
    const init = template.spec.initContainers ?? [];
    const env = (c: Obj | undefined, name: string) =>
      (c?.["env"] as { name: string; value?: string }[]).find((e) => e.name === name)?.value;
    assert.deepEqual(
      init.map((c) => [c["name"], env(c, "ENGINE_LINK"), env(c, "ENGINE_MODEL_URL"), env(c, "ENGINE_REGISTRY_AUTH")]),
      [
        ["node-facts", undefined, undefined, undefined],
        [
          "engine-detector",
          "/jetson-fleet/links/0/detector.engine",
          `http://127.0.0.1:5000/v2/models/detector/blobs/sha256:${"3b".repeat(32)}`,
          "",
        ],
        ["engine-pose", "/jetson-fleet/links/0/pose.engine", `http://127.0.0.1:5000/v2/models/pose/blobs/sha256:${"9d".repeat(32)}`, ""],
      ],
    );
    assert.deepEqual(template.spec["volumes"], volumes(["engine-links-0"], false));
    assert.equal(template.spec["imagePullSecrets"], undefined);
  });

  it("the script's ConfigMap comes with the first service that has models; without models no init container, no ConfigMap, no annotation", () => {
    const withModels = fleetManifests(options([INFERENCE, { name: "webui", image: REF }]));
    assert.deepEqual(withModels.engineScript, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "engine-init", namespace: "vision", labels: { "app.kubernetes.io/part-of": "jetson-fleet" } },
      data: { "engine-init.sh": SCRIPT },
    });
    assert.deepEqual(engineScriptManifest("vision"), withModels.engineScript);
    // In apply order: after the namespace and cluster-wide objects, before the workloads.
    assert.deepEqual(
      manifestList(withModels).map((m) => `${m.kind}/${m.metadata.name}`),
      [
        "Namespace/vision",
        "RuntimeClass/nvidia",
        "ConfigMap/engine-init",
        "DaemonSet/inference",
        "PodDisruptionBudget/inference",
        "DaemonSet/webui",
        "PodDisruptionBudget/webui",
      ],
    );
    const docs = parseAllDocuments(renderYaml(withModels)).map((d) => d.toJS() as { kind: string; data?: Record<string, string> });
    assert.equal(docs.find((d) => d.kind === "ConfigMap")?.data?.["engine-init.sh"], SCRIPT);
    const webui = podOf(withModels, 1);
    assert.equal(webui.spec.initContainers, undefined);
    assert.equal(webui.metadata["annotations"], undefined);

    const without = fleetManifests(options([{ ...INFERENCE, models: [] }]));
    assert.equal(without.engineScript, undefined);
    const pod = podOf(without);
    assert.equal(pod.spec.initContainers, undefined);
    assert.equal(pod.metadata["annotations"], undefined);
    assert.deepEqual(pod.spec["volumes"], [{ name: "volume-0", hostPath: { path: "/opt/fleet/output" } }]);
    assert.deepEqual(pod.spec.containers[0]?.["volumeMounts"], [{ name: "volume-0", mountPath: "/output" }]);
  });

  it("the service's own annotations stay beside the script's hash", () => {
    const fleet = fleetManifests(options([{ ...INFERENCE, labels: { "fleet.example/owner": "vision team" } }]));
    assert.deepEqual(podOf(fleet).metadata["annotations"], {
      "fleet.example/owner": "vision team",
      [ENGINE_SCRIPT_ANNOTATION]: engineScriptSha256(),
    });
  });
});

describe("fleetManifests: what models cannot be on Kubernetes", () => {
  const prefix = (n: number) => `invalid stack config (${n === 1 ? "1 problem" : `${n} problems`}); nothing was changed:\n`;
  const at = "Pulumi.prod.yaml: jetson-fleet:services[0]";
  const cases: [string, Record<string, unknown>, Partial<FleetManifestOptions>, string[]][] = [
    [
      "a model the fleet was not given",
      { models: [{ name: "segmenter", path: "/engines/seg.engine" }] },
      {},
      [`${at}.models[0].name: model "segmenter" is not defined under models; expected one of: detector, pose`],
    ],
    [
      "an engine in the root directory, /dev or /usr",
      {
        models: [
          { name: "detector", path: "/detector.engine" },
          { name: "pose", path: "/dev/nv/pose.engine" },
        ],
      },
      {},
      [
        `${at}.models[0].path: "/detector.engine" is in /, which on the kubernetes target becomes a directory of the service's engines only (an emptyDir of links) and would hide the image's /; expected a directory of its own, e.g. /models/model.engine`,
        `${at}.models[1].path: "/dev/nv/pose.engine" is in /dev/nv, which on the kubernetes target becomes a directory of the service's engines only (an emptyDir of links) and would hide the image's /dev/nv; expected a directory of its own, e.g. /models/model.engine`,
      ],
    ],
    [
      "an engine path that is another engine's directory",
      {
        models: [
          { name: "detector", path: "/engines/detector" },
          { name: "pose", path: "/engines/detector/pose.engine" },
        ],
      },
      {},
      [
        `${at}.models[0].path: "/engines/detector" (or its record, /engines/detector.json) is a directory of services[0].models[1].path (/engines/detector/pose.engine); expected engine paths that are not each other's directories`,
      ],
    ],
    [
      "a service named like an init container, engines and mounts where the service sees its engines",
      {
        name: "engine-detector",
        models: [{ name: "detector", path: "/var/lib/jetson-fleet/engines/vision/engine-detector/model.engine" }],
        volumes: [{ source: "/opt/fleet/output", target: "/var/lib/jetson-fleet/engines/vision/engine-detector/out" }],
      },
      {},
      [
        `${at}.name: "engine-detector" is also the name of one of its pod's init containers (node-facts, engine-detector) on the kubernetes target; expected another service name`,
        `${at}.models[0].path: "/var/lib/jetson-fleet/engines/vision/engine-detector/model.engine" is in /var/lib/jetson-fleet/engines/vision/engine-detector, at, inside or around /var/lib/jetson-fleet/engines/vision/engine-detector, where the service's container sees its engines on the kubernetes target; expected another directory, e.g. /models/model.engine`,
        `${at}.volumes[0].target: "/var/lib/jetson-fleet/engines/vision/engine-detector/out" is at or inside /var/lib/jetson-fleet/engines/vision/engine-detector, where the service's container sees its engines on the kubernetes target; expected another target`,
      ],
    ],
    [
      "a model name too long for its init container",
      { models: [{ name: "m".repeat(57), path: "/engines/m.engine" }] },
      { models: [{ ...DETECTOR, name: "m".repeat(57) }] },
      [
        `${at}.models[0].name: "engine-${"m".repeat(57)}", the name of the init container that builds its engine, is longer than 63 characters; expected a model name of at most 56 characters on the kubernetes target`,
      ],
    ],
    [
      "a loopback registry for a pod off the host network",
      { network: "bridge" },
      { registry: { server: "127.0.0.1:5000" } },
      [
        `${at}.network: "bridge": the node fetches model "detector" from 127.0.0.1:5000, the node's loopback, which a pod reaches only on the host network on the kubernetes target; expected network "host", or a registry address pods can reach`,
      ],
    ],
  ];
  for (const [what, svc, extra, lines] of cases) {
    it(`refuses ${what}`, () => {
      assert.throws(() => fleetManifests(options([{ ...INFERENCE, ...svc }], extra)), {
        name: "StackConfigError",
        message: prefix(lines.length) + lines.join("\n"),
      });
    });
  }

  it("a program that passes services with models but no models or registry is told which argument is missing", () => {
    assert.throws(() => fleetManifests({ services: [ServiceSpec.parse(INFERENCE)], source: SOURCE }), {
      name: "KubernetesFleetArgsError",
      message: [
        "invalid KubernetesFleet arguments (2 problems); nothing was changed:",
        "models: is not set, but services inference run models (services[].models); expected the stack's models (config.models)",
        "registry: is not set, but services inference run models, which nodes fetch from the stack's registry; expected { server } (registry.server)",
      ].join("\n"),
    });
  });
});
