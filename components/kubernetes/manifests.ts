// The Kubernetes fleet target as a pure function: validated `ServiceSpec`s in, plain Kubernetes
// objects out (namespace, RuntimeClass, pull secret, one DaemonSet or Deployment and one
// PodDisruptionBudget per service, the NVIDIA device plugin when asked). The `KubernetesFleet`
// component applies exactly these objects; GitOps users can render them to YAML instead.
// Everything a stack can get wrong is checked here, before any object exists, and reported the
// way the config loader reports problems (stack file, config key, what is expected).
import type * as k8s from "@pulumi/kubernetes";
import { stringify } from "yaml";
import { type ConfigProblem, StackConfigError, type StackConfigSource } from "../config/load.ts";
import { parseImage } from "../config/formats.ts";
import type { DeploySpec, ServiceSpec } from "../config/schema.ts";
import { durationSeconds } from "../services/spec.ts";

type ObjectMeta = k8s.types.input.meta.v1.ObjectMeta;
type PodSpec = k8s.types.input.core.v1.PodSpec;
/** A pod template's container, as `@pulumi/kubernetes` types it. */
export type PodContainer = k8s.types.input.core.v1.Container;
type Probe = k8s.types.input.core.v1.Probe;
type Volume = k8s.types.input.core.v1.Volume;
type VolumeMount = k8s.types.input.core.v1.VolumeMount;
type SecurityContext = k8s.types.input.core.v1.SecurityContext;
type PodSecurityContext = k8s.types.input.core.v1.PodSecurityContext;

/** The RuntimeClass (and containerd runtime handler) GPU pods run with. */
export const NVIDIA_RUNTIME_CLASS = "nvidia";
/** The extended resource the NVIDIA device plugin advertises (one per Jetson: its integrated GPU). */
export const NVIDIA_GPU_RESOURCE = "nvidia.com/gpu";
/** The namespace services land in unless the fleet says otherwise. */
export const DEFAULT_NAMESPACE = "jetson-fleet";
/** Nodes services run on unless the fleet says otherwise: every Jetson is arm64. */
export const DEFAULT_NODE_SELECTOR: Readonly<Record<string, string>> = { "kubernetes.io/arch": "arm64" };
/** The name of the image pull secret made from the registry config. */
export const PULL_SECRET_NAME = "registry-credentials";
/** The pull secret's type: its data is one `.dockerconfigjson` document. */
export const PULL_SECRET_TYPE = "kubernetes.io/dockerconfigjson";
/** The device plugin's DaemonSet name. */
export const DEVICE_PLUGIN_NAME = "nvidia-device-plugin";
/** Where Docker named volumes live on each node: Kubernetes has no per-node named volume. */
export const NAMED_VOLUME_ROOT = "/var/lib/jetson-fleet/volumes";
/** Pulumi's annotation that skips waiting for a workload's rollout. */
export const SKIP_AWAIT = { "pulumi.com/skipAwait": "true" } as const;
/** The label every object of the fleet carries; with the service name it selects a service's pods. */
export const PART_OF = { "app.kubernetes.io/part-of": "jetson-fleet" } as const;

/** How a service's pods are spread: one per selected node, or a fixed number of replicas. */
export type Workload = { readonly kind: "DaemonSet" } | { readonly kind: "Deployment"; readonly replicas: number };

/**
 * How GPU pods reach the Jetson's integrated GPU.
 * - `runtime-class`: `runtimeClassName: nvidia`; k3s configures containerd's `nvidia` handler when
 *   it finds the NVIDIA container toolkit, whose CSV mode mounts the L4T libraries and device nodes.
 * - `device-plugin`: the same, plus the NVIDIA device plugin (a digest-pinned image you mirror)
 *   advertising `nvidia.com/gpu`, so GPU services also get GPU limits the scheduler accounts for.
 */
export type GpuAccess = { readonly mode: "runtime-class" } | { readonly mode: "device-plugin"; readonly image: string };

