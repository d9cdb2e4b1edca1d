// One service on a Kubernetes fleet: its DaemonSet (or Deployment) and PodDisruptionBudget, under a
// `jetson:services:Service` component whose registered inputs are the shared contract policy packs
// read: `{ host, service }`, the service after defaults with `image` the pinned reference.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceSpec } from "../config/schema.ts";
import type { Manifest, Workload } from "./model.ts";

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
  /**
   * Environment keys whose values are secrets: the registered `service` input is then a Pulumi
   * secret (encrypted in the state, as the other deploy modes keep it).
   * @default []
   * @example ["API_TOKEN"]
   */
  readonly secretEnvironment?: readonly string[];
  /**
   * The Secret the workload reads its secret environment variables from, as
   * `environmentSecretManifest` renders it; pass it as a Pulumi secret. It is applied under a name
   * Pulumi makes from this component's (`<name>-environment-<random>`) and the workload's
   * `secretKeyRef`s follow that name: a new value is a new Secret (created before the old one
   * goes), so the pods roll onto it, as pods read a Secret's values only when they start.
   * @default none (no Secret: the service has no secret values, or they are applied apart, as when rendering YAML)
   * @example pulumi.secret(environmentSecretManifest("jetson-fleet", spec, ["API_TOKEN"]))
   */
  readonly environmentSecretManifest?: pulumi.Input<Manifest>;
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

/** The provider's annotation that deletes an object without waiting for its dependents (the default is foreground). */
const DELETE_IN_BACKGROUND = { "pulumi.com/deletionPropagationPolicy": "background" } as const;

/**
 * A Secret's arguments from its manifest, its data kept a Pulumi secret and its name left to
 * Pulumi (the manifest's name and a random suffix): a change of data replaces it by a new Secret,
 * created before the old one is deleted, rather than changing it under running pods.
 */
function secretArgs(manifest: pulumi.Input<Manifest>): k8s.core.v1.SecretArgs {
  const m = pulumi.output(manifest) as unknown as pulumi.Output<Manifest>;
  return {
    metadata: pulumi.unsecret(
      m.apply((x) => {
        const { name: _name, ...rest } = x.metadata;
        void _name;
        // A Secret owns nothing: the old one goes at once, without a foreground wait for dependents.
        return { ...rest, annotations: { ...(rest.annotations as Record<string, string> | undefined), ...DELETE_IN_BACKGROUND } };
      }),
    ),
    type: pulumi.unsecret(m.apply((x) => String(x["type"]))),
    data: pulumi.secret(m.apply((x) => x["data"] as Record<string, string>)),
  };
}

/**
 * `manifest` with every `secretKeyRef` naming `name`: the only Secret a rendered workload reads
 * values from is its service's environment Secret.
 */
function withSecretName(manifest: Manifest, name: pulumi.Output<string>): Manifest {
  const refs = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(refs);
    if (value === null || typeof value !== "object") return value;
    const o = value as Record<string, unknown>;
    const ref = o["secretKeyRef"];
    if (ref !== null && typeof ref === "object") return { ...o, secretKeyRef: { ...ref, name } };
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, refs(v)]));
  };
  return refs(manifest) as Manifest;
}

/** The resources `opts.dependsOn` names, as a list. */
function dependencies(opts: pulumi.ComponentResourceOptions | undefined): pulumi.Input<pulumi.Resource>[] {
  const d = opts?.dependsOn;
  if (d === undefined) return [];
  return Array.isArray(d) ? [...d] : [d as pulumi.Input<pulumi.Resource>];
}

export class KubernetesService extends pulumi.ComponentResource {
  /** The workload's kind. */
  public readonly kind: "DaemonSet" | "Deployment";
  /** The workload's name (the service name). */
  public readonly workloadName: pulumi.Output<string>;

  constructor(name: string, args: KubernetesServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const service = pulumi.output(args.service);
    const hasSecrets = service.apply((s) => (args.secretEnvironment ?? []).some((k) => k in s.environment));
    // The whole `service` a secret when a value is (the shape policy packs read stays the same).
    const registered = hasSecrets.apply((secret) => (secret ? pulumi.secret(service) : service));
    super("jetson:services:Service", name, { host: args.host, service: registered }, opts);
    this.kind = args.workload?.kind ?? "DaemonSet";
    // A component's dependsOn does not reach its children: they wait for the same things.
    const childOpts: pulumi.CustomResourceOptions = { parent: this, ...(opts?.dependsOn ? { dependsOn: opts.dependsOn } : {}) };
    const secret = args.environmentSecretManifest
      ? new k8s.core.v1.Secret(`${name}-environment`, secretArgs(args.environmentSecretManifest), childOpts)
      : undefined;
    // The workload reads the Secret by the name Pulumi gave it: only those names wait for it, so
    // previews (and the policies they run) see the rest of the workload.
    const secretName = secret?.metadata.name;
    const workloadManifest = secretName
      ? pulumi.output(args.workloadManifest).apply((m) => withSecretName(m, secretName))
      : args.workloadManifest;
    const workloadOpts: pulumi.CustomResourceOptions = secret ? { ...childOpts, dependsOn: [...dependencies(opts), secret] } : childOpts;
    const workload =
      this.kind === "DaemonSet"
        ? new k8s.apps.v1.DaemonSet(`${name}-daemonset`, objectArgs<k8s.types.input.apps.v1.DaemonSetSpec>(workloadManifest), workloadOpts)
        : new k8s.apps.v1.Deployment(
            `${name}-deployment`,
            objectArgs<k8s.types.input.apps.v1.DeploymentSpec>(workloadManifest),
            workloadOpts,
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
