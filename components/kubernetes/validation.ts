// What a fleet can get wrong, checked before any object exists. Problems in the stack config
// (services, images) are collected as config key paths for a `StackConfigError`; problems in the
// arguments a program passes (workloads, gpu, the cluster) are a `KubernetesFleetArgsError` naming
// the argument, since no stack config key sets them.
import * as pulumi from "@pulumi/pulumi";
import { isPinnedByDigest } from "../config/formats.ts";
import type { ServiceSpec } from "../config/schema.ts";
import type { RenderContext } from "./context.ts";
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
export function argumentProblems(options: Pick<FleetManifestOptions, "services" | "workloads" | "gpu">): string[] {
  const lines: string[] = [];
  const names = options.services.map((s) => s.name);
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
