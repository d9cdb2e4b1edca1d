// The stack's services on every host as Pulumi-managed containers: one Docker provider per host
// (its ssh:// endpoint), one `Service` per service per host, so previews diff each service and
// refresh finds drift. Hosts update in batches, like the compose mode.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceDeploymentArgs } from "./deployment.ts";
import { DOCKER_PLUGIN_VERSION, dockerSshAgent, dockerSshAgentName, dockerSshOptions, type DockerSshAgent } from "./dockerSsh.ts";
import { rolloutBatches } from "./rollout.ts";
import { Service } from "./Service.ts";
import { checkComposeProject, composeProjectName } from "./compose.ts";
import { startOrder, startsAfter } from "./spec.ts";
import type { ServiceHost } from "./hosts.ts";

export interface ContainerDeploymentArgs extends ServiceDeploymentArgs {
  /**
   * Options for the ssh client each host's Docker provider runs (the machine's `ssh`), replacing
   * the generated ones: you then arrange the key, the host key and the ssh config yourself. The
   * login user must be in the host's `docker` group (`JetsonHost`'s `dockerAccess`).
   * @default `dockerSshOptions` for the host: its connection's private key only (held by an
   *   ssh-agent of the stack's own, see `sshAgent`), its pinned host key only, no ssh config
   * @example ["-o", "BatchMode=yes", "-i", "/home/ci/.ssh/jetson_fleet"]
   */
  readonly sshOpts?: readonly string[];
  /**
   * Loads a host's private key into an ssh-agent and returns the agent's socket (used when
   * `sshOpts` is not given).
   * @default `dockerSshAgent`: an agent under `~/.ssh/jetson-fleet/` that lives while the Pulumi run does
   */
  readonly sshAgent?: DockerSshAgent;
  /**
   * The registry the hosts pull from, with credentials: each host's Docker provider pulls with
   * them (`registryAuth`; the password stays a secret in the state).
   * @default none (anonymous pulls)
   * @example { server: "registry.lab:5000", username: "fleet", password: config.requireSecret("registryPassword") }
   */
  readonly registry?: {
    /** Registry host[:port]. @example "registry.lab:5000" */
    readonly server: string;
    /** User name the providers pull with. @example "fleet" */
    readonly username: string;
    /** Password or token; keep it a Pulumi secret. @example config.requireSecret("registryPassword") */
    readonly password: pulumi.Input<string>;
  };
  /**
   * The stack's compose project name: a host switching from the compose mode has that project's
   * container of each service removed just before the service's container is created.
   * @default `<Pulumi project>-<stack>`, made a valid name (`composeProjectName`)
   * @example "jetson-fleet-prod"
   */
  readonly project?: string;
}

/**
 * The host's `dockerSshOptions`, its private key loaded into `agent` first. Nothing secret is in
 * them (the agent's name is a hash of the public key), so they stay readable in the state.
 */
function generatedSshOpts(host: ServiceHost, agent: DockerSshAgent): pulumi.Output<string[]> {
  return pulumi.unsecret(
    pulumi.output(host.connection).apply((c) => {
      const key = c.privateKey;
      if (key === undefined) throw new Error(`host ${host.name}: its connection has no private key for the Docker provider's ssh`);
      agent(key);
      return dockerSshOptions(
        { ...(c.hostKey !== undefined ? { hostKey: c.hostKey } : {}), connectTimeout: c.perDialTimeout ?? 20 },
        dockerSshAgentName(key),
      );
    }),
  );
}

/**
 * Per host: `<name>-<host>-docker` (a `docker.Provider` for `ssh://user@address:port`, plugin
 * `DOCKER_PLUGIN_VERSION`), `<name>-<host>-network` (`<project>_containers`, the network its
 * bridge services share and resolve each other's names on) and one `Service` per service, `<name>-<host>-<service>`, in
 * `dependsOn` order (a `healthy` dependency's container create has waited for its health check),
 * each guarded by its host step (`Service`'s `guard`): a container that is not healthy in time is
 * replaced on the host by the one it replaced. A batch of hosts starts once every service of the
 * previous batch is up (and healthy, when it has a health check), so a failure stops the rollout
 * after its batch.
 */
