// The Kubernetes fleet target: the stack's services on k3s-managed Jetsons, applied with
// @pulumi/kubernetes (server-side apply) through a provider built from a kubeconfig held as a stack
// secret, or rendered to YAML for a GitOps repository. The objects are exactly `fleetManifests`'
// output, so what the unit tier snapshots is what the API server receives.
//
// GPU access on k3s / JetPack 6 (see README, "Kubernetes fleet"): the `nvidia` RuntimeClass, whose
// handler k3s configures in containerd when it finds the NVIDIA container toolkit; the toolkit's
// CSV mode then mounts the L4T libraries and device nodes into GPU pods. The NVIDIA device plugin
// is optional (`gpu: { mode: "device-plugin", image }`); the GPU operator does not support Jetson.
//
// Secrets: the registry login and each service's secret environment values go into Secrets whose
// data is a Pulumi secret; workloads name them (`imagePullSecrets`, `valueFrom.secretKeyRef`) and
// hold no value. Rendering to a directory writes no Secret: GitOps repositories get them apart.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ModelSpec } from "../config/models.ts";
import type { DeploySpec, ServiceSpec } from "../config/schema.ts";
import { StackConfigError } from "../config/load.ts";
import { KubernetesService, pinnedService } from "./KubernetesService.ts";
import { fleetManifests } from "./manifests.ts";
import {
  DEFAULT_NAMESPACE,
  type FleetManifests,
  type GpuAccess,
  type Manifest,
  NVIDIA_RUNTIME_CLASS,
  PART_OF,
  PULL_SECRET_NAME,
  PULL_SECRET_TYPE,
  type Workload,
  isGpuService,
} from "./model.ts";
import { environmentSecretManifest, pullSecretManifest } from "./secrets.ts";
import { KubernetesFleetArgsError } from "./validation.ts";

export interface KubernetesFleetRegistry {
  /** Registry host[:port] the images come from. @example "registry.lab:5000" */
  readonly server: string;
  /** User name for pulls; with it, pods pull with a dockerconfigjson Secret. @default none (anonymous pulls) */
  readonly username?: string;
  /**
   * Password or token; required with `username`. Stored as a Pulumi secret.
   * @default none (anonymous pulls)
   * @example config.requireSecret("registry.password")
   */
  readonly password?: pulumi.Input<string>;
}

