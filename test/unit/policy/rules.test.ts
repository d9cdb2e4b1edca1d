// The policy pack's rules as pure functions, tabled: registered inputs in, exact violations out.
// The engine tier (test/engine/policy.test.ts) runs the same rules through `pulumi preview`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ServiceSpec } from "../../../components/config/index.ts";
import {
  RULES,
  gpuRuntimeNvidia,
  healthcheckRequired,
  hostKeysPinned,
  imagesPinned,
  logRotationRequired,
  memoryLimitRequired,
  modelMountsReadOnly,
  noHostPid,
  noPrivileged,
  pinnedImageProblem,
  registryCredentialsSecret,
  type PolicyResource,
  type Rule,
  type RuleConfig,
} from "../../../policy/rules.ts";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;
const EXPECTED = "expected repository@sha256:<digest>, or an exact version tag where a digest is impossible";

/** A `jetson:services:Service` as the component registers it: the spec after defaults, on a host. */
function service(spec: Record<string, unknown>, extra: Record<string, unknown> = {}): PolicyResource {
  const parsed = ServiceSpec.parse({
    name: "inference",
    image: `registry.lab:5000/fleet/inference@${DIGEST}`,
    runtime: "nvidia",
    healthcheck: { test: ["CMD", "true"] },
    resources: { memory: "4g", gpus: "all" },
    volumes: [{ source: "/opt/fleet/models", target: "/models", readOnly: true }],
    ...spec,
  });
  return { type: "jetson:services:Service", name: `orin-01-${parsed.name}`, props: { host: "orin-01", service: { ...parsed, ...extra } } };
}

/** A DaemonSet with one container. */
function daemonSet(container: Record<string, unknown>, pod: Record<string, unknown> = {}): PolicyResource {
  return {
    type: "kubernetes:apps/v1:DaemonSet",
    name: "inference",
    props: {
      metadata: { name: "inference" },
      spec: {
        template: {
          spec: {
            runtimeClassName: "nvidia",
            volumes: [{ name: "models", hostPath: { path: "/opt/fleet/models" } }],
            ...pod,
            containers: [
              {
                name: "inference",
                image: `registry.lab:5000/fleet/inference@${DIGEST}`,
                resources: { limits: { "nvidia.com/gpu": "1", memory: "4Gi" } },
                livenessProbe: { httpGet: { path: "/health", port: 8080 } },
                volumeMounts: [{ name: "models", mountPath: "/models", readOnly: true }],
                ...container,
              },
            ],
          },
        },
      },
    },
  };
}

const host = (props: Record<string, unknown>): PolicyResource => ({
  type: "jetson:host:JetsonHost",
  name: "orin-01",
  props: { host: "orin-01", address: "192.168.50.11", hostKeyPinned: true, production: false, ...props },
});
const image = (props: Record<string, unknown>): PolicyResource => ({
  type: "jetson:image:GpuImage",
  name: "inference",
  props: { repository: "registry.lab:5000/fleet/inference", tag: "1.4.2", ...props },
});

type Row = [what: string, rule: Rule, resource: PolicyResource, expected: string[], config?: RuleConfig, stack?: string];

