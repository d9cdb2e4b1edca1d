// The policy pack's rules as pure functions: a resource (type, name, registered inputs) and the
// policy's config in, violation sentences out. `index.ts` turns them into a @pulumi/policy pack;
// unit tests table them without an engine. They read the registered inputs defensively: a policy
// sees plain JSON (secrets unwrapped, unknowns absent), never the components' typed arguments.
import { parseImage } from "../components/config/formats.ts";
import { ENGINE_ROOT, MODEL_STORE_ROOT } from "../components/models/engine.ts";

/** The component type tokens the rules read (frozen, see components/). */
export const SERVICE_TYPE = "jetson:services:Service";
export const HOST_TYPE = "jetson:host:JetsonHost";
export const IMAGE_TYPE = "jetson:image:GpuImage";
/** Kubernetes workloads whose pod template the rules read, by type token. */
export const POD_TEMPLATE_TYPES = [
  "kubernetes:apps/v1:DaemonSet",
  "kubernetes:apps/v1:Deployment",
  "kubernetes:apps/v1:StatefulSet",
  "kubernetes:batch/v1:Job",
  "kubernetes:core/v1:Pod",
] as const;

/** The resource a rule looks at. */
export interface PolicyResource {
  readonly type: string;
  readonly name: string;
  /** Registered inputs as the engine sends them: plain JSON. */
  readonly props: Readonly<Record<string, unknown>>;
}

/** What a rule knows about the run besides the resource. */
export interface PolicyContext {
  readonly stack: string;
}

/** Settings of the rules, from the policy pack config file (each policy reads its own). */
export interface RuleConfig {
  /** Accept an exact version tag where a digest is impossible. @default true */
  readonly allowVersionTags?: boolean;
  /** Mounts whose source or target matches must be read-only. @default DEFAULT_READ_ONLY_PATHS */
  readonly readOnlyPaths?: string;
  /** Stacks that are production whatever their hosts say. @default ["prod"] */
  readonly productionStacks?: readonly string[];
}

/** Model, engine and video paths: what the services read and must never change. */
export const DEFAULT_READ_ONLY_PATHS = "(^|/)(models?|engines?|videos?)(/|$)";
export const DEFAULT_PRODUCTION_STACKS: readonly string[] = ["prod"];
/** A tag that names one release: at least major.minor, optionally prefixed (v1.2, r36.4.0) and suffixed (-runtime). */
export const EXACT_VERSION_TAG = /^[A-Za-z]*[0-9]+\.[0-9]+(\.[0-9]+)*([._+-][A-Za-z0-9._-]+)?$/;
/** Capabilities that amount to a privileged container. */
export const PRIVILEGED_CAPABILITIES = ["ALL", "SYS_ADMIN"] as const;
/** The Kubernetes extended resource of NVIDIA's device plugin. */
export const GPU_RESOURCE = "nvidia.com/gpu";

export interface Rule {
  /** Policy name, as in the pack config file. */
  readonly name: string;
  readonly description: string;
  /** The config keys the rule reads (its schema in `index.ts`). */
  readonly configKeys: readonly (keyof RuleConfig)[];
  readonly check: (resource: PolicyResource, config: RuleConfig, context: PolicyContext) => string[];
}

type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose => v !== null && typeof v === "object" && !Array.isArray(v);
const objects = (v: unknown): Loose[] => (Array.isArray(v) ? v.filter(isObject) : []);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : []);
const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const field = (v: unknown, key: string): unknown => (isObject(v) ? v[key] : undefined);

/** Why an image reference is not pinned, or undefined. */
export function pinnedImageProblem(image: string, allowVersionTags = true): string | undefined {
  const ref = parseImage(image);
  const expected = allowVersionTags
    ? "expected repository@sha256:<digest>, or an exact version tag where a digest is impossible"
    : "expected repository@sha256:<digest>";
  if (!ref) return `image "${image}" is not a valid image reference; ${expected}`;
  // parseImage (config/formats.ts) takes only sha256 digests: a digest here is a pin every target deploys.
  if (ref.digest) return undefined;
  if (!ref.tag) return `image "${image}" has no tag or digest; ${expected}`;
  if (ref.tag === "latest") return `image "${image}" uses the moving tag "latest"; ${expected}`;
  if (!allowVersionTags) return `image "${image}" is pinned by tag only; ${expected}`;
  if (!EXACT_VERSION_TAG.test(ref.tag)) return `image "${image}" uses the tag "${ref.tag}", which is not an exact version; ${expected}`;
  return undefined;
}

