// What both per-host deploy modes (compose projects, Pulumi-managed containers) take: the same
// hosts, services, pinned images and rollout batches.
import * as pulumi from "@pulumi/pulumi";
import { updatePlan, type ModelSpec, type ServiceSpec, type UpdatePlan } from "../config/index.ts";
import { HostModels, type HostModelSource } from "../models/HostModels.ts";
import type { ModelRegistryCredentials } from "../models/ModelArtifact.ts";
import type { ServiceHost } from "./hosts.ts";
import type { MaxUnavailable } from "./rollout.ts";

/** The proxy each host runs for its blue-green services (`proxy` in the stack config). */
export interface ServiceProxyArgs {
  /**
   * The proxy image (HAProxy, `images/proxy`), pinned by digest.
   * @example "registry.lab:5000/fleet/proxy@sha256:2b7e…"
   */
  readonly image: pulumi.Input<string>;
  /**
   * Seconds the old version keeps its open connections after a switch (haproxy's `hard-stop-after`).
   * @default 30 (`DEFAULT_DRAIN_TIMEOUT_SECONDS`)
   */
  readonly drainTimeoutSeconds?: number;
}

/** The stack's models on every host (`models` in the stack config), and where hosts fetch them. */
export interface ServiceModelsArgs {
  /**
   * The models (validated `models[]`): every host gets each; services build engines of those they name.
   * @example readStackConfig().models
   */
  readonly models: readonly ModelSpec[];
  /**
   * Where each model is fetched from, by model name.
   * @example { detector: new ModelArtifact("detector", { model, registry: "registry.lab:5000" }) }
   */
  readonly sources: Readonly<Record<string, HostModelSource>>;
  /**
   * Credentials for the registry holding them, when it takes them.
   * @default none (anonymous)
   */
  readonly credentials?: ModelRegistryCredentials;
}

/** Seconds a switched-away version keeps its connections unless the proxy says otherwise. */
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 30;

export interface ServiceDeploymentArgs {
  /**
   * The hosts, in update order: batches of `maxUnavailable` hosts are taken from the front.
   * @example Object.entries(jetsonHosts).map(([name, host]) => serviceHostOf(name, host))
   */
  readonly hosts: readonly ServiceHost[];
  /**
   * The services every host runs (validated `ServiceSpec`s, defaults applied).
   * @example readStackConfig().services
   */
  readonly services: readonly ServiceSpec[];
  /**
   * Each service's image pinned by digest, by service name (see `pinServiceImages`).
   * @example { inference: "registry.lab:5000/fleet/inference@sha256:4f1c…", mediamtx: "bluenviron/mediamtx@sha256:9a0e…" }
   */
  readonly images: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Environment keys whose values are secrets, by service name.
   * @default {}
   * @example { inference: ["API_TOKEN"] }
   */
  readonly secretEnvironment?: Readonly<Record<string, readonly string[]>>;
  /**
   * Hosts updated at once: a count or a percentage of the fleet (`deploy.rollout.maxUnavailable`).
   * @default 1
   * @example "25%"
   */
  readonly maxUnavailable?: MaxUnavailable;
  /**
   * The hosts' proxy: with it, every service whose `updatePlan` is `blue-green` is updated that
   * way (the proxy holds its ports); without it, every service is recreated.
   * @default none
   * @example { image: serviceImageRefs["jetson-fleet-proxy"], drainTimeoutSeconds: 30 }
   */
  readonly proxy?: ServiceProxyArgs;
  /**
   * The stack's models: each host fetches them and builds its services' engines (`HostModels`,
   * `<name>-<host>-models`) batch by batch before their services are updated.
   * @default none
   * @example { models: config.models, sources: artifacts }
   */
  readonly models?: ServiceModelsArgs;
}

/** Each service's update plan over the stack's services, by name (`updatePlan`; blue-green only with a proxy). */
export function updatePlans(services: readonly ServiceSpec[], proxy: boolean): Record<string, UpdatePlan> {
  return Object.fromEntries(services.map((s) => [s.name, updatePlan(s, services, proxy)]));
}

/**
 * The models and engines of one host of a deploy mode (`<name>-<host>-models`), when the stack
 * has models: engine builds wait for `after` (the previous batch), so they roll with the services.
 */
export function hostModelsOf(
  name: string,
  host: ServiceHost,
  project: string,
  args: ServiceDeploymentArgs,
  after: readonly pulumi.Resource[],
  parent: pulumi.Resource,
): HostModels | undefined {
  const models = args.models;
  if (models === undefined || models.models.length === 0) return undefined;
  return new HostModels(
    `${name}-${host.name}-models`,
    {
      host,
      project,
      models: models.models,
      sources: models.sources,
      services: args.services,
      images: args.images,
      after,
      ...(models.credentials ? { credentials: models.credentials } : {}),
    },
    { parent },
  );
}
