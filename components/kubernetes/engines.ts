// The TensorRT engines of a service on Kubernetes: init containers that build (or reuse) each
// model's engine on the node before the service starts, under the same key and in the same node
// tree as the per-host targets (components/models/engine.ts), and the volumes that show the engine
// to the service at its path. The work is scripts/engine-init.sh, delivered in one ConfigMap whose
// content hash is in every pod template that runs it, so a new script rolls the pods.
//
// A pod with models gets, before its container:
//   node-facts        uid 65534, no capabilities: the node's L4T release (/etc/nv_tegra_release)
//                     and GPU (the device tree's compatible) from the node's /etc and
//                     /sys/firmware, read-only, into a small emptyDir. The node's files are only
//                     readable by an unprivileged user; the builds never mount them.
//   engine-<model>    one per model, in order; root (the node's stores are root's, as the per-host
//                     targets keep them) without capabilities or privilege escalation: computes the
//                     key, reuses <ENGINE_ROOT>/<namespace>/<service>/<model>/<key>/ or fetches the
//                     model and builds it there, then links the engine and its record into the
//                     emptyDir the service mounts read-only at its path's directory.
// The service's container mounts its engines' directory (<ENGINE_ROOT>/<namespace>/<service>)
// read-only at the same path, so the links resolve; it sees neither the model store nor other
// services' engines. A failed build fails its init container: the pod does not start.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, posix } from "node:path";
import type * as k8s from "@pulumi/kubernetes";
import type { ServiceSpec } from "../config/schema.ts";
import { ENGINE_ROOT, MODEL_STORE_ROOT, engineTimeoutSeconds, modelLocation, trtexecArgs } from "../models/engine.ts";
import type { RenderContext } from "./context.ts";
import { type Manifest, PART_OF, PULL_SECRET_NAME, type PodContainer } from "./model.ts";

type Volume = k8s.types.input.core.v1.Volume;
type VolumeMount = k8s.types.input.core.v1.VolumeMount;
type EnvVar = k8s.types.input.core.v1.EnvVar;
type SecurityContext = k8s.types.input.core.v1.SecurityContext;

/** The script's file name, beside this module (`scripts/`) and in the ConfigMap. */
export const ENGINE_SCRIPT_FILE = "engine-init.sh";
/** The ConfigMap holding the script, in the fleet's namespace. */
export const ENGINE_SCRIPT_CONFIG_MAP = "engine-init";
/** The pod template annotation with the script's SHA-256: a new script is a new template, so the pods roll. */
export const ENGINE_SCRIPT_ANNOTATION = "jetson-fleet.io/engine-init-sha256";
/** The init container that reads the node's facts. */
export const NODE_FACTS_CONTAINER = "node-facts";
/** The user the facts are read as: nobody, so the node's /etc gives it only what every user may read. */
export const NODE_FACTS_USER = 65534;
/** The init container that builds a model's engine. */
export function engineContainerName(model: string): string {
  return `engine-${model}`;
}

/** Where the init containers see the script, the node's facts, the links and the registry login. */
const SCRIPT_DIR = "/jetson-fleet/engine-init";
const FACTS_DIR = "/jetson-fleet/facts";
const LINKS_DIR = "/jetson-fleet/links";
const REGISTRY_AUTH_DIR = "/jetson-fleet/registry";
const HOST_ETC = "/host/etc";
const HOST_FIRMWARE = "/host/sys/firmware";
/** What the facts container gets: it reads two small files. */
const FACTS_RESOURCES = { cpu: "100m", memory: "32Mi" };
const TINY_MEMORY = { medium: "Memory", sizeLimit: "1Mi" };
const NO_PRIVILEGES = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

let script: string | undefined;
/** The script's text (read once from `scripts/engine-init.sh`). */
export function engineScript(): string {
  script ??= readFileSync(join(import.meta.dirname, "scripts", ENGINE_SCRIPT_FILE), "utf8");
  return script;
}

/** The script's SHA-256 (hex), as the pod template annotation holds it. */
export function engineScriptSha256(): string {
  return createHash("sha256").update(engineScript()).digest("hex");
}