/** The registry images are pulled from. With a username, pods pull with the `registry-credentials` Secret. */
export interface FleetRegistry {
  readonly server: string;
  readonly username?: string;
}

/** A registry login, for the pull secret (kept out of `fleetManifests` so the password stays a Pulumi secret). */
export interface RegistryLogin {
  readonly server: string;
  readonly username: string;
  readonly password: string;
}

export interface FleetManifestOptions {
  /** Services, validated with defaults applied (`ServiceSpec.parse`), in stack config order. */
  readonly services: readonly ServiceSpec[];
  /** Pinned references (`repository@sha256:…`) of images this stack builds, by `images[].name`. */
  readonly images?: Readonly<Record<string, string>>;
  /** @default "jetson-fleet" */
  readonly namespace?: string;
  /** @default { maxUnavailable: 1 } */
  readonly rollout?: DeploySpec["rollout"];
  /** Registry to pull from; with a username, pods get `imagePullSecrets` naming the pull secret. */
  readonly registry?: FleetRegistry;
  /** @default { "kubernetes.io/arch": "arm64" } */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** Workload per service name. @default DaemonSet for every service */
  readonly workloads?: Readonly<Record<string, Workload>>;
  /** @default { mode: "runtime-class" } */
  readonly gpu?: GpuAccess;
  /** Create the `nvidia` RuntimeClass (turn off where the cluster already has one). @default true */
  readonly runtimeClass?: boolean;
  /**
   * Wait for each workload's rollout during `up` (Pulumi's await logic). Turn off for clusters
   * without nodes or controllers, where no pod ever becomes ready. @default true
   */
  readonly awaitRollout?: boolean;
  /** Names the stack file and config namespace in error messages. */
  readonly source: Pick<StackConfigSource, "project" | "stack">;
}

export interface Manifest {
  /** The object's API group and version. @example "apps/v1" */
  readonly apiVersion: string;
  /** The object's kind. @example "DaemonSet" */
  readonly kind: string;
  /** Name, namespace, labels and annotations; the name is always set. @example { name: "inference", namespace: "jetson-fleet" } */
  readonly metadata: ObjectMeta & {
    /** The object's name (the service's name for its workload). @example "inference" */
    readonly name: string;
  };
  readonly [field: string]: unknown;
}

/** What one service becomes: its workload and its disruption budget. */
export interface ServiceManifests {
  readonly service: string;
  /** The service's pinned image reference. */
  readonly image: string;
  readonly workload: Manifest & { readonly kind: "DaemonSet" | "Deployment"; readonly spec: Record<string, unknown> };
  readonly disruptionBudget: Manifest & { readonly spec: Record<string, unknown> };
}

