// fleetManifests: ServiceSpecs to Kubernetes objects. Tables for the conversions and the errors,
// targeted assertions on the fields that matter on a Jetson, and committed YAML snapshots of whole
// fleets (UPDATE_SNAPSHOTS=1 rewrites them; any drift fails).
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import {
  type FleetManifestOptions,
  ServiceSpec,
  cpuQuantity,
  digestProblem,
  dockerConfigJson,
  environmentSecretManifest,
  probeSeconds,
  fleetManifests,
  manifestList,
  probes,
  quantity,
  renderYaml,
} from "../../../components/index.ts";

const SNAPSHOTS = join(import.meta.dirname, "snapshots");
const DIGEST = `sha256:${"4f".repeat(32)}`;
const INFERENCE_REF = `registry.lab:5000/fleet/inference@${DIGEST}`;
const MEDIAMTX_REF = `bluenviron/mediamtx:1.9.3@sha256:${"0c".repeat(32)}`;
const PLUGIN_REF = `registry.lab:5000/nvidia/k8s-device-plugin:v0.17.1@sha256:${"9e".repeat(32)}`;
const SOURCE = { project: "jetson-fleet", stack: "prod" };

/** The inference service as Pulumi.dev.yaml writes it, plus a health check. */
const INFERENCE = {
  name: "inference",
  build: "inference",
  runtime: "nvidia",
  network: "host",
  ports: [{ target: 8080 }],
  environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video", BATCH: 4 },
  volumes: [
    { source: "/opt/fleet/models", target: "/models", readOnly: true },
    { source: "/opt/fleet/output", target: "/output" },
  ],
  shmSize: "2g",
  healthcheck: { test: ["CMD", "python3", "/app/healthcheck.py"], interval: "10s", timeout: "3s", retries: 3, startPeriod: "30s" },
  resources: { cpus: 1.5, memory: "1g", gpus: "all" },
  user: "1000:1000",
  readOnlyRootFilesystem: true,
  capDrop: ["ALL"],
  labels: { "fleet.example/owner": "vision team" },
} as const;

const MEDIAMTX = {
  name: "mediamtx",
  image: MEDIAMTX_REF,
  ports: [{ target: 8554 }, { target: 8889, published: 18889, hostIp: "127.0.0.1" }, { target: 8189, protocol: "udp" }],
  volumes: [
    { type: "tmpfs", target: "/tmp" },
    { type: "volume", source: "recordings", target: "/recordings" },
  ],
  healthcheck: { test: ["CMD-SHELL", "wget -qO- http://localhost:9997/v3/paths/list", "|| exit 1"] },
} as const;

const WEBUI = { name: "webui", image: `registry.lab:5000/fleet/webui:2.0@sha256:${"a1".repeat(32)}`, ports: [{ target: 3000 }] } as const;

function options(services: readonly unknown[], extra: Partial<FleetManifestOptions> = {}): FleetManifestOptions {
  return {
    services: services.map((s) => ServiceSpec.parse(s)),
    images: { inference: INFERENCE_REF },
    source: SOURCE,
    ...extra,
  };
}

function snapshot(name: string, text: string): void {
  const file = join(SNAPSHOTS, `${name}.yaml`);
  if (process.env["UPDATE_SNAPSHOTS"] === "1") {
    mkdirSync(SNAPSHOTS, { recursive: true });
    writeFileSync(file, text);
  }
  assert.ok(existsSync(file), `snapshot ${file} is missing; run with UPDATE_SNAPSHOTS=1 and review it`);
  assert.equal(text, readFileSync(file, "utf8"), `rendered YAML drifted from ${file}`);
}

