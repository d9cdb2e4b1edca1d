// The stack's services on one host as a compose project: the rendered compose file goes to the
// host on standard input, after the script and its parameters (the host steps' one mechanism),
// and compose-apply.sh applies it there, health-gated, rolling the host back to the previous
// digests when a new version is not healthy.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import { withEngineVolumes, type EngineMount } from "../models/engine.ts";
import { createHash } from "node:crypto";
import { RECONNECT_CHECK, contentHash, hostCommand, hostStdin, stepTrigger, type HostStep } from "../host/index.ts";
import { bindSources, checkComposeProject, composeProjectName, renderBindSources, renderComposeFile } from "./compose.ts";
import { DEFAULT_DRAIN_TIMEOUT_SECONDS, updatePlans, type ServiceProxyArgs } from "./deployment.ts";
import type { ServiceHost } from "./hosts.ts";
import { proxyRoutes, renderProxyConfig } from "./proxy.ts";
import { renderServiceScript } from "./scripts.ts";
import { Service } from "./Service.ts";
import { healthTimeoutSeconds } from "./spec.ts";

export interface ComposeProjectArgs {
  /**
   * The host the project runs on.
   * @example serviceHostOf("orin-nx-01", jetsonHost)
   */
  readonly host: ServiceHost;
  /**
   * The services, validated with defaults applied (`ServiceSpec`s).
   * @example readStackConfig().services
   */
  readonly services: readonly ServiceSpec[];
  /**
   * Each service's image pinned by digest, by service name (see `pinServiceImages`).
   * @example { inference: "registry.lab:5000/fleet/inference@sha256:4f1c…" }
   */
  readonly images: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Environment keys whose values are secrets, by service name: the compose file is then a
   * secret in the state and reaches the host on standard input, never on a command line.
   * @default {}
   * @example { inference: ["API_TOKEN"] }
   */
  readonly secretEnvironment?: Readonly<Record<string, readonly string[]>>;
  /**
   * The compose project name on the host: lower-case letters, digits, `-` and `_`, starting with a
   * letter or digit. Stacks deploying to one host need different names: an apply removes every
   * container of its project that the file no longer names.
   * @default `<Pulumi project>-<stack>`, made a valid name (`composeProjectName`), e.g. "jetson-fleet-dev"
   * @example "jetson-fleet-prod"
   */
  readonly project?: string;
  /**
   * What the apply step waits for besides the host's bootstrap, such as the previous batch of hosts.
   * @default []
   */
  readonly after?: readonly pulumi.Resource[];
  /**
   * The host's proxy: services whose `updatePlan` is `blue-green` are then reached through it
   * (compose service `jetson-fleet-proxy`) and updated beside their old version.
   * @default none (every service is recreated)
   * @example { image: "registry.lab:5000/fleet/proxy@sha256:2b7e…" }
   */
  readonly proxy?: ServiceProxyArgs;
  /**
   * The engines each service mounts read-only, by service name (`HostModels.engines`): a new
   * engine is a new mount source, so exactly the services whose engine changed are recreated.
   * @default {}
   */
  readonly engines?: Readonly<Record<string, pulumi.Input<readonly EngineMount[]>>>;
  /**
   * Seconds the host waits for every service to become healthy before it rolls back.
   * @default the longest health check's worst case plus 30 s (`healthTimeoutSeconds`)
   */
  readonly healthTimeoutSeconds?: number;
}

/**
 * The services on one host, applied with `docker compose` (or `docker-compose`) through one
 * `command.remote.Command` (`<name>-apply`) that re-runs when the compose file or the script
 * changes. The host must have one of the two compose commands installed. Bind mount sources the
 * host lacks are created first (`bindSources`: owned by the service's numeric `user` when mounted
 * read-write, root's otherwise, mode 0755); an existing path is never changed.
 *
 * Children: `<name>-apply`, and one `Service` per service (`<name>-<service>`, type
 * `jetson:services:Service`, registered inputs `{ host, service, update }`), which stand for the services
 * this project runs.
 *
 * Deleting the project (`pulumi destroy`, or a host or the services leaving the stack) runs the
 * apply step's delete: `down --remove-orphans` for this project and its state files removed,
 * but only while the host's current compose file is the one this step applied (by sha256) and
 * no other apply step that applied the same file still stands. A changed file or script replaces
 * the step, and Pulumi creates the replacement before it deletes the old one: that delete finds
 * the newer file and leaves the services running, saying so. Named volumes and images stay on
 * the host (they may hold data; remove them by hand with `docker volume rm`).
 */
