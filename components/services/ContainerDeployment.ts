// The stack's services on every host as Pulumi-managed containers: one Docker provider per host
// (its ssh:// endpoint), one `Service` per service per host, so previews diff each service and
// refresh finds drift. Hosts update in batches, like the compose mode.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceDeploymentArgs } from "./deployment.ts";
import { rolloutBatches } from "./rollout.ts";
import { Service } from "./Service.ts";
import { startOrder } from "./spec.ts";

/** SSH options the Docker provider's ssh client gets unless told otherwise: never prompt. */
export const DEFAULT_DOCKER_SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"] as const;

export interface ContainerDeploymentArgs extends ServiceDeploymentArgs {
  /**
   * Options for the ssh client the Docker provider runs (it uses the machine's ssh: the key must
   * be in its agent or config, the host key in its known_hosts, and the user in the host's docker group).
   * @default ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
   * @example ["-o", "BatchMode=yes", "-i", "/home/ci/.ssh/jetson_fleet"]
   */
  readonly sshOpts?: readonly string[];
}

/**
 * Per host: `<name>-<host>-docker` (a `docker.Provider` for `ssh://user@address:port`) and one
 * `Service` per service, `<name>-<host>-<service>`, in `dependsOn` order (a `healthy` dependency's
 * container create has waited for its health check). A batch of hosts starts once every service
 * of the previous batch is up (and healthy, when it has a health check).
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
    super("jetson:services:ContainerDeployment", name, {}, opts);
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
          { host: host.dockerHost, sshOpts: [...(args.sshOpts ?? DEFAULT_DOCKER_SSH_OPTS)] },
          { parent: this },
        );
        providers[host.name] = provider;
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
              after: [...Object.keys(service.dependsOn).flatMap((d) => onHost[d] ?? []), ...previous, ...(host.ready ? [host.ready] : [])],
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