/** Every object of the fleet, in the order they must exist. */
export interface FleetManifests {
  readonly namespace: Manifest;
  readonly runtimeClass?: Manifest;
  /** The pull secret's name when pods pull with credentials (see `pullSecretManifest`). */
  readonly pullSecretName?: string;
  readonly devicePlugin?: Manifest;
  readonly services: readonly ServiceManifests[];
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const SIZE_UNITS: Record<string, string> = { k: "Ki", m: "Mi", g: "Gi" };
const SIZE_FACTORS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Whole seconds (at least 1, rounded up), as probes take them, of a Docker duration such as `1m30s` or `500ms`. */
export function probeSeconds(duration: string): number {
  return Math.max(1, Math.ceil(durationSeconds(duration) - 1e-9));
}

/** A Docker size (`2g`, `512m`, `1.5g`, `1024`) as a Kubernetes quantity (Docker's units are binary). */
export function quantity(size: string): string {
  const match = /^([0-9]+(?:\.[0-9]+)?)([bkmg]?)$/i.exec(size);
  if (!match) throw new Error(`"${size}" is not a size`);
  const value = match[1] ?? "0";
  const unit = (match[2] ?? "").toLowerCase();
  if (!value.includes(".")) return `${value}${SIZE_UNITS[unit] ?? ""}`;
  return String(Math.round(Number(value) * (SIZE_FACTORS[unit || "b"] ?? 1)));
}

/** CPU cores as a Kubernetes quantity: whole cores as `2`, the rest in millicores (`1500m`). */
export function cpuQuantity(cpus: number): string {
  const milli = Math.round(cpus * 1000);
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}

/** The label that selects one service's pods (with `PART_OF`). */
export function selectorLabels(service: string): Record<string, string> {
  return { "app.kubernetes.io/name": service, ...PART_OF };
}

/** The `.dockerconfigjson` document for a registry login, as Kubernetes expects it (not base64). */
export function dockerConfigJson(server: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  return JSON.stringify({ auths: { [server]: { username, password, auth } } });
}

/** The `kubernetes.io/dockerconfigjson` Secret for a registry login. */
export function pullSecretManifest(
  namespace: string,
  registry: RegistryLogin,
): Manifest & { readonly type: string; readonly data: Record<string, string> } {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: PULL_SECRET_NAME, namespace, labels: { ...PART_OF } },
    type: PULL_SECRET_TYPE,
    data: {
      ".dockerconfigjson": Buffer.from(dockerConfigJson(registry.server, registry.username, registry.password)).toString("base64"),
    },
  };
}

/** Why a reference cannot be deployed to Kubernetes, or undefined when it is pinned by digest. */
export function digestProblem(ref: string): string | undefined {
  const parsed = parseImage(ref);
  if (parsed?.digest !== undefined && DIGEST.test(parsed.digest)) return undefined;
  return `"${ref}" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>`;
}

interface Context {
  readonly problems: ConfigProblem[];
  readonly namespace: string;
  readonly rollout: DeploySpec["rollout"];
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly gpu: GpuAccess;
  readonly pullSecrets: { name: string }[];
  readonly awaitRollout: boolean;
}

function probe(exec: string[], periodSeconds: number, timeoutSeconds: number, failureThreshold: number): Probe {
  return { exec: { command: exec }, periodSeconds, timeoutSeconds, failureThreshold };
}

/**
 * Docker's healthcheck as probes: readiness gates rollouts, liveness restarts a hung container,
 * and a startup probe gives the start period (failures in it do not count, as in Docker).
 */
export function probes(healthcheck: ServiceSpec["healthcheck"]): Pick<PodContainer, "startupProbe" | "readinessProbe" | "livenessProbe"> {
  if (!healthcheck || healthcheck.test[0] === "NONE") return {};
  const [kind, ...rest] = healthcheck.test;
  const exec = kind === "CMD-SHELL" ? ["/bin/sh", "-c", rest.join(" ")] : rest;
  const interval = probeSeconds(healthcheck.interval);
  const timeout = probeSeconds(healthcheck.timeout);
  const start = Math.ceil(probeSeconds(healthcheck.startPeriod) / interval);
  return {
    startupProbe: probe(exec, interval, timeout, start + healthcheck.retries),
    readinessProbe: probe(exec, interval, timeout, healthcheck.retries),
    livenessProbe: probe(exec, interval, timeout, healthcheck.retries),
  };
}