/** The service spec and host of a `jetson:services:Service` (registered as `{ host, service }`). */
function serviceOf(resource: PolicyResource): { subject: string; service: Loose } | undefined {
  if (resource.type !== SERVICE_TYPE) return undefined;
  const service = isObject(resource.props["service"]) ? resource.props["service"] : {};
  const name = text(service["name"]) ?? resource.name;
  const host = text(resource.props["host"]);
  return { subject: host ? `service "${name}" on host "${host}"` : `service "${name}"`, service };
}

interface Container {
  readonly subject: string;
  readonly container: Loose;
}

/** The pod spec of a Kubernetes workload (a Pod's own spec, or a template's). */
function podOf(resource: PolicyResource): { subject: string; spec: Loose; containers: Container[] } | undefined {
  if (!(POD_TEMPLATE_TYPES as readonly string[]).includes(resource.type)) return undefined;
  const kind = resource.type.slice(resource.type.lastIndexOf(":") + 1);
  const name = text(field(resource.props["metadata"], "name")) ?? resource.name;
  const spec = resource.type.endsWith(":Pod") ? resource.props["spec"] : field(field(resource.props["spec"], "template"), "spec");
  const pod = isObject(spec) ? spec : {};
  const subject = `${kind} "${name}"`;
  const containers = [...objects(pod["initContainers"]), ...objects(pod["containers"])].map((c) => ({
    subject: `container "${text(c["name"]) ?? "?"}" of ${subject}`,
    container: c,
  }));
  return { subject, spec: pod, containers };
}

const readOnlyPattern = (config: RuleConfig) => new RegExp(config.readOnlyPaths ?? DEFAULT_READ_ONLY_PATHS);

/**
 * The node's engine and model stores (components/models/engine.ts), which the engine build's init
 * containers fill: theirs to write, before any service container starts; the service containers
 * mount their engines read-only.
 */
export const ENGINE_BUILD_STORES: readonly string[] = [ENGINE_ROOT, MODEL_STORE_ROOT];
const inStore = (source: string) => ENGINE_BUILD_STORES.some((s) => source === s || source.startsWith(`${s}/`));

export const imagesPinned: Rule = {
  name: "images-pinned",
  description: "Every image is pinned by digest (or an exact version tag where a digest is impossible), never latest.",
  configKeys: ["allowVersionTags"],
  check(resource, config) {
    const allow = config.allowVersionTags ?? true;
    const svc = serviceOf(resource);
    if (svc) {
      const image = text(svc.service["image"]);
      if (image === undefined) return [`${svc.subject} has no image reference; expected the pinned image it runs`];
      const problem = pinnedImageProblem(image, allow);
      return problem ? [`${svc.subject}: ${problem}`] : [];
    }
    const pod = podOf(resource);
    if (pod) {
      return pod.containers.flatMap(({ subject, container }) => {
        const problem = pinnedImageProblem(text(container["image"]) ?? "", allow);
        return problem ? [`${subject}: ${problem}`] : [];
      });
    }
    if (resource.type === IMAGE_TYPE && resource.props["tag"] === "latest") {
      const repository = text(resource.props["repository"]) ?? resource.name;
      return [
        `GpuImage "${resource.name}" pushes ${repository} with the moving tag "latest"; expected an exact version tag (the tag argument)`,
      ];
    }
    return [];
  },
};

/** Whether a service asks for a GPU: a GPU request or the NVIDIA runtime's device variable. */
function wantsGpu(service: Loose): boolean {
  const gpus = field(service["resources"], "gpus");
  const devices = field(service["environment"], "NVIDIA_VISIBLE_DEVICES");
  const visible = typeof devices === "string" || typeof devices === "number" ? String(devices) : "";
  return gpus !== undefined || !["void", "none", ""].includes(visible);
}

export const gpuRuntimeNvidia: Rule = {
  name: "gpu-runtime-nvidia",
  description: "Services that use a GPU run with the nvidia runtime (Kubernetes: runtimeClassName nvidia).",
  configKeys: [],
  check(resource) {
    const svc = serviceOf(resource);
    if (svc) {
      const runtime = text(svc.service["runtime"]) ?? "runc";
      return wantsGpu(svc.service) && runtime !== "nvidia"
        ? [`${svc.subject} uses a GPU but runs with runtime "${runtime}"; expected runtime "nvidia"`]
        : [];
    }
    const pod = podOf(resource);
    if (pod) {
      const gpu = pod.containers.some(({ container }) => field(field(container["resources"], "limits"), GPU_RESOURCE) !== undefined);
      const runtimeClass = text(pod.spec["runtimeClassName"]);
      return gpu && runtimeClass !== "nvidia"
        ? [
            `${pod.subject} requests ${GPU_RESOURCE} but has runtimeClassName ${runtimeClass ? `"${runtimeClass}"` : "unset"}; expected "nvidia"`,
          ]
        : [];
    }
    return [];
  },
};