const rows: Row[] = [
  // images-pinned
  ["digest-pinned service", imagesPinned, service({}), []],
  ["exact version tag", imagesPinned, service({ image: "bluenviron/mediamtx:1.9.3" }), []],
  ["L4T-style version tag", imagesPinned, service({ image: "nvcr.io/nvidia/l4t-base:r36.2.0" }), []],
  [
    "latest",
    imagesPinned,
    service({ image: "bluenviron/mediamtx:latest" }),
    [`service "inference" on host "orin-01": image "bluenviron/mediamtx:latest" uses the moving tag "latest"; ${EXPECTED}`],
  ],
  [
    "no tag",
    imagesPinned,
    service({ image: "bluenviron/mediamtx" }),
    [`service "inference" on host "orin-01": image "bluenviron/mediamtx" has no tag or digest; ${EXPECTED}`],
  ],
  [
    "a tag that is no version",
    imagesPinned,
    service({ image: "bluenviron/mediamtx:stable" }),
    [
      `service "inference" on host "orin-01": image "bluenviron/mediamtx:stable" uses the tag "stable", which is not an exact version; ${EXPECTED}`,
    ],
  ],
  [
    "a version tag when digests are required",
    imagesPinned,
    service({ image: "bluenviron/mediamtx:1.9.3" }),
    ['service "inference" on host "orin-01": image "bluenviron/mediamtx:1.9.3" is pinned by tag only; expected repository@sha256:<digest>'],
    { allowVersionTags: false },
  ],
  [
    // The digest pattern lives in config/formats.ts: the policy agrees with every target on it.
    "a digest in upper-case hex (Docker refuses it)",
    imagesPinned,
    daemonSet({ image: `registry.lab:5000/fleet/inference@${DIGEST.toUpperCase().replace("SHA256", "sha256")}` }),
    [
      `container "inference" of DaemonSet "inference": image "registry.lab:5000/fleet/inference@${DIGEST.toUpperCase().replace("SHA256", "sha256")}" is not a valid image reference; ${EXPECTED}`,
    ],
  ],
  [
    "a sha512 digest (the targets deploy sha256 only)",
    imagesPinned,
    daemonSet({ image: `fleet/inference@sha512:${"0123456789abcdef".repeat(8)}` }),
    [
      `container "inference" of DaemonSet "inference": image "fleet/inference@sha512:${"0123456789abcdef".repeat(8)}" is not a valid image reference; ${EXPECTED}`,
    ],
  ],
  [
    "k8s container on latest",
    imagesPinned,
    daemonSet({ image: "fleet/inference:latest" }),
    [`container "inference" of DaemonSet "inference": image "fleet/inference:latest" uses the moving tag "latest"; ${EXPECTED}`],
  ],
  [
    "GpuImage pushing latest",
    imagesPinned,
    image({ tag: "latest" }),
    [
      'GpuImage "inference" pushes registry.lab:5000/fleet/inference with the moving tag "latest"; expected an exact version tag (the tag argument)',
    ],
  ],
  ["GpuImage with a version tag", imagesPinned, image({}), []],
  // gpu-runtime-nvidia
  ["GPU service on nvidia", gpuRuntimeNvidia, service({}), []],
  [
    "GPU request on runc",
    gpuRuntimeNvidia,
    service({ runtime: "runc" }),
    ['service "inference" on host "orin-01" uses a GPU but runs with runtime "runc"; expected runtime "nvidia"'],
  ],
  [
    "NVIDIA_VISIBLE_DEVICES on runc",
    gpuRuntimeNvidia,
    service({ runtime: "runc", resources: { memory: "1g" }, environment: { NVIDIA_VISIBLE_DEVICES: "all" } }),
    ['service "inference" on host "orin-01" uses a GPU but runs with runtime "runc"; expected runtime "nvidia"'],
  ],
  ["CPU service on runc", gpuRuntimeNvidia, service({ runtime: "runc", resources: { memory: "1g" } }), []],
  [
    "k8s GPU limit without runtime class",
    gpuRuntimeNvidia,
    daemonSet({}, { runtimeClassName: undefined }),
    ['DaemonSet "inference" requests nvidia.com/gpu but has runtimeClassName unset; expected "nvidia"'],
  ],
  // model-mounts-read-only
  [
    "models mounted read-write",
    modelMountsReadOnly,
    service({ volumes: [{ source: "/opt/fleet/models", target: "/models" }] }),
    [
      'service "inference" on host "orin-01" mounts /opt/fleet/models at /models read-write; expected readOnly: true for model and video mounts',
    ],
  ],
  [
    "videos by target only",
    modelMountsReadOnly,
    service({ volumes: [{ type: "volume", source: "clips", target: "/data/videos" }] }),
    ['service "inference" on host "orin-01" mounts clips at /data/videos read-write; expected readOnly: true for model and video mounts'],
  ],
  ["output read-write is fine", modelMountsReadOnly, service({ volumes: [{ source: "/opt/fleet/output", target: "/output" }] }), []],
  ["a path like /modelsx is not a model mount", modelMountsReadOnly, service({ volumes: [{ source: "/srv/modelsx", target: "/x" }] }), []],
  [
    "configured path pattern",
    modelMountsReadOnly,
    service({ volumes: [{ source: "/srv/weights", target: "/weights" }] }),
    [
      'service "inference" on host "orin-01" mounts /srv/weights at /weights read-write; expected readOnly: true for model and video mounts',
    ],
    { readOnlyPaths: "(^|/)weights(/|$)" },
  ],
  [
    "k8s hostPath models mounted elsewhere read-write",
    modelMountsReadOnly,
    daemonSet({ volumeMounts: [{ name: "models", mountPath: "/data" }] }),
    [
      'container "inference" of DaemonSet "inference" mounts /opt/fleet/models at /data read-write; expected readOnly: true for model and video mounts',
    ],
  ],
  [
    "k8s init containers write the node's engine and model stores; the service reads its engines",
    modelMountsReadOnly,
    daemonSet(
      { volumeMounts: [{ name: "engines", mountPath: "/var/lib/jetson-fleet/engines/vision/inference", readOnly: true }] },
      {
        volumes: [
          { name: "engine-store", hostPath: { path: "/var/lib/jetson-fleet/engines" } },
          { name: "model-store", hostPath: { path: "/var/lib/jetson-fleet/models/vision" } },
          { name: "engines", hostPath: { path: "/var/lib/jetson-fleet/engines/vision/inference" } },
        ],
        initContainers: [
          {
            name: "engine-detector",
            image: `registry.lab:5000/fleet/inference@${DIGEST}`,
            volumeMounts: [
              { name: "engine-store", mountPath: "/var/lib/jetson-fleet/engines" },
              { name: "model-store", mountPath: "/var/lib/jetson-fleet/models/vision" },
            ],
          },
        ],
      },
    ),
    [],
  ],
  [
    "k8s init containers may not write other model paths, nor service containers the stores",
    modelMountsReadOnly,
    daemonSet(
      { volumeMounts: [{ name: "engine-store", mountPath: "/var/lib/jetson-fleet/engines" }] },
      {
        volumes: [
          { name: "engine-store", hostPath: { path: "/var/lib/jetson-fleet/engines" } },
          { name: "models", hostPath: { path: "/opt/fleet/models" } },
        ],
        initContainers: [
          { name: "fetch", image: `registry.lab:5000/x@${DIGEST}`, volumeMounts: [{ name: "models", mountPath: "/models" }] },
        ],
      },
    ),
    [
      'container "fetch" of DaemonSet "inference" mounts /opt/fleet/models at /models read-write; expected readOnly: true for model and video mounts',
      'container "inference" of DaemonSet "inference" mounts /var/lib/jetson-fleet/engines at /var/lib/jetson-fleet/engines read-write; expected readOnly: true for model and video mounts',
    ],
  ],
  // healthcheck-required
  [
    "no healthcheck",
    healthcheckRequired,
    service({ healthcheck: undefined }),
    [
      'service "inference" on host "orin-01" has no healthcheck; expected healthcheck.test, e.g. ["CMD", "curl", "-f", "http://localhost:8080/health"]',
    ],
  ],
  [
    "healthcheck NONE",
    healthcheckRequired,
    service({ healthcheck: { test: ["NONE"] } }),
    ['service "inference" on host "orin-01" disables its image\'s healthcheck ("NONE"); expected a healthcheck command'],
  ],
  [
    "k8s container without probes",
    healthcheckRequired,
    daemonSet({ livenessProbe: undefined }),
    ['container "inference" of DaemonSet "inference" has no liveness or readiness probe; expected a probe of its health endpoint'],
  ],
  // log-rotation-required
  ["default json-file 10m x 3", logRotationRequired, service({}), []],
  ["journald rotates elsewhere", logRotationRequired, service({ logging: { driver: "journald", options: {} } }), []],
  [
    "json-file without options",
    logRotationRequired,
    service({ logging: { driver: "json-file", options: {} } }),
    [
      'service "inference" on host "orin-01" logs with json-file without "max-size" and "max-file"; expected rotation, e.g. "max-size": "10m", "max-file": "3"',
    ],
  ],
  [
    "log driver none",
    logRotationRequired,
    service({ logging: { driver: "none" } }),
    ['service "inference" on host "orin-01" has log driver "none"; expected json-file with "max-size" and "max-file"'],
  ],
  // memory-limit-required
  [
    "no memory limit",
    memoryLimitRequired,
    service({ resources: { cpus: 2 } }),
    ['service "inference" on host "orin-01" has no memory limit; expected resources.memory, e.g. "4g"'],
  ],
  [
    "k8s container without memory limit",
    memoryLimitRequired,
    daemonSet({ resources: { limits: { "nvidia.com/gpu": "1" } } }),
    ['container "inference" of DaemonSet "inference" has no memory limit; expected resources.limits.memory, e.g. "4Gi"'],
  ],
  // no-privileged
  ["NET_ADMIN is fine", noPrivileged, service({ capAdd: ["NET_ADMIN"] }), []],
  [
    "capability ALL and privileged",
    noPrivileged,
    service({ capAdd: ["ALL"] }, { privileged: true }),
    [
      'service "inference" on host "orin-01" is privileged; expected no privileged mode; pass devices and specific capabilities instead',
      'service "inference" on host "orin-01" adds capability ALL; expected no privileged mode; pass devices and specific capabilities instead',
    ],
  ],
  [
    "k8s CAP_SYS_ADMIN",
    noPrivileged,
    daemonSet({ securityContext: { capabilities: { add: ["CAP_SYS_ADMIN"] } } }),
    [
      'container "inference" of DaemonSet "inference" adds capability SYS_ADMIN; expected no privileged mode; pass devices and specific capabilities instead',
    ],
  ],
  // no-host-pid
  [
    "pid host",
    noHostPid,
    service({}, { pid: "host" }),
    [`service "inference" on host "orin-01" shares the host's PID namespace (pid: host); expected its own`],
  ],
  ["ipc host is not pid host", noHostPid, service({ ipc: "host" }), []],
  [
    "k8s hostPID",
    noHostPid,
    daemonSet({}, { hostPID: true }),
    [`DaemonSet "inference" shares the host's PID namespace (hostPID: true); expected its own`],
  ],
  // host-keys-pinned
  ["pinned in production", hostKeysPinned, host({ production: true }), [], {}, "prod"],
  ["unpinned outside production", hostKeysPinned, host({ hostKeyPinned: false }), [], {}, "dev"],
  [
    "unpinned on a production host",
    hostKeysPinned,
    host({ hostKeyPinned: false, production: true }),
    [
      'host "orin-01" does not pin its SSH host key in production stack "staging"; expected hosts[].hostKey set to its public key (ssh-keyscan -t ed25519 ADDRESS)',
    ],
    {},
    "staging",
  ],
  [
    "unpinned on a production stack name",
    hostKeysPinned,
    host({ hostKeyPinned: false }),
    [
      'host "orin-01" does not pin its SSH host key in production stack "fleet-prod"; expected hosts[].hostKey set to its public key (ssh-keyscan -t ed25519 ADDRESS)',
    ],
    { productionStacks: ["fleet-prod"] },
    "fleet-prod",
  ],
  // registry-credentials-secret
  ["secret password", registryCredentialsSecret, image({ registry: { address: "registry.lab:5000", passwordSource: "secret" } }), []],
  ["anonymous registry", registryCredentialsSecret, image({ registry: { address: "registry.lab:5000", passwordSource: "none" } }), []],
  [
    "plain-text password",
    registryCredentialsSecret,
    image({ registry: { address: "registry.lab:5000", username: "ci", passwordSource: "plaintext" } }),
    [
      'GpuImage "inference" gets the password of registry registry.lab:5000 in plain text; expected a Pulumi secret (pulumi config set --secret, config.requireSecret)',
    ],
  ],
];