/** Docker's security options as a container securityContext (the subset Kubernetes can express). */
function securityContext(svc: ServiceSpec, at: string, ctx: Context): SecurityContext {
  const sc: SecurityContext = {};
  for (const [i, opt] of svc.securityOpt.entries()) {
    const [key, value] = opt.split(/[:=]/, 2) as [string, string | undefined];
    if (key === "no-new-privileges" && (value === undefined || value === "true")) sc.allowPrivilegeEscalation = false;
    else if (key === "no-new-privileges" && value === "false") sc.allowPrivilegeEscalation = true;
    else if (key === "seccomp" && value === "unconfined") sc.seccompProfile = { type: "Unconfined" };
    else if (key === "apparmor" && value === "unconfined") sc.appArmorProfile = { type: "Unconfined" };
    else
      ctx.problems.push({
        path: `${at}.securityOpt[${i}]`,
        message: `"${opt}" has no Kubernetes equivalent; expected no-new-privileges[:true|false], seccomp=unconfined or apparmor=unconfined`,
      });
  }
  if (svc.readOnlyRootFilesystem) sc.readOnlyRootFilesystem = true;
  if (svc.capAdd.length || svc.capDrop.length) {
    sc.capabilities = { ...(svc.capAdd.length ? { add: [...svc.capAdd] } : {}), ...(svc.capDrop.length ? { drop: [...svc.capDrop] } : {}) };
  }
  return sc;
}

/** `user` as numeric IDs: Kubernetes cannot resolve names inside the image. */
function podSecurityContext(svc: ServiceSpec, at: string, ctx: Context): PodSecurityContext {
  if (svc.user === undefined) return {};
  const match = /^([0-9]+)(?::([0-9]+))?$/.exec(svc.user);
  if (!match) {
    ctx.problems.push({
      path: `${at}.user`,
      message: `"${svc.user}" is not numeric; Kubernetes runs containers as numeric IDs: expected UID or UID:GID, e.g. 1000:1000`,
    });
    return {};
  }
  return { runAsUser: Number(match[1]), ...(match[2] !== undefined ? { runAsGroup: Number(match[2]) } : {}) };
}

function volumes(svc: ServiceSpec, at: string, ctx: Context): { volumes: Volume[]; mounts: VolumeMount[] } {
  const vols: Volume[] = [];
  const mounts: VolumeMount[] = [];
  svc.volumes.forEach((v, i) => {
    const name = `volume-${i}`;
    if (v.type === "tmpfs") vols.push({ name, emptyDir: { medium: "Memory" } });
    else if (v.source === undefined) {
      ctx.problems.push({ path: `${at}.volumes[${i}].source`, message: `is missing; expected a host path (bind) or volume name (volume)` });
      return;
    } else if (v.type === "bind") {
      if (!v.source.startsWith("/")) {
        ctx.problems.push({
          path: `${at}.volumes[${i}].source`,
          message: `"${v.source}" is not an absolute path; a bind mount on Kubernetes is a hostPath: expected a node path such as /opt/fleet/models`,
        });
        return;
      }
      vols.push({ name, hostPath: { path: v.source } });
    } else vols.push({ name, hostPath: { path: `${NAMED_VOLUME_ROOT}/${v.source}`, type: "DirectoryOrCreate" } });
    mounts.push({ name, mountPath: v.target, ...(v.readOnly ? { readOnly: true } : {}) });
  });
  if (svc.shmSize !== undefined) {
    vols.push({ name: "shm", emptyDir: { medium: "Memory", sizeLimit: quantity(svc.shmSize) } });
    mounts.push({ name: "shm", mountPath: "/dev/shm" });
  }
  return { volumes: vols, mounts };
}

/** Fields of the spec that Kubernetes cannot honour for a pod: each is an error, never silently dropped. */
function unsupported(svc: ServiceSpec, at: string, ctx: Context): void {
  if (svc.devices.length) {
    ctx.problems.push({
      path: `${at}.devices`,
      message:
        "device passthrough has no pod equivalent without privileged mode or a device plugin; expected [] on the kubernetes target (GPU access comes from runtime: nvidia)",
    });
  }
  if (Object.keys(svc.ulimits).length) {
    ctx.problems.push({
      path: `${at}.ulimits`,
      message: "pods cannot set ulimits (they come from the node's container runtime); expected {} on the kubernetes target",
    });
  }
  if (svc.restart === "no" || svc.restart === "on-failure") {
    ctx.problems.push({
      path: `${at}.restart`,
      message: `"${svc.restart}" cannot be honoured: DaemonSet and Deployment pods always restart; expected always or unless-stopped`,
    });
  }
  if (svc.ipc !== undefined && svc.ipc.startsWith("service:")) {
    ctx.problems.push({
      path: `${at}.ipc`,
      message: `"${svc.ipc}" shares another service's IPC namespace, which pods of separate workloads cannot; expected host, private or shareable`,
    });
  }
}