/** The ConfigMap the init containers run the script from. */
export function engineScriptManifest(namespace: string): Manifest {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: ENGINE_SCRIPT_CONFIG_MAP, namespace, labels: { ...PART_OF } },
    data: { [ENGINE_SCRIPT_FILE]: engineScript() },
  };
}

/** Whether a registry is the node's loopback, which a pod reaches only on the host network. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, "");
  return host === "localhost" || host === "[::1]" || /^127\.[0-9.]+$/.test(host);
}

/** What a service's pod gets for its models: init containers, volumes, its container's mounts. */
export interface EnginePodParts {
  readonly initContainers: PodContainer[];
  readonly volumes: Volume[];
  readonly mounts: VolumeMount[];
}

/** The directories a service's engines are linked in, each its emptyDir's volume name, in order of first use. */
export function engineLinkDirectories(svc: Pick<ServiceSpec, "models">): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const m of svc.models) {
    const dir = posix.dirname(posix.normalize(m.path));
    if (!dirs.has(dir)) dirs.set(dir, `engine-links-${dirs.size}`);
  }
  return dirs;
}

/**
 * The init containers, volumes and container mounts of `svc`'s models (none without models).
 * `resources` and `env` are the service container's: each build runs within the service's limits
 * and sees the GPU as the service does (its NVIDIA_* variables). Models not in `ctx.models` are
 * left out (validation reports them).
 */