describe("policy rules", () => {
  for (const [what, rule, resource, expected, config = {}, stack = "prod"] of rows) {
    it(`${rule.name}: ${what}`, () => assert.deepEqual(rule.check(resource, config, { stack }), expected));
  }

  it("every rule passes a compliant service, DaemonSet, host and image", () => {
    const compliant = [
      service({}),
      daemonSet({}),
      host({ production: true }),
      image({ registry: { address: "r", passwordSource: "secret" } }),
    ];
    for (const rule of RULES) {
      for (const resource of compliant)
        assert.deepEqual(rule.check(resource, {}, { stack: "prod" }), [], `${rule.name} on ${resource.type}`);
    }
  });

  it("ignores resources it does not know", () => {
    const other: PolicyResource = { type: "docker-build:index:Image", name: "x", props: { tags: ["x:latest"], privileged: true } };
    for (const rule of RULES) assert.deepEqual(rule.check(other, {}, { stack: "prod" }), [], rule.name);
  });

  it("has unique policy names", () => assert.equal(new Set(RULES.map((r) => r.name)).size, RULES.length));

  const refs: [string, string | undefined][] = [
    [`fleet/x@${DIGEST}`, undefined],
    [`fleet/x:1.2@${DIGEST}`, undefined],
    ["fleet/x:v1.2.3-alpine", undefined],
    ["fleet/x:36", `image "fleet/x:36" uses the tag "36", which is not an exact version; ${EXPECTED}`],
    ["Fleet/X", `image "Fleet/X" is not a valid image reference; ${EXPECTED}`],
  ];
  for (const [ref, problem] of refs) {
    it(`pinnedImageProblem(${ref})`, () => assert.equal(pinnedImageProblem(ref), problem));
  }
});