/** A service that needs the GPU: the nvidia runtime or a GPU request. */
export function isGpuService(svc: ServiceSpec): boolean {
  return svc.runtime === "nvidia" || svc.resources.gpus !== undefined;
}

function resources(svc: ServiceSpec, ctx: Context): PodContainer["resources"] {
  const limits: Record<string, string> = {};
  if (svc.resources.cpus !== undefined) limits["cpu"] = cpuQuantity(svc.resources.cpus);
  if (svc.resources.memory !== undefined) limits["memory"] = quantity(svc.resources.memory);
  // A Jetson has one integrated GPU: "all" is that one.
  if (ctx.gpu.mode === "device-plugin" && isGpuService(svc)) {
    const gpus = svc.resources.gpus;
    limits[NVIDIA_GPU_RESOURCE] = String(typeof gpus === "number" ? gpus : 1);
  }
  // Requests equal limits: a Jetson runs a fixed set of services, so each gets what it is promised.
  return Object.keys(limits).length ? { requests: { ...limits }, limits } : {};
}

function container(svc: ServiceSpec, image: string, mounts: VolumeMount[], at: string, ctx: Context): PodContainer {
  const sc = securityContext(svc, at, ctx);
  const res = resources(svc, ctx);
  // Sorted by name: Pulumi hands structured config back with sorted keys, so input order is not stable.
  const env = Object.entries(svc.environment)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value: String(value) }));
  const ports = svc.ports.map((p) => ({
    containerPort: p.target,
    protocol: p.protocol.toUpperCase(),
    // Host networking listens on the node directly; bridge publishes like `docker run -p` does.
    ...(svc.network === "host" ? {} : p.published !== undefined || p.hostIp !== undefined ? { hostPort: p.published ?? p.target } : {}),
    ...(p.hostIp !== undefined && svc.network !== "host" ? { hostIP: p.hostIp } : {}),
  }));
  return {
    name: svc.name,
    image,
    imagePullPolicy: "IfNotPresent",
    ...(svc.entrypoint ? { command: [...svc.entrypoint] } : {}),
    ...(svc.command ? { args: [...svc.command] } : {}),
    ...(env.length ? { env } : {}),
    ...(ports.length ? { ports } : {}),
    ...(res && Object.keys(res).length ? { resources: res } : {}),
    ...(mounts.length ? { volumeMounts: mounts } : {}),
    ...probes(svc.healthcheck),
    ...(Object.keys(sc).length ? { securityContext: sc } : {}),
  };
}