export class ComposeProject extends pulumi.ComponentResource {
  /** The compose project name on the host. */
  public readonly project: string;
  /** The compose file the host runs (a secret when an environment value is). */
  public readonly composeFile: pulumi.Output<string>;
  /** The apply step's report: `updated` or `unchanged`, then `service=image` per line. */
  public readonly result: pulumi.Output<string>;
  /** The apply step: depend on it to run after this host is healthy. */
  public readonly apply: command.remote.Command;
  /** The services, by service name. */
  public readonly services: Readonly<Record<string, Service>>;

  constructor(name: string, args: ComposeProjectArgs, opts?: pulumi.ComponentResourceOptions) {
    // Before super: a refused name registers nothing.
    const project = checkComposeProject(args.project ?? composeProjectName());
    super("jetson:services:ComposeProject", name, {}, opts);
    const { host, services } = args;
    this.project = project;
    const secretEnv = args.secretEnvironment ?? {};
    const hasSecrets = services.some((s) => (secretEnv[s.name] ?? []).some((k) => k in s.environment));
    const plans = updatePlans(services, args.proxy !== undefined);
    const drainTimeout = args.proxy?.drainTimeoutSeconds ?? DEFAULT_DRAIN_TIMEOUT_SECONDS;
    const blueGreen = services.filter((s) => plans[s.name]?.strategy === "blue-green");
    const engines = args.engines ?? {};
    const file = pulumi.all([args.images, args.proxy?.image ?? "", pulumi.all(engines)]).apply(([images, proxyImage, mounts]) =>
      renderComposeFile(
        services.map((s) => withEngineVolumes(s, mounts[s.name])),
        images,
        blueGreen.length > 0 ? { image: proxyImage, project, services: blueGreen.map((s) => s.name) } : undefined,
      ),
    );
    this.composeFile = hasSecrets ? pulumi.secret(file) : file;

    const params = {
      PROJECT: project,
      HOST_NAME: host.name,
      HEALTH_TIMEOUT: String(args.healthTimeoutSeconds ?? healthTimeoutSeconds(services)),
      BIND_SOURCES: renderBindSources(bindSources(services)),
      ...(blueGreen.length > 0
        ? {
            BLUE_GREEN: blueGreen.map((s) => s.name).join(" "),
            PROXY_CONFIG: renderProxyConfig(proxyRoutes(blueGreen), {
              drainTimeoutSeconds: drainTimeout,
            }),
          }
        : {}),
    };
    const step = (file: string): HostStep => ({
      script: renderServiceScript("compose-apply"),
      create: params,
      delete: { PROJECT: project, HOST_NAME: host.name, ACTION: "delete", FILE_SHA256: sha256(file) },
    });
    const stdin = pulumi
      .all([host.sudoPassword, this.composeFile])
      .apply(([password, file]) => hostStdin(host.elevation, password, step(file), file));
    this.apply = new command.remote.Command(
      `${name}-apply`,
      {
        connection: host.connection,
        create: hostCommand("compose-apply", "create", host.elevation),
        // A new way to reach the host (key, address, host key, sudo password) changes no service.
        update: RECONNECT_CHECK,
        delete: hostCommand("compose-apply", "delete", host.elevation),
        stdin: host.elevation === "sudo-password" || hasSecrets ? pulumi.secret(stdin) : stdin,
        triggers: [this.composeFile.apply((f) => contentHash(stepTrigger(step(f)), f))],
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [...(host.ready ? [host.ready] : []), ...(args.after ?? [])] },
    );
    this.result = this.apply.stdout;
    this.services = Object.fromEntries(
      services.map((service) => {
        const image = args.images[service.name];
        if (image === undefined) throw new Error(`service "${service.name}" has no pinned image`);
        const secretEnvironment = secretEnv[service.name];
        return [
          service.name,
          new Service(
            `${name}-${service.name}`,
            {
              host: host.name,
              service,
              image,
              mode: "compose",
              ...(engines[service.name] ? { engines: engines[service.name] } : {}),
              ...(plans[service.name] ? { update: plans[service.name] } : {}),
              ...(secretEnvironment ? { secretEnvironment } : {}),
            },
            { parent: this },
          ),
        ];
      }),
    );
    this.registerOutputs({ composeFile: this.composeFile, result: this.result });
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
