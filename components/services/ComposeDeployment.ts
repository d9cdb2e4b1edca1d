// The stack's services on every host as compose projects, updated in batches: a batch starts
// only once every host of the previous one has applied its file and reported healthy.
import * as pulumi from "@pulumi/pulumi";
import type { HostModels } from "../models/HostModels.ts";
import { ComposeProject } from "./ComposeProject.ts";
import { checkComposeProject, composeProjectName } from "./compose.ts";
import { hostModelsOf, type ServiceDeploymentArgs } from "./deployment.ts";
import { rolloutBatches } from "./rollout.ts";

/** The compose mode takes what every per-host deploy mode takes, and the compose project name. */
export interface ComposeDeploymentArgs extends ServiceDeploymentArgs {
  /**
   * The compose project name on every host: lower-case letters, digits, `-` and `_`, starting
   * with a letter or digit. Stacks deploying to one host need different names: an apply removes
   * every container of its project that the file no longer names.
   * @default `<Pulumi project>-<stack>`, made a valid name (`composeProjectName`), e.g. "jetson-fleet-dev"
   * @example "jetson-fleet-prod"
   */
  readonly project?: string;
}

/**
 * One `ComposeProject` per host (`<name>-<host>`), batch after batch. When a host's new version
 * fails its health check, that host rolls back to its previous digests, its apply step fails
 * with a message naming the host, the service and the health output, and no later batch starts.
 */
export class ComposeDeployment extends pulumi.ComponentResource {
  /** The compose project name on every host. */
  public readonly project: string;
  /** The hosts of each batch, in order. */
  public readonly batches: readonly (readonly string[])[];
  /** The projects, by host name. */
  public readonly projects: Readonly<Record<string, ComposeProject>>;
  /** Each host's models and engines, by host name (none without models). */
  public readonly models: Readonly<Record<string, HostModels>>;
  /** Each host's apply report, by host name. */
  public readonly results: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ComposeDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    // Before super: a refused name registers nothing.
    const projectName = checkComposeProject(args.project ?? composeProjectName());
    super("jetson:services:ComposeDeployment", name, {}, opts);
    const batches = rolloutBatches(args.hosts, args.maxUnavailable ?? 1);
    const projects: Record<string, ComposeProject> = {};
    const models: Record<string, HostModels> = {};
    let previous: pulumi.Resource[] = [];
    for (const batch of batches) {
      const current = batch.map((host) => {
        const onHost = hostModelsOf(name, host, projectName, args, previous, this);
        if (onHost) models[host.name] = onHost;
        const project = new ComposeProject(
          `${name}-${host.name}`,
          {
            host,
            project: projectName,
            services: args.services,
            images: args.images,
            after: [...previous, ...(onHost?.ready ?? [])],
            ...(onHost ? { engines: onHost.engines } : {}),
            ...(args.proxy ? { proxy: args.proxy } : {}),
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
    this.project = projectName;
    this.batches = batches.map((b) => b.map((h) => h.name));
    this.projects = projects;
    this.models = models;
    this.results = pulumi.all(Object.fromEntries(Object.entries(projects).map(([host, p]) => [host, p.result])));
    this.registerOutputs({ results: this.results });
  }
}
