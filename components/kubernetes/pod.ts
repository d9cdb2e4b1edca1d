// A service as a pod template: its container (image, command, environment, ports, resources,
// mounts, probes, security context) and the pod around it (runtime class, host namespaces, node
// selector, pull secrets, volumes). Problems a pod cannot express go to the context.
import type * as k8s from "@pulumi/kubernetes";
import type { ServiceSpec } from "../config/schema.ts";
import { serviceEnvironment } from "../services/spec.ts";
import type { RenderContext } from "./context.ts";
import { enginePodParts } from "./engines.ts";
import { NAMED_VOLUME_ROOT, NVIDIA_GPU_RESOURCE, NVIDIA_RUNTIME_CLASS, type PodContainer, isGpuService } from "./model.ts";
import { environmentSecretName } from "./secrets.ts";
import { cpuQuantity, probeSeconds, quantity } from "./units.ts";

type PodSpec = k8s.types.input.core.v1.PodSpec;
type Probe = k8s.types.input.core.v1.Probe;
type Volume = k8s.types.input.core.v1.Volume;
type VolumeMount = k8s.types.input.core.v1.VolumeMount;
type SecurityContext = k8s.types.input.core.v1.SecurityContext;
type PodSecurityContext = k8s.types.input.core.v1.PodSecurityContext;
type EnvVar = k8s.types.input.core.v1.EnvVar;

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

/**
 * A service's environment as a container's `env` (the one rendering, `serviceEnvironment`): plain
 * variables as values, secret ones from the service's Secret (`environmentSecretManifest`).
 */
export function containerEnvironment(svc: ServiceSpec, secretKeys: readonly string[] = []): EnvVar[] {
  return serviceEnvironment(svc, secretKeys).map((e) =>
    e.secret
      ? { name: e.name, valueFrom: { secretKeyRef: { name: environmentSecretName(svc.name), key: e.name } } }
      : { name: e.name, value: e.value },
  );
}

/** Docker's security options as a container securityContext (the subset Kubernetes can express). */
function securityContext(svc: ServiceSpec, at: string, ctx: RenderContext): SecurityContext {
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
function podSecurityContext(svc: ServiceSpec, at: string, ctx: RenderContext): PodSecurityContext {
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

function volumes(svc: ServiceSpec, at: string, ctx: RenderContext): { volumes: Volume[]; mounts: VolumeMount[] } {
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

function resources(svc: ServiceSpec, ctx: RenderContext): PodContainer["resources"] {
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

function container(
  svc: ServiceSpec,
  image: string,
  mounts: VolumeMount[],
  res: PodContainer["resources"],
  env: EnvVar[],
  at: string,
  ctx: RenderContext,
): PodContainer {
  const sc = securityContext(svc, at, ctx);
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
    // A container that exits with no message of its own reports its last log lines: a crash's
    // reason reaches `kubectl describe pod` and the warnings of Pulumi's rollout wait.
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
}

/**
 * The pod template's spec for a service running `image`, with the init containers that build its
 * models' engines on the node first (engines.ts). Problems go to `ctx.problems`.
 */
export function podSpec(svc: ServiceSpec, image: string, at: string, ctx: RenderContext): PodSpec {
  const vols = volumes(svc, at, ctx);
  const psc = podSecurityContext(svc, at, ctx);
  const res = resources(svc, ctx);
  const env = containerEnvironment(svc, ctx.secretEnvironment[svc.name]);
  const engines = enginePodParts(svc, image, res, env, ctx);
  const allVolumes = [...vols.volumes, ...engines.volumes];
  return {
    ...(isGpuService(svc) ? { runtimeClassName: NVIDIA_RUNTIME_CLASS } : {}),
    ...(svc.network === "host" ? { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" } : {}),
    ...(svc.ipc === "host" ? { hostIPC: true } : {}),
    ...(Object.keys(ctx.nodeSelector).length ? { nodeSelector: { ...ctx.nodeSelector } } : {}),
    ...(ctx.pullSecrets.length ? { imagePullSecrets: ctx.pullSecrets } : {}),
    ...(Object.keys(psc).length ? { securityContext: psc } : {}),
    ...(engines.initContainers.length ? { initContainers: engines.initContainers } : {}),
    containers: [container(svc, image, [...vols.mounts, ...engines.mounts], res, env, at, ctx)],
    ...(allVolumes.length ? { volumes: allVolumes } : {}),
  };
}