export class ContainerDeployment extends pulumi.ComponentResource {
  /** The hosts of each batch, in order. */
  public readonly batches: readonly (readonly string[])[];
  /** The Docker provider of each host, by host name: reuse it for more containers on that host. */
  public readonly providers: Readonly<Record<string, docker.Provider>>;
  /** The services, by host name then service name. */
  public readonly services: Readonly<Record<string, Readonly<Record<string, Service>>>>;
  /** Each host's report once its containers are up, like the compose mode's: `service=image` per line, by host name. */
  public readonly results: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ContainerDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    const project = checkComposeProject(args.project ?? composeProjectName());
    super("jetson:services:ContainerDeployment", name, {}, opts);
    const registryAuth = args.registry
      ? [{ address: args.registry.server, username: args.registry.username, password: pulumi.secret(args.registry.password) }]
      : [];
    const batches = rolloutBatches(args.hosts, args.maxUnavailable ?? 1);
    const ordered = startOrder(args.services);
    const providers: Record<string, docker.Provider> = {};
    const services: Record<string, Record<string, Service>> = {};
    let previous: pulumi.Resource[] = [];
    for (const batch of batches) {
      const current: Service[] = [];
      for (const host of batch) {
        const provider = new docker.Provider(
          `${name}-${host.name}-docker`,
          {
            host: host.dockerHost,
            sshOpts: args.sshOpts ? [...args.sshOpts] : generatedSshOpts(host, args.sshAgent ?? dockerSshAgent),
            registryAuth,
          },
          // The engine loads only the plugin version asked for: the installed one (see
          // DOCKER_PLUGIN_VERSION). Nothing reaches the engine before the host's bootstrap ends.
          { parent: this, version: DOCKER_PLUGIN_VERSION, ...(host.ready ? { dependsOn: [host.ready] } : {}) },
        );
        providers[host.name] = provider;
        // The stack's own network for its bridge services, as compose gives a project one.
        const network = ordered.some((s) => s.network === "bridge")
          ? new docker.Network(`${name}-${host.name}-network`, { name: `${project}_containers` }, { parent: this, provider })
          : undefined;
        const onHost: Record<string, Service> = {};
        for (const service of ordered) {
          const image = args.images[service.name];
          if (image === undefined) throw new Error(`service "${service.name}" has no pinned image`);
          const secretEnvironment = args.secretEnvironment?.[service.name];
          onHost[service.name] = new Service(
            `${name}-${host.name}-${service.name}`,
            {
              host: host.name,
              service,
              image,
              mode: "containers",
              after: [...startsAfter(service).flatMap((d) => onHost[d] ?? []), ...previous, ...(host.ready ? [host.ready] : [])],
              guard: { host, project },
              ...(network ? { network: network.name } : {}),
              ...(secretEnvironment ? { secretEnvironment } : {}),
            },
            { parent: this, providers: [provider] },
          );
        }
        services[host.name] = onHost;
        current.push(...Object.values(onHost));
      }
      previous = current;
    }
    this.batches = batches.map((b) => b.map((h) => h.name));
    this.providers = providers;
    this.services = services;
    this.results = pulumi.all(
      Object.fromEntries(
        Object.entries(services).map(([host, onHost]) => [
          host,
          pulumi
            .all(Object.entries(onHost).map(([svc, s]) => pulumi.all([svc, s.container?.image ?? s.image]).apply(([n, i]) => `${n}=${i}`)))
            .apply((lines) => lines.sort().join("\n")),
        ]),
      ),
    );
    this.registerOutputs({ results: this.results });
  }
}
