// One service on a Kubernetes fleet: its DaemonSet (or Deployment) and PodDisruptionBudget, under a
// `jetson:services:Service` component whose registered inputs are the shared contract policy packs
// read: `{ host, service }`, the service after defaults with `image` the pinned reference.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/schema.ts";
import type { Manifest, Workload } from "./manifests.ts";

/** A service as policy packs see it: defaults applied, `image` pinned, no `build`. */
export type PinnedServiceSpec = Omit<ServiceSpec, "build" | "image"> & { readonly image: string };

export interface KubernetesServiceArgs {
  /**
   * Where the service runs: on Kubernetes, the namespace (or cluster name) it is deployed to.
   * @example "jetson-fleet"
   */
  readonly host: string;
  /**
   * The service, validated with defaults applied, with `image` the pinned reference it runs.
   * @example { name: "inference", image: "registry.lab:5000/inference@sha256:…", runtime: "nvidia", ... }
   */
  readonly service: pulumi.Input<PinnedServiceSpec>;
  /**
   * Whether the service runs as a DaemonSet (one pod per selected node) or a Deployment.
   * @default { kind: "DaemonSet" }
   * @example { kind: "Deployment", replicas: 2 }
   */
  readonly workload?: Workload;
  /**
   * The workload object as `fleetManifests` renders it (`kind` as in `workload`).
   * @example fleetManifests({...}).services[0].workload
   */
  readonly workloadManifest: pulumi.Input<Manifest>;
  /**
   * The PodDisruptionBudget as `fleetManifests` renders it.
   * @example fleetManifests({...}).services[0].disruptionBudget
   */
  readonly disruptionBudgetManifest: pulumi.Input<Manifest>;
}

/** A `ServiceSpec` with its image pinned, as the `service` input of `jetson:services:Service`. */
export function pinnedService(spec: ServiceSpec, image: string): PinnedServiceSpec {
  const pinned: Partial<ServiceSpec> = { ...spec };
  delete pinned.build;
  return { ...(pinned as Omit<ServiceSpec, "build" | "image">), image };
}

/** The fields of a manifest a typed Kubernetes resource takes as arguments. */
function objectArgs<Spec>(manifest: pulumi.Input<Manifest>): { metadata: pulumi.Output<Manifest["metadata"]>; spec: pulumi.Output<Spec> } {
  // A manifest is plain data: output() only lifts it.
  const m = pulumi.output(manifest) as unknown as pulumi.Output<Manifest>;
  return { metadata: m.apply((x) => x.metadata), spec: m.apply((x) => x["spec"] as Spec) };
}

export class KubernetesService extends pulumi.ComponentResource {
  /** The workload's kind. */
  public readonly kind: "DaemonSet" | "Deployment";
  /** The workload's name (the service name). */
  public readonly workloadName: pulumi.Output<string>;

  constructor(name: string, args: KubernetesServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("jetson:services:Service", name, { host: args.host, service: args.service }, opts);
    this.kind = args.workload?.kind ?? "DaemonSet";
    // A component's dependsOn does not reach its children: they wait for the same things.
    const childOpts: pulumi.CustomResourceOptions = { parent: this, ...(opts?.dependsOn ? { dependsOn: opts.dependsOn } : {}) };
    const workload =
      this.kind === "DaemonSet"
        ? new k8s.apps.v1.DaemonSet(
            `${name}-daemonset`,
            objectArgs<k8s.types.input.apps.v1.DaemonSetSpec>(args.workloadManifest),
            childOpts,
          )
        : new k8s.apps.v1.Deployment(
            `${name}-deployment`,
            objectArgs<k8s.types.input.apps.v1.DeploymentSpec>(args.workloadManifest),
            childOpts,
          );
    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-pdb`,
      objectArgs<k8s.types.input.policy.v1.PodDisruptionBudgetSpec>(args.disruptionBudgetManifest),
      childOpts,
    );
    this.workloadName = workload.metadata.name;
    this.registerOutputs({ kind: this.kind, workloadName: this.workloadName });
  }
}
