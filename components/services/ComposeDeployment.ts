// The stack's services on every host as compose projects, updated in batches: a batch starts
// only once every host of the previous one has applied its file and reported healthy.
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/index.ts";
import { ComposeProject } from "./ComposeProject.ts";
import type { ServiceHost } from "./hosts.ts";
import { rolloutBatches, type MaxUnavailable } from "./rollout.ts";

export interface ComposeDeploymentArgs {
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

/**
 * One `ComposeProject` per host (`<name>-<host>`), batch after batch. When a host's new version
 * fails its health check, that host rolls back to its previous digests, its apply step fails
 * with a message naming the host, the service and the health output, and no later batch starts.
 */
export class ComposeDeployment extends pulumi.ComponentResource {
  /** The hosts of each batch, in order. */
  public readonly batches: readonly (readonly string[])[];
  /** The projects, by host name. */
  public readonly projects: Readonly<Record<string, ComposeProject>>;
  /** Each host's apply report, by host name. */
  public readonly results: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ComposeDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("jetson:services:ComposeDeployment", name, {}, opts);
    const batches = rolloutBatches(args.hosts, args.maxUnavailable ?? 1);
    const projects: Record<string, ComposeProject> = {};
    let previous: pulumi.Resource[] = [];
    for (const batch of batches) {
      const current = batch.map((host) => {
        const project = new ComposeProject(
          `${name}-${host.name}`,
          {
            host,
            services: args.services,
            images: args.images,
            after: previous,
            ...(args.secretEnvironment ? { secretEnvironment: args.secretEnvironment } : {}),
          },
          { parent: this },
        );
        projects[host.name] = project;
        return project;
      });
      // The next batch waits for these hosts' apply steps, which end only once they are healthy.
      previous = current.map((p) => p.apply);
    }
    this.batches = batches.map((b) => b.map((h) => h.name));
    this.projects = projects;
    this.results = pulumi.all(Object.fromEntries(Object.entries(projects).map(([host, p]) => [host, p.result])));
    this.registerOutputs({ results: this.results });
  }
}
