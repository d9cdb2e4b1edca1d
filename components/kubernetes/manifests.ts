// The Kubernetes fleet target as a pure function: validated `ServiceSpec`s in, plain Kubernetes
// objects out (namespace, RuntimeClass, one DaemonSet or Deployment and one PodDisruptionBudget per
// service, the NVIDIA device plugin when asked). The `KubernetesFleet` component applies exactly
// these objects; GitOps users can render them to YAML instead (yaml.ts). The parts live beside:
// model.ts (names, labels, shapes), validation.ts (what can be wrong), pod.ts (a service as a pod),
// units.ts (Docker units as Kubernetes quantities), secrets.ts (pull and environment Secrets).
// Everything a stack can get wrong is checked before any object exists, and reported the way the
// config loader reports problems (stack file, config key, what is expected); wrong arguments of the
// program name the argument.
import type { ServiceSpec } from "../config/schema.ts";
import { StackConfigError } from "../config/load.ts";
import type { RenderContext } from "./context.ts";
import {
  DEFAULT_NAMESPACE,
  DEFAULT_NODE_SELECTOR,
  DEVICE_PLUGIN_NAME,
  type FleetManifestOptions,
  type FleetManifests,
  type Manifest,
  NVIDIA_GPU_RESOURCE,
  NVIDIA_RUNTIME_CLASS,
  PART_OF,
  PULL_SECRET_NAME,
  SKIP_AWAIT,
  TIMEOUT_SECONDS,
  type ServiceManifests,
  type Workload,
  isGpuService,
  rolloutTimeoutSeconds,
  selectorLabels,
} from "./model.ts";
import { podSpec } from "./pod.ts";
import { environmentSecretRef } from "./secrets.ts";
import { ENGINE_SCRIPT_ANNOTATION, engineScriptManifest, engineScriptSha256 } from "./engines.ts";
import { KubernetesFleetArgsError, argumentProblems, modelProblems, serviceImage, unsupported } from "./validation.ts";

/** One service's workload and disruption budget. Problems go to `ctx.problems`. */
function serviceManifests(
  svc: ServiceSpec,
  index: number,
  workload: Workload,
  images: Readonly<Record<string, string>>,
  ctx: RenderContext,
): ServiceManifests | undefined {
  const at = `services[${index}]`;
  unsupported(svc, at, ctx);
  modelProblems(svc, at, ctx);
  const image = serviceImage(svc, at, images, ctx);
  const pod = podSpec(svc, image ?? "", at, ctx);
  if (image === undefined) return undefined;
  const labels = selectorLabels(svc.name);
  const metadata = { name: svc.name, namespace: ctx.namespace, labels };
  const workloadMetadata = { ...metadata, annotations: { ...ctx.awaitAnnotations } };
  // A new engine script is a new pod template: the pods roll and their init containers run it.
  const annotations = { ...svc.labels, ...(svc.models.length ? { [ENGINE_SCRIPT_ANNOTATION]: engineScriptSha256() } : {}) };
  const template = {
    metadata: { labels, ...(Object.keys(annotations).length ? { annotations } : {}) },
    spec: pod,
  };
  const maxUnavailable = ctx.rollout.maxUnavailable;
  const spec =
    workload.kind === "DaemonSet"
      ? {
          selector: { matchLabels: labels },
          updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable, maxSurge: 0 } },
          template,
        }
      : {
          replicas: workload.replicas,
          selector: { matchLabels: labels },
          // No surge: host ports, host networking and the one GPU per Jetson leave no room for a second pod.
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable, maxSurge: 0 } },
          template,
        };
  const environmentSecret = environmentSecretRef(svc, ctx.secretEnvironment[svc.name]);
  return {
    service: svc.name,
    image,
    ...(environmentSecret ? { environmentSecret } : {}),
    workload: { apiVersion: "apps/v1", kind: workload.kind, metadata: workloadMetadata, spec },
    disruptionBudget: {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata,
      spec: { maxUnavailable, selector: { matchLabels: labels } },
    },
  };
}

