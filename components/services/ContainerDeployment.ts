// The stack's services on every host as Pulumi-managed containers: one Docker provider per host
// (its ssh:// endpoint), one `Service` per service per host, so previews diff each service and
// refresh finds drift. Hosts update in batches, like the compose mode.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_LOG_OPTIONS, DEFAULT_SECURITY_OPT, PROXY_SERVICE, type ServiceSpec } from "../config/index.ts";
import { RECONNECT_CHECK, hostCommand, hostStdin, stepTrigger, type HostStep } from "../host/index.ts";
import type { HostModels } from "../models/HostModels.ts";
import {
  DEFAULT_DRAIN_TIMEOUT_SECONDS,
  hostModelsOf,
  updatePlans,
  type ServiceDeploymentArgs,
  type ServiceProxyArgs,
} from "./deployment.ts";
import { DOCKER_PLUGIN_VERSION, dockerSshAgent, dockerSshAgentName, dockerSshOptions, type DockerSshAgent } from "./dockerSsh.ts";
import { rolloutBatches } from "./rollout.ts";
import { Service } from "./Service.ts";
import { checkComposeProject, composeProjectName } from "./compose.ts";
import { PROJECT_LABEL, proxyContainerName } from "./container.ts";
import { PROXY_CONFIG_DIR, PROXY_STOP_SECONDS, proxyDirectory, proxyRoutes, renderProxyConfig } from "./proxy.ts";
import { renderServiceScript } from "./scripts.ts";
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
 *
 * With `proxy`, the services whose `updatePlan` is `blue-green` are updated that way on every
 * host, behind the stack's proxy there: `<name>-<host>-proxy-config` (`proxy-switch.sh`
 * ACTION=config: installs the proxy's haproxy.cfg template in `proxyDirectory(project)` and
 * reloads a running proxy; re-run when the routes or the script change), then
 * `<name>-<host>-proxy-image` and `<name>-<host>-proxy` (the proxy image pulled by digest, and
 * its container `<project>-proxy` on the stack's network, publishing the blue-green services'
 * TCP ports and reading its files read-only; created once healthy). Each blue-green service
 * (`Service`'s `proxy`) then runs without ports under a name that changes with its inputs, and
 * its `<name>-<host>-<service>-switch` step moves the traffic once the new version is healthy;
 * what starts after it, and the next batch, wait for that step. A host without blue-green
 * services gets no proxy. `results` then has a `jetson-fleet-proxy=<image>` line too.
 */
export class ContainerDeployment extends pulumi.ComponentResource {
  /** The hosts of each batch, in order. */
  public readonly batches: readonly (readonly string[])[];
  /** The Docker provider of each host, by host name: reuse it for more containers on that host. */
  public readonly providers: Readonly<Record<string, docker.Provider>>;
  /** The services, by host name then service name. */
  public readonly services: Readonly<Record<string, Readonly<Record<string, Service>>>>;
  /** Each host's models and engines, by host name (none without models). */
  public readonly models: Readonly<Record<string, HostModels>>;
  /** The proxy container of each host that has blue-green services, by host name. */
  public readonly proxies: Readonly<Record<string, docker.Container>>;
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
    const plans = updatePlans(args.services, args.proxy !== undefined);
    const blueGreen = ordered.filter((s) => plans[s.name]?.strategy === "blue-green");
    const providers: Record<string, docker.Provider> = {};
    const services: Record<string, Record<string, Service>> = {};
    const proxies: Record<string, docker.Container> = {};
    const hostModels: Record<string, HostModels> = {};
    let previous: pulumi.Resource[] = [];
    for (const batch of batches) {
      const current: pulumi.Resource[] = [];
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
        const proxy =
          args.proxy && network && blueGreen.length > 0
            ? this.proxy(`${name}-${host.name}`, host, project, args.proxy, blueGreen, network, provider, previous)
            : undefined;
        if (proxy) proxies[host.name] = proxy;
        const models = hostModelsOf(name, host, project, args, previous, this);
        if (models) hostModels[host.name] = models;
        const onHost: Record<string, Service> = {};
        for (const service of ordered) {
          const image = args.images[service.name];
          if (image === undefined) throw new Error(`service "${service.name}" has no pinned image`);
          const secretEnvironment = args.secretEnvironment?.[service.name];
          const update = plans[service.name];
          onHost[service.name] = new Service(
            `${name}-${host.name}-${service.name}`,
            {
              host: host.name,
              service,
              image,
              mode: "containers",
              // `ready`: a blue-green dependency's switch step, so a failed switch stops its dependents.
              // The proxy first: a proxy replaced without a port (its service left blue-green)
              // frees it before the service's own container publishes it.
              after: [
                ...startsAfter(service).flatMap((d) => onHost[d]?.ready ?? []),
                ...previous,
                ...(host.ready ? [host.ready] : []),
                ...(models?.ready ?? []),
                ...(proxy ? [proxy] : []),
              ],
              guard: { host, project },
              ...(update ? { update } : {}),
              ...(proxy && update?.strategy === "blue-green" ? { proxy: { host, project, container: proxy } } : {}),
              ...(network ? { network: network.name } : {}),
              ...(models?.engines[service.name] ? { engines: models.engines[service.name] } : {}),
              ...(secretEnvironment ? { secretEnvironment } : {}),
            },
            { parent: this, providers: [provider] },
          );
        }
        services[host.name] = onHost;
        current.push(...Object.values(onHost).map((s) => s.ready));
      }
      previous = current;
    }
    this.batches = batches.map((b) => b.map((h) => h.name));
    this.providers = providers;
    this.services = services;
    this.proxies = proxies;
    this.models = hostModels;
    this.results = pulumi.all(
      Object.fromEntries(
        Object.entries(services).map(([host, onHost]) => {
          const proxy = proxies[host];
          const lines = [
            ...Object.entries(onHost).map(([svc, s]) => pulumi.all([svc, s.container?.image ?? s.image]).apply(([n, i]) => `${n}=${i}`)),
            // As the compose mode lists its proxy service among the project's containers.
            ...(proxy ? [proxy.image.apply((i) => `${PROXY_SERVICE}=${i}`)] : []),
          ];
          return [host, pulumi.all(lines).apply((l) => l.sort().join("\n"))];
        }),
      ),
    );
    this.registerOutputs({ results: this.results });
  }

  /**
   * A host's proxy: its config step, its image and its container (see the class). Everything
   * here waits for the previous batch, as the services do: a new proxy image or route set
   * restarts or reloads the proxy of one batch at a time.
   */
  private proxy(
    prefix: string,
    host: ServiceHost,
    project: string,
    args: ServiceProxyArgs,
    blueGreen: readonly ServiceSpec[],
    network: docker.Network,
    provider: docker.Provider,
    previous: readonly pulumi.Resource[],
  ): docker.Container {
    const routes = proxyRoutes(blueGreen);
    const containerName = proxyContainerName(project);
    const drain = args.drainTimeoutSeconds ?? DEFAULT_DRAIN_TIMEOUT_SECONDS;
    const step: HostStep = {
      script: renderServiceScript("proxy-switch"),
      create: {
        ACTION: "config",
        PROJECT: project,
        HOST_NAME: host.name,
        PROXY_CONTAINER: containerName,
        PROXY_CONFIG: renderProxyConfig(routes, { drainTimeoutSeconds: drain }),
        // Before the proxy first starts, the containers recreated until now free its ports.
        BLUE_GREEN: blueGreen.map((s) => s.name).join(" "),
      },
    };
    const stdin = pulumi.output(host.sudoPassword).apply((password) => hostStdin(host.elevation, password, step));
    const after = [...previous, ...(host.ready ? [host.ready] : [])];
    const config = new command.remote.Command(
      `${prefix}-proxy-config`,
      {
        connection: host.connection,
        create: hostCommand("proxy-switch", "create", host.elevation),
        // A new way to reach the host changes nothing on it.
        update: RECONNECT_CHECK,
        // No delete: the files stay with the host's other jetson-fleet state (a proxy that
        // comes back finds them), and the proxy's container goes with its own resource.
        stdin: host.elevation === "sudo-password" ? pulumi.secret(stdin) : stdin,
        triggers: [stepTrigger(step)],
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: after },
    );
    const pulled = new docker.RemoteImage(
      `${prefix}-proxy-image`,
      { name: args.image, keepLocally: true },
      { parent: this, provider, dependsOn: after },
    );
    return new docker.Container(
      `${prefix}-proxy`,
      {
        name: containerName,
        image: pulled.name,
        // Whatever the daemon's default runtime (nvidia on a Jetson set up for GPU builds): it needs no GPU.
        runtime: "runc",
        networkMode: network.name,
        // In port order, as the provider reads them back; inside the proxy's own network
        // namespace it listens on the published port (renderProxyConfig).
        ports: [...routes]
          .sort((a, b) => a.published - b.published)
          .map((r) => ({ internal: r.published, external: r.published, ip: r.hostIp, protocol: "tcp" })),
        mounts: [{ type: "bind", source: proxyDirectory(project), target: PROXY_CONFIG_DIR, readOnly: true }],
        restart: "unless-stopped",
        logDriver: "json-file",
        logOpts: { ...DEFAULT_LOG_OPTIONS },
        labels: [{ label: PROJECT_LABEL, value: project }],
        securityOpts: [...DEFAULT_SECURITY_OPT],
        // The image's own health check (the master and a worker answer): the switch steps reload
        // a proxy that is up, not one still starting.
        wait: true,
        // Requests in flight finish when it stops; idle connections are not waited for (PROXY_STOP_SECONDS).
        stopTimeout: PROXY_STOP_SECONDS,
        destroyGraceSeconds: PROXY_STOP_SECONDS,
        mustRun: true,
      },
      // A fixed name and host ports: a new proxy image means the old container goes first.
      { parent: this, provider, deleteBeforeReplace: true, dependsOn: [config] },
    );
  }
}
