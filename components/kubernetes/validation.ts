// What a fleet can get wrong, checked before any object exists. Problems in the stack config
// (services, images) are collected as config key paths for a `StackConfigError`; problems in the
// arguments a program passes (workloads, gpu, the cluster) are a `KubernetesFleetArgsError` naming
// the argument, since no stack config key sets them.
import { posix } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { containerPath } from "../config/docker.ts";
import { isPinnedByDigest, parseDuration } from "../config/formats.ts";
import type { ServiceSpec } from "../config/schema.ts";
import { ENGINE_ROOT, modelLocation } from "../models/engine.ts";
import type { RenderContext } from "./context.ts";
import { NODE_FACTS_CONTAINER, engineContainerName, isLoopbackRegistry } from "./engines.ts";
import type { FleetManifestOptions } from "./model.ts";

/** Errors a user fixes in the fleet's arguments (`KubernetesFleet` or `fleetManifests`), in the program. */
export class KubernetesFleetArgsError extends pulumi.RunError {
  /** Each problem as `argument: what is wrong; what is expected`. */
  readonly lines: readonly string[];
  constructor(lines: readonly string[]) {
    const count = lines.length === 1 ? "1 problem" : `${lines.length} problems`;
    super(`invalid KubernetesFleet arguments (${count}); nothing was changed:\n${lines.join("\n")}`);
    this.name = "KubernetesFleetArgsError";
    this.lines = lines;
  }
}

/** Why a reference cannot be deployed to Kubernetes, or undefined when it is pinned by digest. */
export function digestProblem(ref: string): string | undefined {
  if (isPinnedByDigest(ref)) return undefined;
  return `"${ref}" is not pinned by digest; the kubernetes target deploys images by digest only: expected repository[:tag]@sha256:<64 hex digits>`;
}

/**
 * Problems in the arguments no stack config key sets (`workloads`, `gpu`), each naming the
 * argument; empty when there are none.
 */
export function argumentProblems(
  options: Pick<FleetManifestOptions, "services" | "workloads" | "gpu" | "models" | "registry" | "rolloutTimeout">,
): string[] {
  const lines: string[] = [];
  if (options.rolloutTimeout !== undefined && parseDuration(options.rolloutTimeout) === undefined) {
    lines.push(`rolloutTimeout: ${JSON.stringify(options.rolloutTimeout)} is not a duration; expected e.g. 10m or 1h30m`);
  }
  const names = options.services.map((s) => s.name);
  const withModels = options.services.filter((s) => s.models.length > 0).map((s) => s.name);
  if (withModels.length && options.models === undefined) {
    lines.push(
      `models: is not set, but services ${withModels.join(", ")} run models (services[].models); expected the stack's models (config.models)`,
    );
  }
  if (withModels.length && options.registry === undefined) {
    lines.push(
      `registry: is not set, but services ${withModels.join(", ")} run models, which nodes fetch from the stack's registry; expected { server } (registry.server)`,
    );
  }
  for (const [name, w] of Object.entries(options.workloads ?? {})) {
    if (!names.includes(name)) {
      lines.push(`workloads.${name}: service "${name}" is not defined; expected one of: ${names.join(", ") || "(no services)"}`);
    }
    if (w.kind === "Deployment" && (!Number.isInteger(w.replicas) || w.replicas < 1)) {
      lines.push(`workloads.${name}.replicas: got ${w.replicas}; expected a whole number of at least 1`);
    }
  }
  if (options.gpu?.mode === "device-plugin") {
    const problem = digestProblem(options.gpu.image);
    if (problem) lines.push(`gpu.image: ${problem}`);
  }
  return lines;
}