export interface KubernetesFleetArgs {
  /**
   * The services, validated with defaults applied (the stack config's `services`), in config order
   * (error messages name `services[i]`).
   * @example config.services
   */
  readonly services: readonly ServiceSpec[];
  /**
   * The stack's models, validated with defaults applied (the stack config's `models`). Each
   * service's `models` are built into TensorRT engines on every node its pods run on, before the
   * service starts: init containers in the service's own image compute the engine key (the same as
   * the per-host targets'), reuse the node's engine under
   * `/var/lib/jetson-fleet/engines/<namespace>/<service>/<model>/<key>/` or fetch the model from
   * `registry` (with its login) and build it there, and show it to the service read-only at its
   * `path` (its build record at `<path>.json`). A failed build keeps the pod from starting, so the
   * rollout stops on that node. The script they run is in the ConfigMap `engine-init`.
   * @default [] (no service may then have models)
   * @example config.models
   */
  readonly models?: readonly ModelSpec[];
  /**
   * Environment keys whose values are secrets, by service name (as the other deploy modes take
   * them; `secretEnvironmentOf` reads them from the stack file). Each such service gets a Secret
   * holding those values (its data a Pulumi secret, encrypted in the state) and its containers
   * read them with `valueFrom.secretKeyRef`: no value is in the workload, the state in clear or a
   * rendered YAML directory. Applied, the Secret is named by Pulumi
   * (`<name>-<service>-environment-<random>`), so a new value is a new Secret and the pods roll
   * onto it. With `renderYamlToDirectory` it is not written: the workloads read
   * `<service>-environment`, which you create in the cluster apart (see the README, "Kubernetes fleet").
   * @default {}
   * @example { inference: ["API_TOKEN"] }
   */
  readonly secretEnvironment?: Readonly<Record<string, readonly string[]>>;
  /**
   * Pinned references (`repository@sha256:…`) of the images services `build`, by image name.
   * @default {}
   * @example { inference: gpuImage.ref }
   */
  readonly images?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Pinned references of services' `image`s that name a tag, by service name: resolved by the
   * caller, as the program does with `pinServiceImages` (so external images may be given by exact
   * version tag, and pods still run digests). A service not listed must give its `image` by digest.
   * @default {}
   * @example pinServiceImages(config.services, {}, registryResolver({}))
   */
  readonly serviceImages?: Readonly<Record<string, pulumi.Input<string>>>;
  /** The namespace services are deployed to. @default "jetson-fleet" @example "vision" */
  readonly namespace?: string;
  /**
   * Rolling updates: pods replaced at once, also each service's PodDisruptionBudget.
   * @default { maxUnavailable: 1 }
   * @example { maxUnavailable: "25%" }
   */
  readonly rollout?: DeploySpec["rollout"];
  /**
   * The registry to pull from, with credentials when it needs them.
   * @default none (anonymous pulls)
   * @example { server: "registry.lab:5000", username: "fleet", password: config.requireSecret("registryPassword") }
   */
  readonly registry?: KubernetesFleetRegistry;
  /**
   * Labels of the nodes services run on (one DaemonSet pod per node).
   * @default { "kubernetes.io/arch": "arm64" }
   * @example { "jetson-fleet.io/gpu": "orin" }
   */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /**
   * Workload per service name.
   * @default { kind: "DaemonSet" } for every service
   * @example { webui: { kind: "Deployment", replicas: 2 } }
   */
  readonly workloads?: Readonly<Record<string, Workload>>;
  /**
   * GPU access. `runtime-class` fits k3s on JetPack 6 (see the README); `device-plugin` adds the
   * NVIDIA device plugin from a digest-pinned image you mirror, and `nvidia.com/gpu` limits.
   * @default { mode: "runtime-class" }
   * @example { mode: "device-plugin", image: "registry.lab:5000/nvidia/k8s-device-plugin@sha256:…" }
   */
  readonly gpu?: GpuAccess;
  /** Create the `nvidia` RuntimeClass; turn off when the cluster already defines it. @default true @example false */
  readonly runtimeClass?: boolean;
  /** Wait for each workload's rollout during `up`; off for clusters without nodes. @default true @example false */
  readonly awaitRollout?: boolean;
  /**
   * How long `up` waits for one workload's rollout (every pod updated and Ready) before it fails:
   * a pod that never gets Ready stops the rollout there, the pods not yet replaced stay on the
   * previous version, and the error names the pod's failure.
   * @default "10m"
   * @example "20m"
   */
  readonly rolloutTimeout?: string;
  /**
   * The cluster's kubeconfig (contents), kept as a Pulumi secret: the fleet builds its own
   * provider from it. Without it, the provider comes from `opts.provider`, else the ambient one.
   * @default none
   * @example config.requireSecret("kubeconfig")
   */
  readonly kubeconfig?: pulumi.Input<string>;
  /**
   * Render every object as YAML into this directory instead of applying it (for a GitOps
   * repository); not with `kubeconfig`. No secret is written there: neither the registry pull
   * secret (`registry-credentials`) nor the services' environment Secrets
   * (`<service>-environment`) are rendered, and the workloads refer to them by name; create them
   * in the cluster apart, with your secret tooling (Sealed Secrets, SOPS, External Secrets, or
   * `kubectl create secret`). The registry password is not needed then.
   * @default none (apply to the cluster)
   * @example "gitops/jetson-fleet"
   */
  readonly renderYamlToDirectory?: string;
}

interface PinnedImages {
  readonly images: Record<string, string>;
  readonly serviceImages: Record<string, string>;
}

function plainImages(images: Readonly<Record<string, pulumi.Input<string>>>): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [name, ref] of Object.entries(images)) {
    if (typeof ref !== "string") return undefined;
    out[name] = ref;
  }
  return out;
}

