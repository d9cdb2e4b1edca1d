// The jetson-fleet program: stack config in, components out, stack outputs back.
// Config is validated once, before any resource exists; everything below works on typed specs.
import * as pulumi from "@pulumi/pulumi";
import {
  ComposeDeployment,
  ContainerDeployment,
  GpuImage,
  type HostModels,
  JetsonHost,
  KubernetesFleet,
  ModelArtifact,
  checkModelFiles,
  dockerSshAgent,
  gpuImageArgs,
  isSecretPath,
  durationSeconds,
  pinProxyImage,
  pinServiceImages,
  readBuildEnvironment,
  readStackConfig,
  registryResolver,
  secretEnvironmentOf,
  serviceEndpointsAt,
  serviceHostOf,
  stackFileName,
  updatePlans,
} from "./components/index.ts";

const config = readStackConfig();
const stackFile = stackFileName(pulumi.getStack());
const build = readBuildEnvironment(process.env, stackFile, config.images.length);
// A model file that is missing or is not the content its sha256 names is a config error too.
const projectDir = pulumi.runtime.getRootDirectory();
checkModelFiles(config.models, { project: pulumi.getProject(), stack: pulumi.getStack() }, projectDir);

// The stack's registry credentials, when it has them (the dev registry has none): hosts log in
// with them, and service tags are resolved to digests with them.
const registry = config.registry;
const login =
  registry?.username !== undefined && registry.password !== undefined
    ? { server: registry.server, username: registry.username, password: registry.password }
    : undefined;
// An address the stack encrypts stays a secret in the host's inputs and in every output naming it.
const secretAddress = config.hosts.map((_, i) => isSecretPath(["hosts", i, "address"], config.secretPaths));
// Hosts are independent: the engine bootstraps them in parallel, and one that fails leaves the
// others' progress in place.
const hosts = Object.fromEntries(
  config.hosts.map((host, i) => [
    host.name,
    new JetsonHost(host.name, {
      host: secretAddress[i] ? { ...host, address: pulumi.secret(host.address) } : host,
      runtime: config.runtime,
      production: config.production,
      // The containers mode's Docker provider reaches each host's engine as the login user.
      dockerAccess: config.deploy.target === "containers",
      ...(login ? { registry: { ...login, password: pulumi.secret(login.password) } } : {}),
    }),
  ]),
);

// Each host's key goes to the stack's ssh-agent whatever the target: a stack leaving the
// containers mode still has containers to delete, through Docker providers whose ssh finds the
// key only there (the agent lives while this run does).
for (const host of config.hosts) dockerSshAgent(host.privateKey);

// Images build and push in parallel with the host bootstrap; services deploy their digests.
const images = Object.fromEntries(
  config.images.map((spec) => [spec.name, new GpuImage(spec.name, gpuImageArgs(spec, config.registry, build))]),
);

/** What each host was before this stack changed it, by host name. */
export const hostFacts = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.facts])));
/** Each host's verification report (nvidia runtime listed, container ran), by host name. */
export const hostVerification = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.verification])));
/** Each host's Docker endpoint, by host name. */
export const dockerHosts = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.dockerHost])));
const built = Object.fromEntries(Object.entries(images).map(([name, image]) => [name, image.ref]));
/** Each built image as pushed, `repository@sha256:…`, by image name. */
export const imageRefs = pulumi.all(built);

// Services go to every host, pinned by digest: built images by their GpuImage's, external ones by
// the digest their tag resolves to now (only when there is a host to deploy to).
const kubernetes = config.deploy.target === "kubernetes";
const deployed = config.services.length > 0 && (kubernetes || config.hosts.length > 0);
// Every target runs digests: an external image's tag is resolved to its digest now, on Kubernetes too.
const resolver = registryResolver(login ? { [login.server]: login } : {});
const serviceImageRefs = deployed ? pinServiceImages(config.services, built, resolver) : {};
// The hosts' proxy, pinned the same way: their blue-green services switch behind it.
const proxy =
  deployed && !kubernetes && config.proxy
    ? { image: pinProxyImage(config.proxy, built, resolver), drainTimeoutSeconds: durationSeconds(config.proxy.drainTimeout) }
    : undefined;
// Models go to the stack's registry once per content (or are checked there), and every host
// fetches them from it; each host builds its services' engines from them, batch by batch.
const artifacts = deployed
  ? Object.fromEntries(
      config.models.map((model, i) => [
        model.name,
        new ModelArtifact(model.name, {
          model,
          projectDir,
          configKey: `models[${i}]`,
          ...(registry ? { registry: registry.server } : {}),
          ...(login ? { credentials: { username: login.username, password: pulumi.secret(login.password) } } : {}),
        }),
      ]),
    )
  : {};
const models =
  config.models.length > 0 && deployed && !kubernetes
    ? {
        models: config.models,
        sources: Object.fromEntries(Object.entries(artifacts).map(([name, a]) => [name, { location: a.location, ready: a.step }])),
        ...(login ? { credentials: { username: login.username, password: pulumi.secret(login.password) } } : {}),
      }
    : undefined;
