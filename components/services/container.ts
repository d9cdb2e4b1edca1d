// The pure mapping from a service to `@pulumi/docker` Container inputs, field by field, so the
// containers deploy mode runs what the compose renderer describes.
import { createHash } from "node:crypto";
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import { engineVolumes, type EngineMount } from "../models/engine.ts";
import { durationSeconds, healthTimeoutSeconds, parseDevice, serviceEnvironment, sizeMegabytes } from "./spec.ts";

// The Docker provider reads a container back in its own spellings; inputs written the same way
// make a second `up` find nothing to change.

/** A duration as Go prints it (`time.Duration.String()`), as the provider reads health checks back: `1m` → `1m0s`. */
export function goDuration(duration: string): string {
  const ns = Math.round(durationSeconds(duration) * 1e9);
  if (ns === 0) return "0s";
  const fraction = (value: number, digits: number) => {
    const whole = Math.floor(value / 10 ** digits);
    const rest = String(value % 10 ** digits)
      .padStart(digits, "0")
      .replace(/0+$/, "");
    return rest ? `${whole}.${rest}` : String(whole);
  };
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${fraction(ns, 3)}µs`;
  if (ns < 1e9) return `${fraction(ns, 6)}ms`;
  const h = Math.floor(ns / 3.6e12);
  const m = Math.floor((ns % 3.6e12) / 6e10);
  const s = `${fraction(ns % 6e10, 9)}s`;
  return h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s;
}

/** The label naming the stack's compose project on a containers-mode container. */
export const PROJECT_LABEL = "jetson-fleet.project";

/** CPUs as the provider reads them back: `1` → `1.0`, `1.5` → `1.5`. */
export function dockerCpus(cpus: number): string {
  return Number.isInteger(cpus) ? cpus.toFixed(1) : String(cpus);
}

export interface ContainerArgsOptions {
  /** The container's name on the host. @default the service name */
  readonly name?: string;
  /** The digest-pinned image (`repo@sha256:…`), or an output of the pull that yields it. */
  readonly image: pulumi.Input<string>;
  /** Environment keys whose values are secrets: the whole `envs` list is then a secret. @default [] */
  readonly secretEnvironment?: readonly string[];
  /**
   * The stack's compose project name, as the label `jetson-fleet.project`: a stack switching to
   * the compose mode finds its containers by it and removes them before compose starts.
   * @default none (no label)
   * @example "jetson-fleet-prod"
   */
  readonly project?: string;
  /**
   * The user-defined network a `bridge` service joins (as compose puts a project's services on
   * the project's own network): other services reach it by its container name.
   * @default none (Docker's default bridge, no name resolution)
   * @example "jetson-fleet-prod_containers"
   */
  readonly network?: pulumi.Input<string>;
  /**
   * The service is updated blue-green behind the host's proxy: the proxy holds its host ports, so
   * the container publishes none (two versions run side by side during a switch); the create does
   * not wait for health (the switch step gates on it, and removes a new version that fails it);
   * and on `network` the service's name is a network alias, so other services still reach it by
   * that name whatever its container is called (both versions answer to it during a switch, as
   * compose's do).
   * @default false
   * @example true
   */
  readonly behindProxy?: boolean;
  /**
   * The service's engines, mounted read-only after its own volumes (`HostModels.engines`).
   * @default none
   */
  readonly engines?: pulumi.Input<readonly EngineMount[]>;
}

/** The provider's mounts of a service's volumes. */
function dockerMounts(volumes: ServiceSpec["volumes"]): docker.types.input.ContainerMount[] {
  return volumes.map((v) =>
    v.type === "tmpfs"
      ? { type: "tmpfs", target: v.target }
      : { type: v.type, source: v.source ?? "", target: v.target, readOnly: v.readOnly },
  );
}

/**
 * `docker.Container` inputs for one service: runtime, network and ports, mounts, devices, shm,
 * IPC, ulimits, health check (the create waits for it), restart, logging, CPU/memory limits, GPU
 * requests, labels, user, read-only root, capabilities, security options and environment.
 */
export function containerArgs(service: ServiceSpec, options: ContainerArgsOptions): docker.ContainerArgs {
  const s = service;
  const environment = serviceEnvironment(s, options.secretEnvironment);
  // Sorted as text, the order the provider reads `envs` back in.
  const envs = environment.map((e) => `${e.name}=${e.value}`).sort();
  const secret = environment.some((e) => e.secret);
  const args: docker.ContainerArgs = {
    name: options.name ?? s.name,
    image: options.image,
    ...(s.entrypoint ? { entrypoints: [...s.entrypoint] } : {}),
    ...(s.command ? { command: [...s.command] } : {}),
    envs: secret ? pulumi.secret(envs) : envs,
    runtime: s.runtime,
    ...networking(s, options),
    ports:
      s.network === "host" || options.behindProxy === true
        ? []
        : s.ports.map((p) => ({ internal: p.target, external: p.published ?? p.target, protocol: p.protocol, ip: p.hostIp ?? "0.0.0.0" })),
    mounts: options.engines
      ? pulumi.output(options.engines).apply((e) => dockerMounts([...s.volumes, ...engineVolumes(e)]))
      : dockerMounts(s.volumes),
    devices: s.devices.map(parseDevice),
    ...(s.shmSize ? { shmSize: sizeMegabytes(s.shmSize) } : {}),
    // Compose's `service:<name>` is the Docker API's `container:<name>`: the service's container here.
    ...(s.ipc ? { ipcMode: s.ipc.startsWith("service:") ? `container:${s.ipc.slice("service:".length)}` : s.ipc } : {}),
    ulimits: Object.entries(s.ulimits).map(([name, v]) => (typeof v === "number" ? { name, soft: v, hard: v } : { name, ...v })),
    ...(s.healthcheck
      ? {
          healthcheck: {
            tests: [...s.healthcheck.test],
            interval: goDuration(s.healthcheck.interval),
            timeout: goDuration(s.healthcheck.timeout),
            retries: s.healthcheck.retries,
            startPeriod: goDuration(s.healthcheck.startPeriod),
          },
          // The create (and so the next host batch) waits until the container is healthy; behind
          // the proxy the switch step waits instead, and can remove a new version that fails.
          ...(options.behindProxy === true ? {} : { wait: true, waitTimeout: healthTimeoutSeconds([s]) }),
        }
      : {}),
    restart: s.restart,
    logDriver: s.logging.driver,
    logOpts: { ...s.logging.options },
    ...(s.resources.cpus !== undefined ? { cpus: dockerCpus(s.resources.cpus) } : {}),
    // Memory plus swap: twice the memory, what Docker gives a container with only a memory limit
    // (as the compose mode's containers get), said explicitly since the provider reads it back.
    ...(s.resources.memory !== undefined
      ? { memory: sizeMegabytes(s.resources.memory), memorySwap: 2 * sizeMegabytes(s.resources.memory) }
      : {}),
    ...(s.resources.gpus !== undefined
      ? { deviceRequests: [{ driver: "nvidia", count: s.resources.gpus === "all" ? -1 : s.resources.gpus, capabilities: ["gpu"] }] }
      : {}),
    labels: [
      ...Object.entries(s.labels).map(([label, value]) => ({ label, value })),
      ...(options.project !== undefined ? [{ label: PROJECT_LABEL, value: options.project }] : []),
    ],
    ...(s.user ? { user: s.user } : {}),
    readOnly: s.readOnlyRootFilesystem,
    // Left out when empty: the provider reads empty lists back as no capabilities block, a replace.
    ...(s.capAdd.length > 0 || s.capDrop.length > 0 ? { capabilities: { adds: [...s.capAdd], drops: [...s.capDrop] } } : {}),
    securityOpts: [...s.securityOpt],
    mustRun: true,
  };
  return args;
}

/**
 * `networkMode`, and behind the proxy `networksAdvanced`: a network alias needs the provider's
 * `networksAdvanced`, which it joins after creating the container on `bridge` (and leaving it);
 * `networkMode` then stays `bridge`, which is what the provider reads back.
 */
function networking(s: ServiceSpec, options: ContainerArgsOptions): Pick<docker.ContainerArgs, "networkMode" | "networksAdvanced"> {
  if (s.network !== "bridge" || options.network === undefined) return { networkMode: s.network };
  if (options.behindProxy !== true) return { networkMode: options.network };
  return { networkMode: "bridge", networksAdvanced: [{ name: options.network, aliases: [s.name] }] };
}

/** Hex digits of the sha256 of a blue-green container's inputs (`containerInputsHash`). */
export const CONTAINER_HASH_LENGTH = 12;

/**
 * The hash of a container's resolved inputs but its name (image digest, environment, mounts,
 * health check, network, ...), as JSON in `containerArgs`' key order: a blue-green container's
 * generation is drawn anew whenever it changes (`CONTAINER_GENERATION_COMMAND`).
 */
export function containerInputsHash(args: docker.ContainerArgs): pulumi.Output<string> {
  // Without the name (JSON leaves an undefined key out): the name follows from the generation.
  return pulumi
    .output({ ...args, name: undefined })
    .apply((resolved) => createHash("sha256").update(JSON.stringify(resolved)).digest("hex").slice(0, CONTAINER_HASH_LENGTH));
}

/**
 * What a blue-green container's `-generation` step runs on the machine running Pulumi: 12 random
 * hex digits, its name's suffix (`<service>-<generation>`). Random, not a hash of the inputs: a
 * release rolled back to the one before must be a container of another name too, since that one
 * still runs (and serves) until the switch.
 */
export const CONTAINER_GENERATION_COMMAND = "od -An -N6 -tx1 /dev/urandom | tr -d ' \\n'";

/**
 * The name of a stack's proxy container on a host (`<project>-proxy`): the proxy's own, and
 * what the switch steps reload.
 * @example proxyContainerName("jetson-fleet-prod") // "jetson-fleet-prod-proxy"
 */
export function proxyContainerName(project: string): string {
  return `${project}-proxy`;
}
