// One service on one host: the unit a reviewer reads in a preview and the policy pack checks.
// In the containers mode it owns the pull (RemoteImage, by digest) and the container; in the
// compose mode its host's ComposeProject applies it and it stands for that service in the state.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import { containerArgs } from "./container.ts";
import type { PinnedService } from "./spec.ts";

/** The frozen type token of `Service`: the policy pack selects resources by it. */
export const SERVICE_TYPE = "jetson:services:Service";

/** How the service runs on its host. */
export type ServiceMode = "containers" | "compose";

export interface ServiceArgs {
  /** The host's name (from the stack's `hosts`). @example "orin-nx-01" */
  readonly host: string;
  /**
   * The validated service, defaults applied (a `ServiceSpec`).
   * @example ServiceSpec.parse({ name: "mediamtx", image: "bluenviron/mediamtx:1.9.3", network: "host" })
   */
  readonly service: ServiceSpec;
  /**
   * The image it runs, pinned by digest: `repository@sha256:…`.
   * @example "registry.lab:5000/fleet/inference@sha256:4f1c…"
   */
  readonly image: pulumi.Input<string>;
  /**
   * `containers`: this component pulls the image and runs a `docker.Container` through the Docker
   * provider given in `opts.provider`; `compose`: the host's `ComposeProject` runs it.
   * @example "containers"
   */
  readonly mode: ServiceMode;
  /** Environment keys whose values are secrets; they stay secrets in the state. @default [] */
  readonly secretEnvironment?: readonly string[];
  /**
   * What must be up first: services on the same host this one depends on (with a health check,
   * their containers' creates have waited for health), the previous batch of hosts, the host's
   * bootstrap. Containers mode only; the container itself depends on them.
   * @default []
   */
  readonly after?: readonly pulumi.Resource[];
}

/** The registered inputs of a `Service`: the contract the policy pack reads. */
export interface ServiceInputs {
  readonly host: string;
  readonly service: PinnedService;
}

/**
 * One service on one host (type `jetson:services:Service`).
 *
 * Its registered inputs are exactly `{ host, service }` ({@link ServiceInputs}): `host` is the
 * host's name and `service` the `ServiceSpec` after defaults with `image` replaced by the pinned
 * reference it deploys (`repository@sha256:…`). When an environment value is a secret, the
 * engine stores the whole `service` input as a secret (same shape). The policy pack relies on
 * this shape: keep it stable.
 *
 * Containers mode: children `<name>-image` (`docker.RemoteImage` of the pinned reference, kept on
 * the host so a rollback needs no pull) and `<name>` (`docker.Container` named after the service).
 * The container is deleted before its replacement is created (`deleteBeforeReplace`): a fixed
 * name or a host port cannot be held twice, so create-before-delete would fail on the host.
 */
export class Service extends pulumi.ComponentResource {
  /** The pinned reference the service runs. */
  public readonly image: pulumi.Output<string>;
  /** The container (containers mode). */
  public readonly container?: docker.Container;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const secretKeys = new Set(args.secretEnvironment ?? []);
    const environment = Object.fromEntries(
      Object.entries(args.service.environment).map(([k, v]) => [k, secretKeys.has(k) ? pulumi.secret(v) : v]),
    );
    const inputs = { host: args.host, service: { ...args.service, environment, image: args.image } };
    super(SERVICE_TYPE, name, inputs, opts);
    this.image = pulumi.output(args.image);
    if (args.mode === "containers") {
      const pulled = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
      this.container = new docker.Container(
        name,
        containerArgs(args.service, {
          image: pulled.name,
          ...(args.secretEnvironment ? { secretEnvironment: args.secretEnvironment } : {}),
        }),
        { parent: this, deleteBeforeReplace: true, dependsOn: [...(args.after ?? [])] },
      );
    }
    this.registerOutputs({ image: this.image });
  }
}