// Which environment values are secrets comes with the config: it knows what the stack encrypts.
const secretEnvironment = secretEnvironmentOf(config.services, config.secretPaths);
const targets = Object.entries(hosts).map(([name, host]) => serviceHostOf(name, host));
const deployArgs = {
  hosts: targets,
  services: config.services,
  images: serviceImageRefs,
  secretEnvironment,
  maxUnavailable: config.deploy.rollout.maxUnavailable,
  ...(proxy ? { proxy } : {}),
  ...(models ? { models } : {}),
};
let results: pulumi.Output<Record<string, string>> = pulumi.output<Record<string, string>>({});
let hostModels: Readonly<Record<string, HostModels>> = {};
if (deployed) {
  switch (config.deploy.target) {
    case "compose": {
      const deployment = new ComposeDeployment("services", deployArgs);
      ({ results } = deployment);
      hostModels = deployment.models;
      break;
    }
    case "containers": {
      const deployment = new ContainerDeployment("services", {
        ...deployArgs,
        ...(login ? { registry: { ...login, password: pulumi.secret(login.password) } } : {}),
      });
      ({ results } = deployment);
      hostModels = deployment.models;
      break;
    }
    case "kubernetes": {
      // The schema requires exactly one of kubeconfig and renderYamlToDirectory for this target.
      const cluster = config.deploy.kubernetes ?? { namespace: "jetson-fleet" };
      const fleet = new KubernetesFleet(
        "fleet",
        {
          services: config.services,
          secretEnvironment,
          images: built,
          // Built images come by image name; the others as resolved.
          serviceImages: Object.fromEntries(
            Object.entries(serviceImageRefs).filter(([name]) => config.services.some((s) => s.name === name && s.image)),
          ),
          namespace: cluster.namespace,
          rollout: config.deploy.rollout,
          ...(cluster.nodeSelector ? { nodeSelector: cluster.nodeSelector } : {}),
          ...(cluster.rolloutTimeout ? { rolloutTimeout: cluster.rolloutTimeout } : {}),
          ...(registry ? { registry: { ...registry, ...(registry.password ? { password: pulumi.secret(registry.password) } : {}) } } : {}),
          ...(cluster.renderYamlToDirectory !== undefined ? { renderYamlToDirectory: cluster.renderYamlToDirectory } : {}),
          ...(cluster.kubeconfig !== undefined ? { kubeconfig: pulumi.secret(cluster.kubeconfig) } : {}),
          ...(config.models.length > 0 ? { models: config.models } : {}),
        },
        // A pod's init containers fetch the models from the registry: they must be there first.
        { dependsOn: Object.values(artifacts) },
      );
      results = fleet.images.apply((refs) => ({
        [cluster.namespace]: Object.entries(refs)
          .map(([service, image]) => `${service}=${image}`)
          .join("\n"),
      }));
      break;
    }
  }
}

/** Where each host's services answer (`address:port/protocol`), by host and service name; none on Kubernetes. */
export const serviceEndpoints = Object.fromEntries(
  deployed && !kubernetes
    ? config.hosts.map((host, i) => {
        const endpoints = serviceEndpointsAt(host.address, config.services);
        return [host.name, secretAddress[i] ? pulumi.secret(endpoints) : endpoints];
      })
    : [],
);
/** Each host's deploy report (`service=image` per line), by host name. */
export const serviceResults = results;
/** Each service's image, pinned by digest (`repository@sha256:…`), by service name. */
export const serviceImages = pulumi.all(serviceImageRefs);
/** The hosts' proxy image, pinned by digest (`repository@sha256:…`), when the stack has one. */
export const proxyImage = proxy?.image;
/** How each service is updated on its hosts (`blue-green` or `recreate`) and why, by service name; none on Kubernetes. */
export const serviceUpdates = kubernetes ? {} : updatePlans(config.services, proxy !== undefined);
/** Each model as hosts fetch it, `registry/repository@sha256:<manifest>`, by model name. */
export const modelArtifacts = pulumi.all(Object.fromEntries(Object.entries(artifacts).map(([name, a]) => [name, a.artifact])));
/** Each host's engine keys (`<service>/<model>` to the key of the engine it mounts), by host name. */
export const engineKeys = pulumi.all(Object.fromEntries(Object.entries(hostModels).map(([host, m]) => [host, m.keys])));
/** Each host's last delivery report per model (`fetched … bytes=<n>` or `present … bytes=0`), by host name. */
export const modelDeliveries = pulumi.all(Object.fromEntries(Object.entries(hostModels).map(([host, m]) => [host, m.deliveries])));
/** Services deployed to every host. */
export const services = config.services.map((s) => s.name);
/** Where services run: compose, containers or kubernetes. */
export const deployTarget = config.deploy.target;