function devicePluginManifest(image: string, ctx: RenderContext): Manifest {
  const labels = selectorLabels(DEVICE_PLUGIN_NAME);
  const pluginDir = "/var/lib/kubelet/device-plugins";
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: {
      name: DEVICE_PLUGIN_NAME,
      namespace: ctx.namespace,
      labels,
      annotations: { ...ctx.awaitAnnotations },
    },
    spec: {
      selector: { matchLabels: labels },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: ctx.rollout.maxUnavailable } },
      template: {
        metadata: { labels },
        spec: {
          runtimeClassName: NVIDIA_RUNTIME_CLASS,
          ...(Object.keys(ctx.nodeSelector).length ? { nodeSelector: { ...ctx.nodeSelector } } : {}),
          ...(ctx.pullSecrets.length ? { imagePullSecrets: ctx.pullSecrets } : {}),
          tolerations: [{ key: NVIDIA_GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" }],
          containers: [
            {
              name: DEVICE_PLUGIN_NAME,
              image,
              imagePullPolicy: "IfNotPresent",
              // Jetsons have no NVML: the plugin finds the integrated GPU through the L4T (Tegra) files.
              env: [{ name: "DEVICE_DISCOVERY_STRATEGY", value: "tegra" }],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "device-plugins", mountPath: pluginDir }],
            },
          ],
          volumes: [{ name: "device-plugins", hostPath: { path: pluginDir } }],
        },
      },
    },
  };
}

/**
 * Every Kubernetes object of the fleet, as plain objects. Throws a `KubernetesFleetArgsError`
 * naming the argument when `workloads` or `gpu` is wrong, and a `StackConfigError` listing every
 * problem (stack file, config key, what is expected) when a service cannot be deployed as given,
 * e.g. an image not pinned by digest; nothing is rendered then. Secret environment values
 * (`secretEnvironment`) are not in the result: the workloads read them from each service's Secret
 * (`environmentSecret`, made with `environmentSecretManifest`).
 */
export function fleetManifests(options: FleetManifestOptions): FleetManifests {
  // The program's own arguments first: no stack config key sets them, so they are its to fix.
  const wrong = argumentProblems(options);
  if (wrong.length) throw new KubernetesFleetArgsError(wrong);
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const withLogin = options.registry?.username !== undefined;
  const awaitRollout = options.awaitRollout ?? true;
  const ctx: RenderContext = {
    problems: [],
    namespace,
    rollout: options.rollout ?? { maxUnavailable: 1 },
    nodeSelector: options.nodeSelector ?? DEFAULT_NODE_SELECTOR,
    gpu: options.gpu ?? { mode: "runtime-class" },
    pullSecrets: withLogin ? [{ name: PULL_SECRET_NAME }] : [],
    awaitAnnotations: awaitRollout ? { [TIMEOUT_SECONDS]: String(rolloutTimeoutSeconds(options.rolloutTimeout)) } : { ...SKIP_AWAIT },
    secretEnvironment: options.secretEnvironment ?? {},
    serviceImages: options.serviceImages ?? {},
    models: new Map((options.models ?? []).map((m) => [m.name, m])),
    registry: options.registry,
  };
  const services = options.services.flatMap((svc, i) => {
    const m = serviceManifests(svc, i, options.workloads?.[svc.name] ?? { kind: "DaemonSet" }, options.images ?? {}, ctx);
    return m ? [m] : [];
  });
  if (ctx.problems.length) throw new StackConfigError(options.source, ctx.problems);

  const needsRuntimeClass = (options.runtimeClass ?? true) && (ctx.gpu.mode === "device-plugin" || options.services.some(isGpuService));
  return {
    namespace: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: { ...PART_OF } } },
    ...(needsRuntimeClass
      ? {
          runtimeClass: {
            apiVersion: "node.k8s.io/v1",
            kind: "RuntimeClass",
            metadata: { name: NVIDIA_RUNTIME_CLASS, labels: { ...PART_OF } },
            handler: NVIDIA_RUNTIME_CLASS,
          },
        }
      : {}),
    ...(withLogin ? { pullSecretName: PULL_SECRET_NAME } : {}),
    ...(ctx.gpu.mode === "device-plugin" ? { devicePlugin: devicePluginManifest(ctx.gpu.image, ctx) } : {}),
    ...(options.services.some((s) => s.models.length > 0) ? { engineScript: engineScriptManifest(namespace) } : {}),
    services,
  };
}