/** Fields of the spec that Kubernetes cannot honour for a pod: each is an error, never silently dropped. */
export function unsupported(svc: ServiceSpec, at: string, ctx: RenderContext): void {
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

/** The pinned image a service runs, or undefined (with a problem recorded) when there is none. */
export function serviceImage(
  svc: ServiceSpec,
  at: string,
  images: Readonly<Record<string, string>>,
  ctx: RenderContext,
): string | undefined {
  if (svc.image !== undefined) {
    const ref = ctx.serviceImages[svc.name] ?? svc.image;
    const problem = digestProblem(ref);
    if (problem) ctx.problems.push({ path: `${at}.image`, message: problem });
    return problem ? undefined : ref;
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

/**
 * Directories an engine's directory may not be on Kubernetes: there it becomes an emptyDir of
 * links, which hides what the image has in it (exactly these), or cannot be mounted (these and below).
 */
const SYSTEM_DIRECTORIES = [
  "/",
  "/bin",
  "/boot",
  "/etc",
  "/lib",
  "/lib64",
  "/opt",
  "/run",
  "/sbin",
  "/usr",
  "/usr/bin",
  "/usr/lib",
  "/usr/local",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/share",
  "/var",
  "/var/lib",
];
const SYSTEM_TREES = ["/dev", "/proc", "/sys"];
const atOrUnder = (path: string, dir: string) => path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);

/**
 * What a service's models cannot be on Kubernetes (the stack config's own rules, such as a model
 * path inside another mount, are the config loader's): a model the fleet was not given, an init
 * container name that does not fit or collides, an engine directory that would hide the image's
 * own files or nest in another engine's path, mounts where the service sees its engines, and a
 * loopback registry a pod off the host network cannot reach.
 */
export function modelProblems(svc: ServiceSpec, at: string, ctx: RenderContext): void {
  if (svc.models.length === 0) return;
  const push = (path: string, message: string) => ctx.problems.push({ path, message });
  const engines = posix.join(ENGINE_ROOT, ctx.namespace, svc.name);
  const known = [...ctx.models.keys()];
  const containers = [NODE_FACTS_CONTAINER, ...svc.models.map((m) => engineContainerName(m.name))];
  if (containers.includes(svc.name)) {
    push(
      `${at}.name`,
      `"${svc.name}" is also the name of one of its pod's init containers (${containers.join(", ")}) on the kubernetes target; expected another service name`,
    );
  }
  const paths = svc.models.map((m) => containerPath(m.path));
  svc.models.forEach((ref, j) => {
    const model = ctx.models.get(ref.name);
    if (!model) {
      push(
        `${at}.models[${j}].name`,
        `model "${ref.name}" is not defined under models; expected one of: ${known.join(", ") || "(no models)"}`,
      );
    }
    const name = engineContainerName(ref.name);
    if (name.length > 63) {
      push(
        `${at}.models[${j}].name`,
        `"${name}", the name of the init container that builds its engine, is longer than 63 characters; expected a model name of at most 56 characters on the kubernetes target`,
      );
    }
    const path = paths[j] ?? ref.path;
    const dir = posix.dirname(path);
    if (SYSTEM_DIRECTORIES.includes(dir) || SYSTEM_TREES.some((t) => atOrUnder(dir, t))) {
      push(
        `${at}.models[${j}].path`,
        `"${ref.path}" is in ${dir}, which on the kubernetes target becomes a directory of the service's engines only (an emptyDir of links) and would hide the image's ${dir}; expected a directory of its own, e.g. /models/model.engine`,
      );
    } else if (atOrUnder(dir, engines) || atOrUnder(engines, dir)) {
      push(
        `${at}.models[${j}].path`,
        `"${ref.path}" is in ${dir}, at, inside or around ${engines}, where the service's container sees its engines on the kubernetes target; expected another directory, e.g. /models/model.engine`,
      );
    }
    paths.forEach((other, k) => {
      if (k === j) return;
      if (atOrUnder(posix.dirname(other), path) || atOrUnder(posix.dirname(other), `${path}.json`)) {
        push(
          `${at}.models[${j}].path`,
          `"${ref.path}" (or its record, ${ref.path}.json) is a directory of ${at}.models[${k}].path (${svc.models[k]?.path ?? other}); expected engine paths that are not each other's directories`,
        );
      }
    });
    if (model && ctx.registry !== undefined && svc.network !== "host") {
      const { registry } = modelLocation(model, ctx.registry.server);
      if (isLoopbackRegistry(registry)) {
        push(
          `${at}.network`,
          `"${svc.network ?? "bridge"}": the node fetches model "${model.name}" from ${registry}, the node's loopback, which a pod reaches only on the host network on the kubernetes target; expected network "host", or a registry address pods can reach`,
        );
      }
    }
  });
  svc.volumes.forEach((v, k) => {
    if (atOrUnder(containerPath(v.target), engines)) {
      push(
        `${at}.volumes[${k}].target`,
        `"${v.target}" is at or inside ${engines}, where the service's container sees its engines on the kubernetes target; expected another target`,
      );
    }
  });
}