function podSpec(svc: ServiceSpec, image: string, at: string, ctx: Context): PodSpec {
  const vols = volumes(svc, at, ctx);
  const psc = podSecurityContext(svc, at, ctx);
  return {
    ...(isGpuService(svc) ? { runtimeClassName: NVIDIA_RUNTIME_CLASS } : {}),
    ...(svc.network === "host" ? { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" } : {}),
    ...(svc.ipc === "host" ? { hostIPC: true } : {}),
    ...(Object.keys(ctx.nodeSelector).length ? { nodeSelector: { ...ctx.nodeSelector } } : {}),
    ...(ctx.pullSecrets.length ? { imagePullSecrets: ctx.pullSecrets } : {}),
    ...(Object.keys(psc).length ? { securityContext: psc } : {}),
    containers: [container(svc, image, vols.mounts, at, ctx)],
    ...(vols.volumes.length ? { volumes: vols.volumes } : {}),
  };
}

function serviceImage(svc: ServiceSpec, at: string, images: Readonly<Record<string, string>>, ctx: Context): string | undefined {
  if (svc.image !== undefined) {
    const problem = digestProblem(svc.image);
    if (problem) ctx.problems.push({ path: `${at}.image`, message: problem });
    return problem ? undefined : svc.image;
  }
  const build = svc.build ?? "";
  const ref = images[build];
  if (ref === undefined) {
    const known = Object.keys(images);
    ctx.problems.push({
      path: `${at}.build`,
      message: `image "${build}" has no pinned reference; expected one of the built images: ${known.join(", ") || "(none given)"}`,
    });
    return undefined;
  }
  const problem = digestProblem(ref);
  if (problem) ctx.problems.push({ path: `${at}.build`, message: `image "${build}": ${problem}` });
  return problem ? undefined : ref;
}

/** One service's workload and disruption budget. Problems go to `ctx.problems`. */
function serviceManifests(
  svc: ServiceSpec,
  index: number,
  workload: Workload,
  images: Readonly<Record<string, string>>,
  ctx: Context,
): ServiceManifests | undefined {
  const at = `services[${index}]`;
  unsupported(svc, at, ctx);
  const image = serviceImage(svc, at, images, ctx);
  const pod = podSpec(svc, image ?? "", at, ctx);
  if (image === undefined) return undefined;
  const labels = selectorLabels(svc.name);
  const metadata = { name: svc.name, namespace: ctx.namespace, labels };
  const workloadMetadata = { ...metadata, ...(ctx.awaitRollout ? {} : { annotations: { ...SKIP_AWAIT } }) };
  const template = {
    metadata: { labels, ...(Object.keys(svc.labels).length ? { annotations: { ...svc.labels } } : {}) },
    spec: pod,
  };
  const maxUnavailable = ctx.rollout.maxUnavailable;
  const spec =
    workload.kind === "DaemonSet"
      ? {
          selector: { matchLabels: labels },
          updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable, maxSurge: 0 } },
          template,
        }
      : {
          replicas: workload.replicas,
          selector: { matchLabels: labels },
          // No surge: host ports, host networking and the one GPU per Jetson leave no room for a second pod.
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable, maxSurge: 0 } },
          template,
        };
  return {
    service: svc.name,
    image,
    workload: { apiVersion: "apps/v1", kind: workload.kind, metadata: workloadMetadata, spec },
    disruptionBudget: {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata,
      spec: { maxUnavailable, selector: { matchLabels: labels } },
    },
  };
}

function devicePluginManifest(image: string, ctx: Context): Manifest {
  const labels = selectorLabels(DEVICE_PLUGIN_NAME);
  const pluginDir = "/var/lib/kubelet/device-plugins";
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: {
      name: DEVICE_PLUGIN_NAME,
      namespace: ctx.namespace,
      labels,
      ...(ctx.awaitRollout ? {} : { annotations: { ...SKIP_AWAIT } }),
    },
    spec: {
      selector: { matchLabels: labels },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: ctx.rollout.maxUnavailable } },
      template: {
        metadata: { labels },
        spec: {
          runtimeClassName: NVIDIA_RUNTIME_CLASS,
          ...(Object.keys(ctx.nodeSelector).length ? { nodeSelector: { ...ctx.nodeSelector } } : {}),
          ...(ctx.pullSecrets.length ? { imagePullSecrets: ctx.pullSecrets } : {}),
          tolerations: [{ key: NVIDIA_GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }],
          containers: [
            {
              name: DEVICE_PLUGIN_NAME,
              image,
              imagePullPolicy: "IfNotPresent",
              // Jetsons have no NVML: the plugin finds the integrated GPU through the L4T (Tegra) files.
              env: [{ name: "DEVICE_DISCOVERY_STRATEGY", value: "tegra" }],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "device-plugins", mountPath: pluginDir }],
            },
          ],
          volumes: [{ name: "device-plugins", hostPath: { path: pluginDir } }],
        },
      },
    },
  };
}