export function enginePodParts(
  svc: ServiceSpec,
  image: string,
  resources: PodContainer["resources"],
  env: readonly EnvVar[],
  ctx: RenderContext,
): EnginePodParts {
  if (svc.models.length === 0) return { initContainers: [], volumes: [], mounts: [] };
  const ns = ctx.namespace;
  const scriptPath = posix.join(SCRIPT_DIR, ENGINE_SCRIPT_FILE);
  const serviceEngines = posix.join(ENGINE_ROOT, ns, svc.name);
  const modelStore = posix.join(MODEL_STORE_ROOT, ns);
  const withAuth = ctx.pullSecrets.length > 0;
  const dirs = engineLinkDirectories(svc);
  const nvidia = env.filter((e) => typeof e.name === "string" && e.name.startsWith("NVIDIA_") && e.value !== undefined);
  const nodeName: EnvVar = { name: "ENGINE_NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } };
  const scriptMount: VolumeMount = { name: ENGINE_SCRIPT_CONFIG_MAP, mountPath: SCRIPT_DIR, readOnly: true };
  const limits = resources && Object.keys(resources).length ? { resources } : {};

  const facts: PodContainer = {
    name: NODE_FACTS_CONTAINER,
    image,
    imagePullPolicy: "IfNotPresent",
    command: ["sh", scriptPath, "facts"],
    env: [
      { name: "ENGINE_FACTS", value: FACTS_DIR },
      { name: "ENGINE_HOST_ETC", value: HOST_ETC },
      { name: "ENGINE_HOST_FIRMWARE", value: HOST_FIRMWARE },
      nodeName,
    ],
    resources: { requests: { ...FACTS_RESOURCES }, limits: { ...FACTS_RESOURCES } },
    securityContext: {
      runAsUser: NODE_FACTS_USER,
      runAsGroup: NODE_FACTS_USER,
      runAsNonRoot: true,
      ...NO_PRIVILEGES,
    } satisfies SecurityContext,
    terminationMessagePolicy: "FallbackToLogsOnError",
    volumeMounts: [
      scriptMount,
      { name: "node-facts", mountPath: FACTS_DIR },
      { name: "host-etc", mountPath: HOST_ETC, readOnly: true },
      { name: "host-firmware", mountPath: HOST_FIRMWARE, readOnly: true },
    ],
  };

  const builds = svc.models.flatMap((ref): PodContainer[] => {
    const model = ctx.models.get(ref.name);
    if (!model || ctx.registry === undefined) return [];
    const location = modelLocation(model, ctx.registry.server);
    const path = posix.normalize(ref.path);
    const links = dirs.get(posix.dirname(path)) ?? "";
    const linkDir = posix.join(LINKS_DIR, links.replace(/^engine-links-/, ""));
    return [
      {
        name: engineContainerName(model.name),
        image,
        imagePullPolicy: "IfNotPresent",
        command: ["sh", scriptPath, "build"],
        args: trtexecArgs(model.engine),
        env: [
          ...nvidia,
          { name: "ENGINE_NAMESPACE", value: ns },
          { name: "ENGINE_SERVICE", value: svc.name },
          { name: "ENGINE_MODEL", value: model.name },
          { name: "ENGINE_MODEL_SHA256", value: model.sha256 },
          { name: "ENGINE_IMAGE", value: image },
          { name: "ENGINE_BUILDER", value: model.engine.builder },
          { name: "ENGINE_TIMEOUT_SECONDS", value: String(engineTimeoutSeconds(model.engine)) },
          { name: "ENGINE_KEEP", value: String(model.engine.keep) },
          { name: "ENGINE_LINK", value: posix.join(linkDir, posix.basename(path)) },
          { name: "ENGINE_MODEL_URL", value: `${location.registryUrl}/v2/${location.repository}/blobs/sha256:${model.sha256}` },
          { name: "ENGINE_REGISTRY", value: location.registry },
          { name: "ENGINE_REGISTRY_AUTH", value: withAuth ? posix.join(REGISTRY_AUTH_DIR, "config.json") : "" },
          { name: "ENGINE_FACTS", value: FACTS_DIR },
          { name: "ENGINE_ROOT", value: ENGINE_ROOT },
          { name: "ENGINE_MODEL_STORE_ROOT", value: MODEL_STORE_ROOT },
          // The root filesystem is read-only: temporary files and the builder's caches (CUDA's ~/.nv) go to the emptyDir.
          { name: "TMPDIR", value: "/tmp" },
          { name: "HOME", value: "/tmp" },
          nodeName,
        ],
        ...limits,
        securityContext: { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, ...NO_PRIVILEGES } satisfies SecurityContext,
        terminationMessagePolicy: "FallbackToLogsOnError",
        volumeMounts: [
          scriptMount,
          { name: "node-facts", mountPath: FACTS_DIR, readOnly: true },
          { name: "engine-store", mountPath: ENGINE_ROOT },
          { name: "model-store", mountPath: modelStore },
          { name: links, mountPath: linkDir },
          { name: "engine-tmp", mountPath: "/tmp" },
          ...(withAuth ? [{ name: "registry-auth", mountPath: REGISTRY_AUTH_DIR, readOnly: true }] : []),
        ],
      },
    ];
  });

  const volumes: Volume[] = [
    // 0444: the script is run with `sh`, read by whichever user the container is.
    { name: ENGINE_SCRIPT_CONFIG_MAP, configMap: { name: ENGINE_SCRIPT_CONFIG_MAP, defaultMode: 0o444 } },
    { name: "node-facts", emptyDir: { ...TINY_MEMORY } },
    { name: "host-etc", hostPath: { path: "/etc", type: "Directory" } },
    { name: "host-firmware", hostPath: { path: "/sys/firmware", type: "Directory" } },
    { name: "engine-store", hostPath: { path: ENGINE_ROOT, type: "DirectoryOrCreate" } },
    { name: "model-store", hostPath: { path: modelStore, type: "DirectoryOrCreate" } },
    { name: "engine-tmp", emptyDir: {} },
    ...(withAuth
      ? [
          {
            name: "registry-auth",
            secret: { secretName: PULL_SECRET_NAME, items: [{ key: ".dockerconfigjson", path: "config.json" }], defaultMode: 0o400 },
          },
        ]
      : []),
    { name: "engines", hostPath: { path: serviceEngines, type: "DirectoryOrCreate" } },
    ...[...dirs.values()].map((name) => ({ name, emptyDir: { ...TINY_MEMORY } })),
  ];
  const mounts: VolumeMount[] = [
    { name: "engines", mountPath: serviceEngines, readOnly: true },
    ...[...dirs].map(([dir, name]) => ({ name, mountPath: dir, readOnly: true })),
  ];
  return { initContainers: [facts, ...builds], volumes, mounts };
}
