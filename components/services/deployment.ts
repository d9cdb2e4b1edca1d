// What both per-host deploy modes (compose projects, Pulumi-managed containers) take: the same
// hosts, services, pinned images and rollout batches.
import type * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import type { ServiceHost } from "./hosts.ts";
import type { MaxUnavailable } from "./rollout.ts";

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
}