/**
 * Every Kubernetes object of the fleet, as plain objects. Throws a `StackConfigError` listing
 * every problem (stack file, config key, what is expected) when a service cannot be deployed as
 * given, e.g. an image not pinned by digest; nothing is rendered then.
 */
export function fleetManifests(options: FleetManifestOptions): FleetManifests {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const withLogin = options.registry?.username !== undefined;
  const ctx: Context = {
    problems: [],
    namespace,
    rollout: options.rollout ?? { maxUnavailable: 1 },
    nodeSelector: options.nodeSelector ?? DEFAULT_NODE_SELECTOR,
    gpu: options.gpu ?? { mode: "runtime-class" },
    pullSecrets: withLogin ? [{ name: PULL_SECRET_NAME }] : [],
    awaitRollout: options.awaitRollout ?? true,
  };
  const names = new Set(options.services.map((s) => s.name));
  for (const name of Object.keys(options.workloads ?? {})) {
    if (!names.has(name)) {
      ctx.problems.push({
        path: `deploy.workloads.${name}`,
        message: `service "${name}" is not defined; expected one of: ${[...names].join(", ") || "(no services)"}`,
      });
    }
  }
  for (const [name, w] of Object.entries(options.workloads ?? {})) {
    if (w.kind === "Deployment" && (!Number.isInteger(w.replicas) || w.replicas < 1)) {
      ctx.problems.push({ path: `deploy.workloads.${name}.replicas`, message: `got ${w.replicas}; expected a whole number of at least 1` });
    }
  }
  if (ctx.gpu.mode === "device-plugin") {
    const problem = digestProblem(ctx.gpu.image);
    if (problem) ctx.problems.push({ path: "deploy.gpu.image", message: problem });
  }
  const services = options.services.flatMap((svc, i) => {
    const m = serviceManifests(svc, i, options.workloads?.[svc.name] ?? { kind: "DaemonSet" }, options.images ?? {}, ctx);
    return m ? [m] : [];
  });
  if (ctx.problems.length) throw new StackConfigError(options.source, ctx.problems);

  const needsRuntimeClass = (options.runtimeClass ?? true) && (ctx.gpu.mode === "device-plugin" || options.services.some(isGpuService));
  return {
    namespace: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: { ...PART_OF } } },
    ...(needsRuntimeClass
      ? {
          runtimeClass: {
            apiVersion: "node.k8s.io/v1",
            kind: "RuntimeClass",
            metadata: { name: NVIDIA_RUNTIME_CLASS, labels: { ...PART_OF } },
            handler: NVIDIA_RUNTIME_CLASS,
          },
        }
      : {}),
    ...(withLogin ? { pullSecretName: PULL_SECRET_NAME } : {}),
    ...(ctx.gpu.mode === "device-plugin" ? { devicePlugin: devicePluginManifest(ctx.gpu.image, ctx) } : {}),
    services,
  };
}

/** The fleet's objects in apply order; the pull secret when a login is given. */
export function manifestList(fleet: FleetManifests, login?: RegistryLogin): Manifest[] {
  return [
    fleet.namespace,
    ...(fleet.runtimeClass ? [fleet.runtimeClass] : []),
    ...(login && fleet.pullSecretName ? [pullSecretManifest(fleet.namespace.metadata.name, login)] : []),
    ...(fleet.devicePlugin ? [fleet.devicePlugin] : []),
    ...fleet.services.flatMap((s) => [s.workload, s.disruptionBudget]),
  ];
}

/** The fleet as one multi-document YAML stream, e.g. for a GitOps repository or `kubectl apply -f -`. */
export function renderYaml(fleet: FleetManifests, login?: RegistryLogin): string {
  return manifestList(fleet, login)
    .map((m) => stringify(m, { lineWidth: 0, aliasDuplicateObjects: false }))
    .join("---\n");
}