export const modelMountsReadOnly: Rule = {
  name: "model-mounts-read-only",
  description: "Model, engine and video mounts are read-only (init containers may write the node's engine and model stores).",
  configKeys: ["readOnlyPaths"],
  check(resource, config) {
    const pattern = readOnlyPattern(config);
    const svc = serviceOf(resource);
    if (svc) {
      return objects(svc.service["volumes"]).flatMap((volume) => {
        const source = text(volume["source"]) ?? "";
        const target = text(volume["target"]) ?? "";
        if (volume["type"] === "tmpfs" || volume["readOnly"] === true || !(pattern.test(source) || pattern.test(target))) return [];
        return [
          `${svc.subject} mounts ${source ? `${source} at ` : ""}${target} read-write; expected readOnly: true for model and video mounts`,
        ];
      });
    }
    const pod = podOf(resource);
    if (pod) {
      const hostPaths = new Map(
        objects(pod.spec["volumes"]).map((v) => [text(v["name"]) ?? "", text(field(v["hostPath"], "path")) ?? ""] as const),
      );
      const init = objects(pod.spec["initContainers"]);
      return pod.containers.flatMap(({ subject, container }) =>
        objects(container["volumeMounts"]).flatMap((mount) => {
          const target = text(mount["mountPath"]) ?? "";
          const source = hostPaths.get(text(mount["name"]) ?? "") ?? "";
          if (mount["readOnly"] === true || !(pattern.test(source) || pattern.test(target))) return [];
          // The engine build writes the stores before the service starts (see ENGINE_BUILD_STORES).
          if (init.includes(container) && inStore(source)) return [];
          return [
            `${subject} mounts ${source ? `${source} at ` : ""}${target} read-write; expected readOnly: true for model and video mounts`,
          ];
        }),
      );
    }
    return [];
  },
};

export const healthcheckRequired: Rule = {
  name: "healthcheck-required",
  description: "Every service has a healthcheck (Kubernetes: a liveness or readiness probe).",
  configKeys: [],
  check(resource) {
    const svc = serviceOf(resource);
    if (svc) {
      const test = strings(field(svc.service["healthcheck"], "test"));
      if (test.length === 0)
        return [`${svc.subject} has no healthcheck; expected healthcheck.test, e.g. ["CMD", "curl", "-f", "http://localhost:8080/health"]`];
      return test[0] === "NONE" ? [`${svc.subject} disables its image's healthcheck ("NONE"); expected a healthcheck command`] : [];
    }
    const pod = podOf(resource);
    if (pod) {
      return pod.containers
        .filter(({ container }) => !objects(pod.spec["initContainers"]).includes(container))
        .filter(({ container }) => container["livenessProbe"] === undefined && container["readinessProbe"] === undefined)
        .map(({ subject }) => `${subject} has no liveness or readiness probe; expected a probe of its health endpoint`);
    }
    return [];
  },
};

/** Log drivers that keep logs on the host and need rotation options. */
const LOCAL_LOG_DRIVERS = ["json-file", "local"];

export const logRotationRequired: Rule = {
  name: "log-rotation-required",
  description: 'Every service rotates its logs (json-file/local drivers with "max-size" and "max-file").',
  configKeys: [],
  check(resource) {
    const svc = serviceOf(resource);
    if (!svc) return [];
    const driver = text(field(svc.service["logging"], "driver")) ?? "json-file";
    if (driver === "none") return [`${svc.subject} has log driver "none"; expected json-file with "max-size" and "max-file"`];
    if (!LOCAL_LOG_DRIVERS.includes(driver)) return [];
    const options = field(svc.service["logging"], "options");
    const missing = ["max-size", "max-file"].filter((k) => text(field(options, k)) === undefined);
    return missing.length
      ? [
          `${svc.subject} logs with ${driver} without ${missing.map((k) => `"${k}"`).join(" and ")}; expected rotation, e.g. "max-size": "10m", "max-file": "3"`,
        ]
      : [];
  },
};