describe("conversions", () => {
  const durations: [string, number][] = [
    ["10s", 10],
    ["1m30s", 90],
    ["500ms", 1],
    ["1.5s", 2],
    ["2h", 7200],
    ["0s", 1],
  ];
  for (const [input, expected] of durations) it(`probeSeconds(${input}) = ${expected}`, () => assert.equal(probeSeconds(input), expected));

  const sizes: [string, string][] = [
    ["2g", "2Gi"],
    ["512m", "512Mi"],
    ["100k", "100Ki"],
    ["1024", "1Ki"],
    ["1000", "1000"],
    ["10b", "10"],
    ["1.5g", "1536Mi"],
    ["1.5k", "1536"],
    ["2G", "2Gi"],
    ["2048m", "2Gi"],
    ["0", "0"],
  ];
  for (const [input, expected] of sizes) it(`quantity(${input}) = ${expected}`, () => assert.equal(quantity(input), expected));

  const cpus: [number, string][] = [
    [2, "2"],
    [1.5, "1500m"],
    [0.25, "250m"],
    [0.0005, "1m"],
  ];
  for (const [input, expected] of cpus) it(`cpuQuantity(${input}) = ${expected}`, () => assert.equal(cpuQuantity(input), expected));

  const refs: [string, boolean][] = [
    [INFERENCE_REF, true],
    [MEDIAMTX_REF, true],
    ["bluenviron/mediamtx:1.9.3", false],
    ["registry.lab:5000/fleet/inference", false],
    [`registry.lab:5000/fleet/inference@sha256:${"4f".repeat(31)}`, false],
  ];
  for (const [ref, pinned] of refs) {
    it(`digestProblem(${ref}) ${pinned ? "accepts" : "rejects"}`, () => {
      if (pinned) assert.equal(digestProblem(ref), undefined);
      else
        assert.equal(
          digestProblem(ref),
          `"${ref}" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>`,
        );
    });
  }

  it("CMD-SHELL runs through /bin/sh -c; NONE and no healthcheck give no probes", () => {
    const spec = ServiceSpec.parse(MEDIAMTX);
    assert.deepEqual(probes(spec.healthcheck).readinessProbe, {
      exec: { command: ["/bin/sh", "-c", "wget -qO- http://localhost:9997/v3/paths/list || exit 1"] },
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    assert.deepEqual(probes(ServiceSpec.parse({ ...WEBUI, healthcheck: { test: ["NONE"] } }).healthcheck), {});
    assert.deepEqual(probes(undefined), {});
  });

  it("the pull secret document is Docker's config.json with the login", () => {
    assert.deepEqual(JSON.parse(dockerConfigJson("registry.lab:5000", "fleet", "pa:ss")), {
      auths: { "registry.lab:5000": { username: "fleet", password: "pa:ss", auth: Buffer.from("fleet:pa:ss").toString("base64") } },
    });
  });
});

describe("fleetManifests", () => {
  it("inference: a DaemonSet on the selected nodes with the GPU runtime class, host network, probes, limits and mounts", () => {
    const fleet = fleetManifests(options([INFERENCE], { registry: { server: "registry.lab:5000", username: "fleet" } }));
    const svc = fleet.services[0];
    assert.ok(svc);
    assert.equal(svc.image, INFERENCE_REF);
    assert.equal(svc.workload.kind, "DaemonSet");
    const spec = svc.workload.spec as {
      updateStrategy: unknown;
      template: { metadata: { annotations: unknown }; spec: Record<string, unknown> & { containers: Record<string, unknown>[] } };
    };
    assert.deepEqual(spec.updateStrategy, { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    const pod = spec.template.spec;
    assert.equal(pod["runtimeClassName"], "nvidia");
    assert.equal(pod["hostNetwork"], true);
    assert.equal(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert.deepEqual(pod["nodeSelector"], { "kubernetes.io/arch": "arm64" });
    assert.deepEqual(pod["imagePullSecrets"], [{ name: "registry-credentials" }]);
    assert.deepEqual(pod["securityContext"], { runAsUser: 1000, runAsGroup: 1000 });
    assert.deepEqual(pod["volumes"], [
      { name: "volume-0", hostPath: { path: "/opt/fleet/models" } },
      { name: "volume-1", hostPath: { path: "/opt/fleet/output" } },
      { name: "shm", emptyDir: { medium: "Memory", sizeLimit: "2Gi" } },
    ]);
    assert.deepEqual(spec.template.metadata.annotations, { "fleet.example/owner": "vision team" });
    const c = pod.containers[0];
    assert.ok(c);
    assert.equal(c["image"], INFERENCE_REF);
    assert.deepEqual(c["ports"], [{ containerPort: 8080, protocol: "TCP" }]);
    assert.deepEqual(c["volumeMounts"], [
      { name: "volume-0", mountPath: "/models", readOnly: true },
      { name: "volume-1", mountPath: "/output" },
      { name: "shm", mountPath: "/dev/shm" },
    ]);
    // runtime-class mode: no extended resource, requests equal limits.
    assert.deepEqual(c["resources"], { requests: { cpu: "1500m", memory: "1Gi" }, limits: { cpu: "1500m", memory: "1Gi" } });
    assert.deepEqual(c["startupProbe"], {
      exec: { command: ["python3", "/app/healthcheck.py"] },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 6,
    });
    assert.deepEqual(c["livenessProbe"], {
      exec: { command: ["python3", "/app/healthcheck.py"] },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
    });
    assert.deepEqual(c["securityContext"], {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    // Sorted by name, whatever the order the config gives.
    assert.deepEqual(c["env"], [
      { name: "BATCH", value: "4" },
      { name: "NVIDIA_DRIVER_CAPABILITIES", value: "compute,utility,video" },
      { name: "NVIDIA_VISIBLE_DEVICES", value: "all" },
    ]);
    assert.deepEqual(svc.disruptionBudget.spec, {
      maxUnavailable: 1,
      selector: { matchLabels: { "app.kubernetes.io/name": "inference", "app.kubernetes.io/part-of": "jetson-fleet" } },
    });
    assert.equal(fleet.runtimeClass?.["handler"], "nvidia");
    assert.equal(fleet.pullSecretName, "registry-credentials");
  });

  it("bridge ports are published as host ports; tmpfs and named volumes have node-local equivalents", () => {
    const fleet = fleetManifests(options([MEDIAMTX]));
    const pod = (fleet.services[0]?.workload.spec as { template: { spec: { containers: Record<string, unknown>[]; volumes: unknown } } })
      .template.spec;
    assert.deepEqual(pod.containers[0]?.["ports"], [
      { containerPort: 8554, protocol: "TCP" },
      { containerPort: 8889, protocol: "TCP", hostPort: 18889, hostIP: "127.0.0.1" },
      { containerPort: 8189, protocol: "UDP" },
    ]);
    assert.deepEqual(pod.volumes, [
      { name: "volume-0", emptyDir: { medium: "Memory" } },
      { name: "volume-1", hostPath: { path: "/var/lib/jetson-fleet/volumes/recordings", type: "DirectoryOrCreate" } },
    ]);
    // No GPU service: no RuntimeClass, no runtimeClassName; anonymous pulls: no pull secret.
    assert.equal(fleet.runtimeClass, undefined);
    assert.equal((pod as Record<string, unknown>)["runtimeClassName"], undefined);
    assert.equal(fleet.pullSecretName, undefined);
  });

  const rollouts: [number | string, number | string][] = [
    [1, 1],
    [2, 2],
    ["25%", "25%"],
  ];
  for (const [maxUnavailable, expected] of rollouts) {
    it(`rollout maxUnavailable ${maxUnavailable} reaches the update strategy and the disruption budget`, () => {
      const fleet = fleetManifests(
        options([INFERENCE, WEBUI], { rollout: { maxUnavailable }, workloads: { webui: { kind: "Deployment", replicas: 2 } } }),
      );
      const [inference, webui] = fleet.services;
      assert.deepEqual((inference?.workload.spec as { updateStrategy: unknown }).updateStrategy, {
        type: "RollingUpdate",
        rollingUpdate: { maxUnavailable: expected, maxSurge: 0 },
      });
      assert.equal(webui?.workload.kind, "Deployment");
      assert.deepEqual((webui?.workload.spec as { strategy: unknown; replicas: number }).strategy, {
        type: "RollingUpdate",
        rollingUpdate: { maxUnavailable: expected, maxSurge: 0 },
      });
      assert.equal((webui?.workload.spec as { replicas: number }).replicas, 2);
      for (const s of fleet.services) assert.equal((s.disruptionBudget.spec as { maxUnavailable: unknown }).maxUnavailable, expected);
    });
  }

  it("device-plugin mode adds the plugin DaemonSet and nvidia.com/gpu limits", () => {
    const fleet = fleetManifests(
      options([INFERENCE, { ...WEBUI, resources: { gpus: 1 } }], { gpu: { mode: "device-plugin", image: PLUGIN_REF } }),
    );
    const limits = fleet.services.map(
      (s) =>
        (s.workload.spec as { template: { spec: { containers: { resources: { limits: Record<string, string> } }[] } } }).template.spec
          .containers[0]?.resources.limits,
    );
    assert.deepEqual(limits, [{ cpu: "1500m", memory: "1Gi", "nvidia.com/gpu": "1" }, { "nvidia.com/gpu": "1" }]);
    assert.equal(fleet.devicePlugin?.metadata.name, "nvidia-device-plugin");
  });

  const timeouts: [string, Partial<FleetManifestOptions>, Record<string, string>][] = [
    ["the provider's 10 minutes by default", {}, { "pulumi.com/timeoutSeconds": "600" }],
    ["rolloutTimeout in whole seconds", { rolloutTimeout: "1m40s" }, { "pulumi.com/timeoutSeconds": "100" }],
    ["a part of a second rounded up", { rolloutTimeout: "1500ms" }, { "pulumi.com/timeoutSeconds": "2" }],
    ["no timeout when Pulumi does not wait", { awaitRollout: false, rolloutTimeout: "5m" }, { "pulumi.com/skipAwait": "true" }],
  ];
  for (const [what, extra, annotations] of timeouts) {
    it(`bounds Pulumi's wait for a rollout: ${what}`, () => {
      const fleet = fleetManifests(options([WEBUI], { gpu: { mode: "device-plugin", image: PLUGIN_REF }, ...extra }));
      assert.deepEqual(fleet.services[0]?.workload.metadata.annotations, annotations);
      assert.deepEqual(fleet.devicePlugin?.metadata.annotations, annotations);
    });
  }

  it("a tagged image runs the digest the caller resolved for its service; a resolution that is not a digest is refused", () => {
    const tagged = { ...WEBUI, image: "registry.lab:5000/fleet/webui:2.0" };
    const resolved = `registry.lab:5000/fleet/webui@sha256:${"b2".repeat(32)}`;
    const fleet = fleetManifests(options([tagged], { serviceImages: { webui: resolved } }));
    assert.equal(fleet.services[0]?.image, resolved);
    assert.throws(() => fleetManifests(options([tagged], { serviceImages: { webui: "registry.lab:5000/fleet/webui:2.0" } })), {
      name: "StackConfigError",
      message: /services\[0\]\.image: "registry\.lab:5000\/fleet\/webui:2\.0" is not pinned by digest/,
    });
  });

  it("awaitRollout: false marks workloads for Pulumi not to wait for pods", () => {
    const fleet = fleetManifests(options([WEBUI], { awaitRollout: false }));
    assert.deepEqual(fleet.services[0]?.workload.metadata.annotations, { "pulumi.com/skipAwait": "true" });
    assert.equal(fleet.services[0]?.disruptionBudget.metadata.annotations, undefined);
  });

  const prefix = (n: number) => `invalid stack config (${n === 1 ? "1 problem" : `${n} problems`}); nothing was changed:\n`;
  const errors: [string, unknown[], Partial<FleetManifestOptions>, string[]][] = [
    [
      "an image pinned by tag only",
      [{ ...WEBUI, image: "registry.lab:5000/fleet/webui:2.0" }],
      {},
      [
        'Pulumi.prod.yaml: jetson-fleet:services[0].image: "registry.lab:5000/fleet/webui:2.0" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>',
      ],
    ],
    [
      "a built image without a pinned reference",
      [INFERENCE],
      { images: {} },
      [
        'Pulumi.prod.yaml: jetson-fleet:services[0].build: image "inference" has no pinned reference; expected one of the built images: (none given)',
      ],
    ],
    [
      "a built image pushed by tag",
      [INFERENCE],
      { images: { inference: "registry.lab:5000/fleet/inference:latest" } },
      [
        'Pulumi.prod.yaml: jetson-fleet:services[0].build: image "inference": "registry.lab:5000/fleet/inference:latest" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>',
      ],
    ],
    [
      "what pods cannot express, every problem at once",
      [
        WEBUI,
        {
          ...MEDIAMTX,
          devices: ["/dev/video0"],
          ulimits: { nofile: 65536 },
          restart: "no",
          user: "app",
          ipc: "service:webui",
          securityOpt: ["label=disable"],
        },
      ],
      {},
      [
        "Pulumi.prod.yaml: jetson-fleet:services[1].devices: device passthrough has no pod equivalent without privileged mode or a device plugin; expected [] on the kubernetes target (GPU access comes from runtime: nvidia)",
        "Pulumi.prod.yaml: jetson-fleet:services[1].ulimits: pods cannot set ulimits (they come from the node's container runtime); expected {} on the kubernetes target",
        'Pulumi.prod.yaml: jetson-fleet:services[1].restart: "no" cannot be honoured: DaemonSet and Deployment pods always restart; expected always or unless-stopped',
        'Pulumi.prod.yaml: jetson-fleet:services[1].ipc: "service:webui" shares another service\'s IPC namespace, which pods of separate workloads cannot; expected host, private or shareable',
        'Pulumi.prod.yaml: jetson-fleet:services[1].user: "app" is not numeric; Kubernetes runs containers as numeric IDs: expected UID or UID:GID, e.g. 1000:1000',
        'Pulumi.prod.yaml: jetson-fleet:services[1].securityOpt[0]: "label=disable" has no Kubernetes equivalent; expected no-new-privileges[:true|false], seccomp=unconfined or apparmor=unconfined',
      ],
    ],
  ];
  for (const [what, services, extra, lines] of errors) {
    it(`rejects ${what}`, () => {
      assert.throws(() => fleetManifests(options(services, extra)), {
        name: "StackConfigError",
        message: prefix(lines.length) + lines.join("\n"),
      });
    });
  }
});

describe("fleetManifests: arguments no stack config key sets", () => {
  const argErrors: [string, Partial<FleetManifestOptions>, string[]][] = [
    [
      "a device plugin image by tag, a workload for an unknown service",
      { gpu: { mode: "device-plugin", image: "nvcr.io/nvidia/k8s-device-plugin:v0.17.1" }, workloads: { webiu: { kind: "DaemonSet" } } },
      [
        'workloads.webiu: service "webiu" is not defined; expected one of: webui',
        'gpu.image: "nvcr.io/nvidia/k8s-device-plugin:v0.17.1" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>',
      ],
    ],
    [
      "a rollout timeout that is not a duration",
      { rolloutTimeout: "ten minutes" },
      ['rolloutTimeout: "ten minutes" is not a duration; expected e.g. 10m or 1h30m'],
    ],
    [
      "a Deployment without replicas",
      { workloads: { webui: { kind: "Deployment", replicas: 1.5 } } },
      ["workloads.webui.replicas: got 1.5; expected a whole number of at least 1"],
    ],
  ];
  for (const [what, extra, lines] of argErrors) {
    it(`rejects ${what}, naming the argument (no deploy.* key exists for it)`, () => {
      const n = lines.length;
      assert.throws(() => fleetManifests(options([WEBUI], extra)), {
        name: "KubernetesFleetArgsError",
        message: `invalid KubernetesFleet arguments (${n === 1 ? "1 problem" : `${n} problems`}); nothing was changed:\n${lines.join("\n")}`,
      });
    });
  }
});

describe("fleetManifests: secret environment values", () => {
  const TOKEN = "manifest-secret-93ab";
  const SECRET_SVC = { ...WEBUI, environment: { API_TOKEN: TOKEN, MODE: "live", PORT: 3000 } };

  it("a secret key becomes secretKeyRef to the service's Secret; the value is nowhere in the objects or the YAML", () => {
    const fleet = fleetManifests(options([SECRET_SVC], { secretEnvironment: { webui: ["API_TOKEN", "NOT_SET"] } }));
    const svc = fleet.services[0];
    const env = (svc?.workload.spec as { template: { spec: { containers: { env: unknown }[] } } }).template.spec.containers[0]?.env;
    assert.deepEqual(env, [
      { name: "API_TOKEN", valueFrom: { secretKeyRef: { name: "webui-environment", key: "API_TOKEN" } } },
      { name: "MODE", value: "live" },
      { name: "PORT", value: "3000" },
    ]);
    assert.deepEqual(svc?.environmentSecret, { name: "webui-environment", keys: ["API_TOKEN"] });
    assert.equal(JSON.stringify(fleet).includes(TOKEN), false);
    assert.equal(renderYaml(fleet).includes(TOKEN), false);
  });

  it("without secret keys the values stay plain and there is no Secret", () => {
    const fleet = fleetManifests(options([SECRET_SVC]));
    assert.equal(fleet.services[0]?.environmentSecret, undefined);
    assert.equal(environmentSecretManifest("jetson-fleet", ServiceSpec.parse(SECRET_SVC)), undefined);
  });

  it("the Secret holds exactly the secret values, base64", () => {
    const secret = environmentSecretManifest("vision", ServiceSpec.parse(SECRET_SVC), ["API_TOKEN", "NOT_SET"]);
    assert.deepEqual(secret, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "webui-environment",
        namespace: "vision",
        labels: { "app.kubernetes.io/name": "webui", "app.kubernetes.io/part-of": "jetson-fleet" },
      },
      type: "Opaque",
      data: { API_TOKEN: Buffer.from(TOKEN).toString("base64") },
    });
  });
});

describe("rendered YAML", () => {
  const fleets: [string, FleetManifestOptions, { server: string; username: string; password: string } | undefined][] = [
    [
      "dev-stack-inference",
      options([INFERENCE], { namespace: "vision", registry: { server: "registry.lab:5000", username: "fleet" } }),
      { server: "registry.lab:5000", username: "fleet", password: "snapshot-only-password" },
    ],
    [
      "mixed-workloads-device-plugin",
      options([INFERENCE, MEDIAMTX, WEBUI], {
        rollout: { maxUnavailable: "25%" },
        nodeSelector: { "jetson-fleet.io/gpu": "orin" },
        workloads: { webui: { kind: "Deployment", replicas: 2 } },
        gpu: { mode: "device-plugin", image: PLUGIN_REF },
      }),
      undefined,
    ],
  ];
  for (const [name, opts, login] of fleets) {
    it(`${name} matches its snapshot and parses back to the same objects`, () => {
      const fleet = fleetManifests(opts);
      const text = renderYaml(fleet, login);
      snapshot(name, text);
      assert.deepEqual(
        parseAllDocuments(text).map((d) => d.toJS() as unknown),
        JSON.parse(JSON.stringify(manifestList(fleet, login))),
      );
    });
  }

  it("the pull secret holds the login base64-encoded", () => {
    const fleet = fleetManifests(options([WEBUI], { registry: { server: "registry.lab:5000", username: "fleet" } }));
    const docs = renderYaml(fleet, { server: "registry.lab:5000", username: "fleet", password: "pw" })
      .split("---\n")
      .map((d) => parse(d) as Record<string, unknown>);
    const secret = docs.find((d) => d["kind"] === "Secret") as { type: string; data: Record<string, string> };
    assert.equal(secret.type, "kubernetes.io/dockerconfigjson");
    assert.equal(
      Buffer.from(secret.data[".dockerconfigjson"] ?? "", "base64").toString(),
      dockerConfigJson("registry.lab:5000", "fleet", "pw"),
    );
  });
});
