// One service on one host: the unit a reviewer reads in a preview and the policy pack checks.
// In the containers mode it owns the pull (RemoteImage, by digest) and the container; in the
// compose mode its host's ComposeProject applies it and it stands for that service in the state.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import { RECONNECT_CHECK, contentHash, hostCommand, hostStdin, stepTrigger, type HostStep } from "../host/index.ts";
import { bindSources, renderBindSources } from "./compose.ts";
import { containerArgs } from "./container.ts";
import type { ServiceHost } from "./hosts.ts";
import { renderServiceScript } from "./scripts.ts";
import { healthTimeoutSeconds, type PinnedService } from "./spec.ts";

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
  /**
   * Containers mode: the user-defined network a `bridge` service joins (`ContainerDeployment`
   * makes one per host), where the other services reach it by name, as on compose's project network.
   * @default none (Docker's default bridge)
   * @example network.name
   */
  readonly network?: pulumi.Input<string>;
  /**
   * Containers mode: the host to guard updates on, and the stack's compose project name. Before
   * the container is created or replaced, a step on the host (`container-handover.sh`) records the
   * running container and watches the new one: when it is not healthy in time, the host gets the
   * recorded one back (same digest and settings) and the update fails. Needs a health check.
   * @default none (no guard: a failed update leaves the service down on that host)
   * @example { host: serviceHostOf("orin-nx-01", jetsonHost), project: "jetson-fleet-prod" }
   */
  readonly guard?: {
    /** The host the container runs on. @example serviceHostOf("orin-nx-01", jetsonHost) */
    readonly host: ServiceHost;
    /** The stack's compose project name: labels the container, and finds a compose container of a switch. @example "jetson-fleet-prod" */
    readonly project: string;
  };
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
 * the host so a rollback needs no pull), with `guard` `<name>-handover` (the host step that can
 * undo a failed update), and `<name>` (`docker.Container` named after the service). The
 * container is deleted before its replacement is created (the provider asks for it, and a fixed
 * name or a host port cannot be held twice).
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
      const after = [...(args.after ?? [])];
      // Pulled first: an image that cannot be pulled stops the update before the running container is touched.
      const pulled = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this, dependsOn: after });
      const container = containerArgs(args.service, {
        image: pulled.name,
        ...(args.secretEnvironment ? { secretEnvironment: args.secretEnvironment } : {}),
        ...(args.guard ? { project: args.guard.project } : {}),
        ...(args.network !== undefined ? { network: args.network } : {}),
      });
      const handover = args.guard ? this.handover(name, args.service, args.guard, container, [...after, pulled]) : undefined;
      this.container = new docker.Container(name, container, {
        parent: this,
        deleteBeforeReplace: true,
        dependsOn: handover ? [...after, handover] : after,
      });
    }
    this.registerOutputs({ image: this.image });
  }

  /** The `container-handover.sh` step: re-runs whenever the container's inputs change (it is replaced or updated then). */
  private handover(
    name: string,
    service: ServiceSpec,
    guard: NonNullable<ServiceArgs["guard"]>,
    container: docker.ContainerArgs,
    dependsOn: pulumi.Resource[],
  ): command.remote.Command {
    const { host, project } = guard;
    const step: HostStep = {
      script: renderServiceScript("container-handover"),
      create: {
        // containerArgs names the container after the service.
        CONTAINER: service.name,
        PROJECT: project,
        SERVICE: service.name,
        HOST_NAME: host.name,
        // The provider's own health wait ends first; the guard then undoes what it left.
        GUARD_TIMEOUT: String(healthTimeoutSeconds([service]) + 60),
        HEALTHCHECK: service.healthcheck ? "1" : "0",
        BIND_SOURCES: renderBindSources(bindSources([service])),
      },
    };
    const stdin = pulumi.output(host.sudoPassword).apply((password) => hostStdin(host.elevation, password, step));
    return new command.remote.Command(
      `${name}-handover`,
      {
        connection: host.connection,
        create: hostCommand("container-handover", "create", host.elevation),
        update: RECONNECT_CHECK,
        stdin: pulumi.secret(stdin),
        // A hash of the container's inputs (secret when they hold a secret): the step runs exactly
        // when the container is about to change.
        triggers: [stepTrigger(step), pulumi.output(container).apply((c) => contentHash(JSON.stringify(c)))],
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn },
    );
  }
}