export const memoryLimitRequired: Rule = {
  name: "memory-limit-required",
  description: "Every service has a memory limit.",
  configKeys: [],
  check(resource) {
    const svc = serviceOf(resource);
    if (svc) {
      return text(field(svc.service["resources"], "memory")) === undefined
        ? [`${svc.subject} has no memory limit; expected resources.memory, e.g. "4g"`]
        : [];
    }
    const pod = podOf(resource);
    if (pod) {
      return pod.containers
        .filter(({ container }) => field(field(container["resources"], "limits"), "memory") === undefined)
        .map(({ subject }) => `${subject} has no memory limit; expected resources.limits.memory, e.g. "4Gi"`);
    }
    return [];
  },
};

/** What makes a container privileged: the flag, or capabilities that amount to it. */
function privilegeProblems(privileged: unknown, capAdd: string[]): string[] {
  const caps = capAdd
    .map((c) => c.toUpperCase().replace(/^CAP_/, ""))
    .filter((c) => (PRIVILEGED_CAPABILITIES as readonly string[]).includes(c));
  return [...(privileged === true ? ["is privileged"] : []), ...caps.map((c) => `adds capability ${c}`)];
}

export const noPrivileged: Rule = {
  name: "no-privileged",
  description: "No privileged containers (nor capabilities ALL or SYS_ADMIN): GPU access goes through the nvidia runtime.",
  configKeys: [],
  check(resource) {
    const expected = "expected no privileged mode; pass devices and specific capabilities instead";
    const svc = serviceOf(resource);
    if (svc) {
      return privilegeProblems(svc.service["privileged"], strings(svc.service["capAdd"])).map((p) => `${svc.subject} ${p}; ${expected}`);
    }
    const pod = podOf(resource);
    if (pod) {
      return pod.containers.flatMap(({ subject, container }) => {
        const security = container["securityContext"];
        return privilegeProblems(field(security, "privileged"), strings(field(field(security, "capabilities"), "add"))).map(
          (p) => `${subject} ${p}; ${expected}`,
        );
      });
    }
    return [];
  },
};

export const noHostPid: Rule = {
  name: "no-host-pid",
  description: "No container shares the host's PID namespace.",
  configKeys: [],
  check(resource) {
    const svc = serviceOf(resource);
    if (svc) return svc.service["pid"] === "host" ? [`${svc.subject} shares the host's PID namespace (pid: host); expected its own`] : [];
    const pod = podOf(resource);
    if (pod)
      return pod.spec["hostPID"] === true ? [`${pod.subject} shares the host's PID namespace (hostPID: true); expected its own`] : [];
    return [];
  },
};

export const hostKeysPinned: Rule = {
  name: "host-keys-pinned",
  description: "Production hosts pin their SSH host key.",
  configKeys: ["productionStacks"],
  check(resource, config, context) {
    if (resource.type !== HOST_TYPE) return [];
    const production =
      resource.props["production"] === true || (config.productionStacks ?? DEFAULT_PRODUCTION_STACKS).includes(context.stack);
    if (!production || resource.props["hostKeyPinned"] === true) return [];
    const host = text(resource.props["host"]) ?? resource.name;
    return [
      `host "${host}" does not pin its SSH host key in production stack "${context.stack}"; expected hosts[].hostKey set to its public key (ssh-keyscan -t ed25519 ADDRESS)`,
    ];
  },
};

export const registryCredentialsSecret: Rule = {
  name: "registry-credentials-secret",
  description: "Registry passwords come from Pulumi secrets, never plain text.",
  configKeys: [],
  check(resource) {
    if (resource.type !== IMAGE_TYPE) return [];
    const registry = resource.props["registry"];
    if (field(registry, "passwordSource") !== "plaintext") return [];
    const address = text(field(registry, "address")) ?? "?";
    return [
      `GpuImage "${resource.name}" gets the password of registry ${address} in plain text; expected a Pulumi secret (pulumi config set --secret, config.requireSecret)`,
    ];
  },
};

/** Every rule of the pack, in the order the README lists them. */
export const RULES: readonly Rule[] = [
  imagesPinned,
  gpuRuntimeNvidia,
  modelMountsReadOnly,
  healthcheckRequired,
  logRotationRequired,
  memoryLimitRequired,
  noPrivileged,
  noHostPid,
  hostKeysPinned,
  registryCredentialsSecret,
];
