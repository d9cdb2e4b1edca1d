// The pure mapping from a service to `@pulumi/docker` Container inputs, field by field, so the
// containers deploy mode runs what the compose renderer describes.
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import { healthTimeoutSeconds, parseDevice, sizeMegabytes } from "./spec.ts";

export interface ContainerArgsOptions {
  /** The container's name on the host. @default the service name */
  readonly name?: string;
  /** The digest-pinned image (`repo@sha256:…`), or an output of the pull that yields it. */
  readonly image: pulumi.Input<string>;
  /** Environment keys whose values are secrets: the whole `envs` list is then a secret. @default [] */
  readonly secretEnvironment?: readonly string[];
}

/**
 * `docker.Container` inputs for one service: runtime, network and ports, mounts, devices, shm,
 * IPC, ulimits, health check (the create waits for it), restart, logging, CPU/memory limits, GPU
 * requests, labels, user, read-only root, capabilities, security options and environment.
 */
export function containerArgs(service: ServiceSpec, options: ContainerArgsOptions): docker.ContainerArgs {
  const s = service;
  const envs = Object.entries(s.environment)
    .map(([k, v]) => `${k}=${String(v)}`)
    .sort();
  const secret = (options.secretEnvironment ?? []).some((k) => k in s.environment);
  const args: docker.ContainerArgs = {
    name: options.name ?? s.name,
    image: options.image,
    ...(s.entrypoint ? { entrypoints: [...s.entrypoint] } : {}),
    ...(s.command ? { command: [...s.command] } : {}),
    envs: secret ? pulumi.secret(envs) : envs,
    runtime: s.runtime,
    networkMode: s.network,
    ports:
      s.network === "host"
        ? []
        : s.ports.map((p) => ({ internal: p.target, external: p.published ?? p.target, protocol: p.protocol, ip: p.hostIp ?? "0.0.0.0" })),
    mounts: s.volumes.map((v) =>
      v.type === "tmpfs"
        ? { type: "tmpfs", target: v.target }
        : { type: v.type, source: v.source ?? "", target: v.target, readOnly: v.readOnly },
    ),
    devices: s.devices.map(parseDevice),
    ...(s.shmSize ? { shmSize: sizeMegabytes(s.shmSize) } : {}),
    ...(s.ipc ? { ipcMode: s.ipc } : {}),
    ulimits: Object.entries(s.ulimits).map(([name, v]) => (typeof v === "number" ? { name, soft: v, hard: v } : { name, ...v })),
    ...(s.healthcheck
      ? {
          healthcheck: {
            tests: [...s.healthcheck.test],
            interval: s.healthcheck.interval,
            timeout: s.healthcheck.timeout,
            retries: s.healthcheck.retries,
            startPeriod: s.healthcheck.startPeriod,
          },
          // The create (and so the next host batch) waits until the container is healthy.
          wait: true,
          waitTimeout: healthTimeoutSeconds([s]),
        }
      : {}),
    restart: s.restart,
    logDriver: s.logging.driver,
    logOpts: { ...s.logging.options },
    ...(s.resources.cpus !== undefined ? { cpus: String(s.resources.cpus) } : {}),
    ...(s.resources.memory !== undefined ? { memory: sizeMegabytes(s.resources.memory) } : {}),
    ...(s.resources.gpus !== undefined
      ? { deviceRequests: [{ driver: "nvidia", count: s.resources.gpus === "all" ? -1 : s.resources.gpus, capabilities: ["gpu"] }] }
      : {}),
    labels: Object.entries(s.labels).map(([label, value]) => ({ label, value })),
    ...(s.user ? { user: s.user } : {}),
    readOnly: s.readOnlyRootFilesystem,
    capabilities: { adds: [...s.capAdd], drops: [...s.capDrop] },
    securityOpts: [...s.securityOpt],
    mustRun: true,
  };
  return args;
}
