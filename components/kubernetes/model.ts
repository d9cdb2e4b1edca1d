// The Kubernetes fleet target's vocabulary: the names and labels its objects carry, the shapes of
// the options `fleetManifests` takes and of the plain objects it returns. No logic beyond labels.
import type * as k8s from "@pulumi/kubernetes";
import { parseDuration } from "../config/formats.ts";
import type { StackConfigSource } from "../config/load.ts";
import type { ModelSpec } from "../config/models.ts";
import type { DeploySpec, ServiceSpec } from "../config/schema.ts";

type ObjectMeta = k8s.types.input.meta.v1.ObjectMeta;
/** A pod template's container, as `@pulumi/kubernetes` types it. */
export type PodContainer = k8s.types.input.core.v1.Container;

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
/** The type of the Secret holding a service's secret environment values. */
export const ENVIRONMENT_SECRET_TYPE = "Opaque";
/** The device plugin's DaemonSet name. */
export const DEVICE_PLUGIN_NAME = "nvidia-device-plugin";
/** Where Docker named volumes live on each node: Kubernetes has no per-node named volume. */
export const NAMED_VOLUME_ROOT = "/var/lib/jetson-fleet/volumes";
/** Pulumi's annotation that skips waiting for a workload's rollout. */
export const SKIP_AWAIT = { "pulumi.com/skipAwait": "true" } as const;
/** Pulumi's annotation bounding the wait for a workload's rollout, in seconds. */
export const TIMEOUT_SECONDS = "pulumi.com/timeoutSeconds";
/** How long `up` waits for a rollout by default: the provider's own default. */
export const DEFAULT_ROLLOUT_TIMEOUT = "10m";

/** Whole seconds of a rollout timeout (a duration), at least 1. */
export function rolloutTimeoutSeconds(timeout: string = DEFAULT_ROLLOUT_TIMEOUT): number {
  const seconds = parseDuration(timeout);
  if (seconds === undefined) throw new Error(`rollout timeout "${timeout}" is not a duration`);
  return Math.max(1, Math.ceil(seconds));
}
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
  /**
   * Pinned references of services' `image`s that name a tag, by service name: the tag resolved to
   * its digest by the caller (the program resolves them as the per-host targets do). A service
   * not listed here must give its `image` by digest.
   * @default {}
   */
  readonly serviceImages?: Readonly<Record<string, string>>;
  /**
   * Environment keys whose values are secrets, by service name: those variables come from the
   * service's Secret (`valueFrom.secretKeyRef`, see `environmentSecretManifest`), never as values.
   * @default {}
   */
  readonly secretEnvironment?: Readonly<Record<string, readonly string[]>>;
  /** @default "jetson-fleet" */
  readonly namespace?: string;
  /** @default { maxUnavailable: 1 } */
  readonly rollout?: DeploySpec["rollout"];
  /**
   * Registry to pull from; with a username, pods get `imagePullSecrets` naming the pull secret.
   * Models are fetched from it too, with the same login.
   */
  readonly registry?: FleetRegistry;
  /**
   * The stack's models (`models`, validated with defaults applied): each service's `models` are
   * built into engines on the node by init containers before the service starts (engines.ts).
   * @default [] (no service may then have models)
   */
  readonly models?: readonly ModelSpec[];
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
  /** How long `up` waits for one workload's rollout, a duration. @default "10m" (the provider's own) */
  readonly rolloutTimeout?: string;
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

/** The Secret a service's secret environment variables come from: its name and keys, never the values. */
export interface EnvironmentSecretRef {
  /**
   * The Secret's name in the fleet's namespace, as rendered YAML reads it (`KubernetesFleet`
   * applies the Secret under a Pulumi-made name and points the workload at that).
   * @example "inference-environment"
   */
  readonly name: string;
  /** The environment keys it holds, sorted. @example ["API_TOKEN"] */
  readonly keys: readonly string[];
}

/** What one service becomes: its workload and its disruption budget. */
export interface ServiceManifests {
  readonly service: string;
  /** The service's pinned image reference. */
  readonly image: string;
  readonly workload: Manifest & { readonly kind: "DaemonSet" | "Deployment"; readonly spec: Record<string, unknown> };
  readonly disruptionBudget: Manifest & { readonly spec: Record<string, unknown> };
  /** The Secret the workload reads its secret environment from, when the service has secret keys. */
  readonly environmentSecret?: EnvironmentSecretRef;
}

/** Every object of the fleet, in the order they must exist. */
export interface FleetManifests {
  readonly namespace: Manifest;
  readonly runtimeClass?: Manifest;
  /** The pull secret's name when pods pull with credentials (see `pullSecretManifest`). */
  readonly pullSecretName?: string;
  readonly devicePlugin?: Manifest;
  /** The ConfigMap of the engine build's script, when a service has models. */
  readonly engineScript?: Manifest;
  readonly services: readonly ServiceManifests[];
}

/** The label that selects one service's pods (with `PART_OF`). */
export function selectorLabels(service: string): Record<string, string> {
  return { "app.kubernetes.io/name": service, ...PART_OF };
}

/** A service that needs the GPU: the nvidia runtime or a GPU request. */
export function isGpuService(svc: ServiceSpec): boolean {
  return svc.runtime === "nvidia" || svc.resources.gpus !== undefined;
}
