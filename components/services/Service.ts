// One service on one host: the unit a reviewer reads in a preview and the policy pack checks.
// In the containers mode it owns the pull (RemoteImage, by digest) and the container; in the
// compose mode its host's ComposeProject applies it and it stands for that service in the state.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { updatePlan, type ServiceSpec, type UpdatePlan } from "../config/index.ts";
import { engineVolumes, type EngineMount } from "../models/engine.ts";
import { RECONNECT_CHECK, contentHash, hostCommand, hostStdin, stepTrigger, type HostStep } from "../host/index.ts";
import { bindSources, renderBindSources } from "./compose.ts";
import { CONTAINER_GENERATION_COMMAND, containerArgs, containerInputsHash, proxyContainerName } from "./container.ts";
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
   * How a new version replaces the running one on the host, and why (`updatePlan` over the
   * stack's services): shown in previews as the `update` input.
   * @default `updatePlan(service, [service], false)`: recreate, since a lone service has no proxy
   * @example { strategy: "blue-green", reason: "publishes TCP port 8088 and has a health check" }
   */
  readonly update?: UpdatePlan;
  /**
   * The engines the service mounts read-only (`HostModels.engines`): in the registered `service`
   * input they follow its own `volumes`, so a preview shows a new engine as a changed mount.
   * @default none
   */
  readonly engines?: pulumi.Input<readonly EngineMount[]>;
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
  /**
   * Containers mode, required when `update` is `blue-green` (and so is `network`, where the proxy
   * finds the container by name): the host's proxy, which holds the service's host ports and
   * routes them to its current container. The container then publishes
   * no ports, is named `<service>-<generation>` (12 random hex digits from its `<name>-generation`
   * step, run on the machine running Pulumi whenever the container's inputs change,
   * `containerInputsHash`) and is created before the one it replaces is deleted;
   * `<name>-switch` (`proxy-switch.sh`) waits until it is healthy and switches the proxy to it, or
   * removes it and fails, traffic staying on the previous version. Without `update` blue-green it
   * is ignored (`guard` applies).
   * @default none
   * @example { host: serviceHostOf("orin-nx-01", jetsonHost), project: "jetson-fleet-prod", container: proxyContainer }
   */
  readonly proxy?: ServiceProxyTarget;
}

/** The host's proxy a blue-green service is switched behind (containers mode). */
export interface ServiceProxyTarget {
  /** The host the proxy and the service run on. @example serviceHostOf("orin-nx-01", jetsonHost) */
  readonly host: ServiceHost;
  /**
   * The stack's compose project name: labels the container, names the proxy's container
   * (`<project>-proxy`, `proxyContainerName`) and its files on the host (`proxyDirectory`).
   * @example "jetson-fleet-prod"
   */
  readonly project: string;
  /** The proxy's container (or what stands for it): the switch step runs once it is up. @example proxyContainer */
  readonly container: pulumi.Resource;
}

/** The registered inputs of a `Service`: the contract the policy pack reads. */
export interface ServiceInputs {
  readonly host: string;
  readonly service: PinnedService;
  /** How the service is updated on the host, and why (per-host targets; Kubernetes rolls pods instead). */
  readonly update?: UpdatePlan;
}

/**
 * One service on one host (type `jetson:services:Service`).
 *
 * Its registered inputs are exactly `{ host, service, update }` ({@link ServiceInputs}): `host` is
 * the host's name, `service` the `ServiceSpec` after defaults with `image` replaced by the pinned
 * reference it deploys (`repository@sha256:…`), and `update` its update plan (strategy and reason). When an environment value is a secret, the
 * engine stores the whole `service` input as a secret (same shape). The policy pack relies on
 * this shape: keep it stable.
 *
 * Containers mode: children `<name>-image` (`docker.RemoteImage` of the pinned reference, kept on
 * the host so a rollback needs no pull), with `guard` `<name>-handover` (the host step that can
 * undo a failed update), and `<name>` (`docker.Container` named after the service). The
 * container is deleted before its replacement is created (the provider asks for it, and a fixed
 * name or a host port cannot be held twice).
 *
 * Containers mode, `update` blue-green (with `proxy`): `<name>-image`; `<name>-handover` without
 * its guard (HEALTHCHECK=0: it only makes missing bind mount sources and removes the service's
 * compose-mode container); `<name>`, the container named `<service>-<generation>` (`<name>-generation`) without ports or
 * health wait, created before the one it replaces is deleted (`deleteBeforeReplace: false`); and
 * `<name>-switch`, the host step that gates on its health and switches the proxy to it (re-run
 * exactly when the container is replaced; its delete takes the service off the proxy when the
 * proxy still routes it to that container). Pulumi deletes the previous container at the end of
 * the update, after the switch; a failed switch leaves it running and serving.
 */