export class KubernetesFleet extends pulumi.ComponentResource {
  /** The namespace the services run in. */
  public readonly namespace: pulumi.Output<string>;
  /** The provider the fleet applies with, when it built one from `kubeconfig`. */
  public readonly provider: k8s.Provider | undefined;
  /** The pinned image each service runs, by service name. */
  public readonly images: pulumi.Output<Record<string, string>>;
  /** Each service's component, by service name. */
  public readonly services: Readonly<Record<string, KubernetesService>>;

  constructor(name: string, args: KubernetesFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("jetson:kubernetes:Fleet", name, {}, opts);
    const namespace = args.namespace ?? DEFAULT_NAMESPACE;
    const source = { project: pulumi.getProject(), stack: pulumi.getStack() };
    const registry = args.registry;
    const rendering = args.renderYamlToDirectory !== undefined;
    if (args.kubeconfig !== undefined && rendering) {
      throw new KubernetesFleetArgsError([
        "kubeconfig, renderYamlToDirectory: both are set; expected one of them: kubeconfig to apply to a cluster, or renderYamlToDirectory to write YAML for a GitOps repository (it needs no cluster)",
      ]);
    }
    if (registry?.username !== undefined && registry.password === undefined && !rendering) {
      throw new StackConfigError(source, [
        { path: "registry.password", message: "is missing; expected the registry password (a Pulumi secret) with registry.username" },
      ]);
    }
    const render = ({ images, serviceImages }: PinnedImages): FleetManifests =>
      fleetManifests({
        services: args.services,
        images,
        serviceImages,
        ...(args.models ? { models: args.models } : {}),
        namespace,
        ...(args.secretEnvironment ? { secretEnvironment: args.secretEnvironment } : {}),
        ...(args.rollout ? { rollout: args.rollout } : {}),
        ...(registry ? { registry: { server: registry.server, ...(registry.username ? { username: registry.username } : {}) } } : {}),
        ...(args.nodeSelector ? { nodeSelector: args.nodeSelector } : {}),
        ...(args.workloads ? { workloads: args.workloads } : {}),
        ...(args.gpu ? { gpu: args.gpu } : {}),
        ...(args.runtimeClass !== undefined ? { runtimeClass: args.runtimeClass } : {}),
        ...(args.awaitRollout !== undefined ? { awaitRollout: args.awaitRollout } : {}),
        ...(args.rolloutTimeout !== undefined ? { rolloutTimeout: args.rolloutTimeout } : {}),
        source,
      });
    // Plain references are checked here, before any resource is registered; references that are
    // outputs (a GpuImage built in this update) are checked once known, before any object that
    // depends on them is sent: every object's inputs come from the same rendering.
    const plainBuilt = plainImages(args.images ?? {});
    const plainServices = plainImages(args.serviceImages ?? {});
    const renderedNow = plainBuilt && plainServices ? render({ images: plainBuilt, serviceImages: plainServices }) : undefined;
    const fleet: pulumi.Output<FleetManifests> = pulumi
      .output({ images: args.images ?? {}, serviceImages: args.serviceImages ?? {} })
      .apply((pinned) => renderedNow ?? render(pinned as PinnedImages));
    // Which objects exist does not depend on image references: known now, for the resource graph.
    const gpuMode = args.gpu?.mode ?? "runtime-class";
    const shape = {
      runtimeClass: (args.runtimeClass ?? true) && (gpuMode === "device-plugin" || args.services.some(isGpuService)),
      // Secrets hold values: never rendered into a directory (see renderYamlToDirectory).
      pullSecret: registry?.username !== undefined && !rendering,
      devicePlugin: gpuMode === "device-plugin",
      engineScript: args.services.some((s) => s.models.length > 0),
    };

    // Rendering to a directory needs no cluster, so no kubeconfig either.
    this.provider =
      args.kubeconfig !== undefined || rendering
        ? new k8s.Provider(
            `${name}-provider`,
            {
              ...(args.kubeconfig !== undefined ? { kubeconfig: pulumi.secret(args.kubeconfig) } : {}),
              enableServerSideApply: true,
              ...(args.renderYamlToDirectory ? { renderYamlToDirectory: args.renderYamlToDirectory } : {}),
            },
            { parent: this },
          )
        : undefined;
    const child: pulumi.CustomResourceOptions = { parent: this, ...(this.provider ? { provider: this.provider } : {}) };
    const meta = (pick: (f: FleetManifests) => Manifest | undefined) => fleet.apply((f) => pick(f)?.metadata ?? { name: "" });

    const ns = new k8s.core.v1.Namespace(`${name}-namespace`, { metadata: meta((f) => f.namespace) }, child);
    const ready: pulumi.Resource[] = [ns];
    if (shape.runtimeClass) {
      ready.push(
        new k8s.node.v1.RuntimeClass(
          `${name}-runtime-class`,
          { metadata: meta((f) => f.runtimeClass), handler: NVIDIA_RUNTIME_CLASS },
          child,
        ),
      );
    }
    if (shape.pullSecret && registry?.username !== undefined && registry.password !== undefined) {
      const username = registry.username;
      ready.push(
        new k8s.core.v1.Secret(
          `${name}-registry-credentials`,
          {
            metadata: { name: PULL_SECRET_NAME, namespace, labels: { ...PART_OF } },
            type: PULL_SECRET_TYPE,
            data: pulumi.secret(
              pulumi
                .output(registry.password)
                .apply((password) => pullSecretManifest(namespace, { server: registry.server, username, password }).data),
            ),
          },
          { ...child, dependsOn: [ns] },
        ),
      );
    }
    if (shape.engineScript) {
      // The script the engine builds run (rendered to a directory too: it holds no secret).
      ready.push(
        new k8s.core.v1.ConfigMap(
          `${name}-engine-init`,
          { metadata: meta((f) => f.engineScript), data: fleet.apply((f) => f.engineScript?.["data"] as Record<string, string>) },
          { ...child, dependsOn: [ns] },
        ),
      );
    }
    if (shape.devicePlugin) {
      new k8s.apps.v1.DaemonSet(
        `${name}-device-plugin`,
        { metadata: meta((f) => f.devicePlugin), spec: fleet.apply((f) => f.devicePlugin?.["spec"] as never) },
        { ...child, dependsOn: ready },
      );
    }

    // What the fleet waits for (the models pushed to the registry, say) its workloads wait for: a
    // component's dependsOn does not reach its children.
    const external = opts?.dependsOn === undefined ? [] : Array.isArray(opts.dependsOn) ? [...opts.dependsOn] : [opts.dependsOn];
    const services: Record<string, KubernetesService> = {};
    for (const spec of args.services) {
      const rendered = fleet.apply((f) => {
        const s = f.services.find((x) => x.service === spec.name);
        if (!s) throw new Error(`fleetManifests rendered no objects for service "${spec.name}"`);
        return s;
      });
      const secretKeys = args.secretEnvironment?.[spec.name] ?? [];
      const secret = rendering ? undefined : environmentSecretManifest(namespace, spec, secretKeys);
      services[spec.name] = new KubernetesService(
        `${name}-${spec.name}`,
        {
          host: namespace,
          service: rendered.apply((s) => pinnedService(spec, s.image)),
          ...(secretKeys.length ? { secretEnvironment: secretKeys } : {}),
          ...(secret ? { environmentSecretManifest: pulumi.secret(secret) } : {}),
          ...(args.workloads?.[spec.name] ? { workload: args.workloads[spec.name] } : {}),
          workloadManifest: rendered.apply((s) => s.workload),
          disruptionBudgetManifest: rendered.apply((s) => s.disruptionBudget),
        },
        { ...child, dependsOn: [...ready, ...(external as pulumi.Input<pulumi.Resource>[])] },
      );
    }
    this.services = services;
    this.namespace = ns.metadata.name;
    this.images = fleet.apply((f) => Object.fromEntries(f.services.map((s) => [s.service, s.image])));
    this.registerOutputs({ namespace: this.namespace, images: this.images });
  }
}