export class Service extends pulumi.ComponentResource {
  /** The pinned reference the service runs. */
  public readonly image: pulumi.Output<string>;
  /** The container (containers mode). */
  public readonly container?: docker.Container;
  /** The host step that switched the proxy to the container (containers mode, blue-green). */
  public readonly switch?: command.remote.Command;
  /**
   * What services started after this one, and the next batch of hosts, wait for: the switch step
   * (blue-green: a failed switch stops them), else the container (its create waited for health),
   * else this component (compose mode).
   */
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const secretKeys = new Set(args.secretEnvironment ?? []);
    const environment = Object.fromEntries(
      Object.entries(args.service.environment).map(([k, v]) => [k, secretKeys.has(k) ? pulumi.secret(v) : v]),
    );
    const update = args.update ?? updatePlan(args.service, [args.service], false);
    const volumes = args.engines
      ? pulumi.output(args.engines).apply((e) => [...args.service.volumes, ...engineVolumes(e)])
      : args.service.volumes;
    const inputs = { host: args.host, service: { ...args.service, environment, volumes, image: args.image }, update };
    super(SERVICE_TYPE, name, inputs, opts);
    this.image = pulumi.output(args.image);
    let ready: pulumi.Resource | undefined;
    if (args.mode === "containers") {
      const after = [...(args.after ?? [])];
      const proxy = update.strategy === "blue-green" ? args.proxy : undefined;
      if (update.strategy === "blue-green" && proxy === undefined) {
        throw new Error(
          `service "${args.service.name}" on host ${args.host}: update is blue-green, which needs the host's proxy (ServiceArgs.proxy)`,
        );
      }
      // The proxy finds the container by name on the stack's network; Docker's default bridge resolves none.
      if (proxy && args.network === undefined) {
        throw new Error(
          `service "${args.service.name}" on host ${args.host}: update is blue-green, which needs the stack's network (ServiceArgs.network)`,
        );
      }
      // Pulled first: an image that cannot be pulled stops the update before the running container is touched.
      const pulled = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this, dependsOn: after });
      const project = proxy?.project ?? args.guard?.project;
      const container = containerArgs(args.service, {
        image: pulled.name,
        ...(args.secretEnvironment ? { secretEnvironment: args.secretEnvironment } : {}),
        ...(project !== undefined ? { project } : {}),
        ...(args.network !== undefined ? { network: args.network } : {}),
        ...(proxy ? { behindProxy: true } : {}),
        ...(args.engines ? { engines: args.engines } : {}),
      });
      if (proxy) {
        // A new generation, so a new name, whenever the container's inputs change (a replace).
        const generation = new command.local.Command(
          `${name}-generation`,
          { create: CONTAINER_GENERATION_COMMAND, triggers: [containerInputsHash(container)] },
          { parent: this },
        );
        container.name = pulumi.interpolate`${args.service.name}-${generation.stdout}`;
        // No guard: the new version starts beside the running one, which serves until the switch.
        const prepare = this.handover(
          name,
          args.service,
          { host: proxy.host, project: proxy.project },
          container,
          [...after, pulled],
          false,
        );
        this.container = new docker.Container(name, container, {
          parent: this,
          // The provider asks for delete-before-replace; an explicit false overrides it (the
          // names differ, no host port is held), so the replacement starts before the switch and
          // the running container is deleted only after it.
          deleteBeforeReplace: false,
          dependsOn: [...after, prepare],
        });
        this.switch = this.switchStep(name, args, proxy, this.container);
        ready = this.switch;
      } else {
        const handover = args.guard ? this.handover(name, args.service, args.guard, container, [...after, pulled], true) : undefined;
        this.container = new docker.Container(name, container, {
          parent: this,
          deleteBeforeReplace: true,
          dependsOn: handover ? [...after, handover] : after,
        });
        ready = this.container;
      }
    }
    this.ready = ready ?? this;
    this.registerOutputs({ image: this.image });
  }

  /**
   * The `proxy-switch.sh` step of a blue-green container: create switches the proxy to it once it
   * is healthy (or removes it and fails); delete takes the service off the proxy if it still
   * routes there. Triggered by the container's id alone: it re-runs exactly when the container is
   * replaced, and a new way to reach the host runs only the reconnect check.
   */
  private switchStep(name: string, args: ServiceArgs, proxy: ServiceProxyTarget, container: docker.Container): command.remote.Command {
    const { host, project } = proxy;
    const common = {
      PROJECT: project,
      HOST_NAME: host.name,
      PROXY_CONTAINER: proxyContainerName(project),
      SERVICE: args.service.name,
    };
    const stdin = pulumi.all([host.sudoPassword, container.name, args.image]).apply(([password, containerName, image]) =>
      hostStdin(host.elevation, password, {
        script: renderServiceScript("proxy-switch"),
        create: {
          ACTION: "switch",
          ...common,
          CONTAINER: containerName,
          IMAGE: image,
          HEALTH_TIMEOUT: String(healthTimeoutSeconds([args.service])),
        },
        delete: { ACTION: "delete", ...common, CONTAINER: containerName },
      }),
    );
    return new command.remote.Command(
      `${name}-switch`,
      {
        connection: host.connection,
        create: hostCommand("proxy-switch", "create", host.elevation),
        update: RECONNECT_CHECK,
        delete: hostCommand("proxy-switch", "delete", host.elevation),
        // Secret: it leads with the sudo password.
        stdin: pulumi.secret(stdin),
        triggers: [container.id],
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [container, proxy.container] },
    );
  }

  /**
   * The `container-handover.sh` step: re-runs whenever the container's inputs change (it is
   * replaced or updated then). Unguarded (blue-green), it only prepares the host: bind mount
   * sources, the compose mode's container of the service gone; no container of the new one's
   * name runs yet, so there is nothing to record.
   */
  private handover(
    name: string,
    service: ServiceSpec,
    guard: NonNullable<ServiceArgs["guard"]>,
    container: docker.ContainerArgs,
    dependsOn: pulumi.Resource[],
    guarded: boolean,
  ): command.remote.Command {
    const { host, project } = guard;
    const step = (containerName: string): HostStep => ({
      script: renderServiceScript("container-handover"),
      create: {
        CONTAINER: containerName,
        PROJECT: project,
        SERVICE: service.name,
        HOST_NAME: host.name,
        // The provider's own health wait ends first; the guard then undoes what it left.
        GUARD_TIMEOUT: String(healthTimeoutSeconds([service]) + 60),
        HEALTHCHECK: guarded && service.healthcheck ? "1" : "0",
        BIND_SOURCES: renderBindSources(bindSources([service])),
      },
    });
    // The container's name: the service's (containerArgs), or the blue-green one's generation name.
    const stdin = pulumi
      .all([host.sudoPassword, container.name])
      .apply(([password, containerName]) => hostStdin(host.elevation, password, step(containerName ?? service.name)));
    return new command.remote.Command(
      `${name}-handover`,
      {
        connection: host.connection,
        create: hostCommand("container-handover", "create", host.elevation),
        update: RECONNECT_CHECK,
        stdin: pulumi.secret(stdin),
        // A hash of the container's inputs (secret when they hold a secret): the step runs exactly
        // when the container is about to change.
        triggers: [stepTrigger(step(service.name)), pulumi.output(container).apply((c) => contentHash(JSON.stringify(c)))],
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn },
    );
  }
}
