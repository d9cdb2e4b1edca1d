// The jetson-fleet program: stack config in, components out, stack outputs back.
// Config is validated once, before any resource exists; everything below works on typed specs.
import * as pulumi from "@pulumi/pulumi";
import {
  ComposeDeployment,
  ContainerDeployment,
  GpuImage,
  JetsonHost,
  KubernetesFleet,
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
// Kubernetes manifests take digests only: KubernetesFleet refuses a tag there before anything is sent.
const resolver = registryResolver(login ? { [login.server]: login } : {});
const serviceImageRefs = deployed && !kubernetes ? pinServiceImages(config.services, built, resolver) : {};
// The hosts' proxy, pinned the same way: their blue-green services switch behind it.
const proxy =
  deployed && !kubernetes && config.proxy
    ? { image: pinProxyImage(config.proxy, built, resolver), drainTimeoutSeconds: durationSeconds(config.proxy.drainTimeout) }
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
};
let results: pulumi.Output<Record<string, string>> = pulumi.output<Record<string, string>>({});
if (deployed) {
  switch (config.deploy.target) {
    case "compose":
      results = new ComposeDeployment("services", deployArgs).results;
      break;
    case "containers":
      results = new ContainerDeployment("services", {
        ...deployArgs,
        ...(login ? { registry: { ...login, password: pulumi.secret(login.password) } } : {}),
      }).results;
      break;
    case "kubernetes": {
      // The schema requires exactly one of kubeconfig and renderYamlToDirectory for this target.
      const cluster = config.deploy.kubernetes ?? { namespace: "jetson-fleet" };
      const fleet = new KubernetesFleet("fleet", {
        services: config.services,
        secretEnvironment,
        images: built,
        namespace: cluster.namespace,
        rollout: config.deploy.rollout,
        ...(cluster.nodeSelector ? { nodeSelector: cluster.nodeSelector } : {}),
        ...(registry ? { registry: { ...registry, ...(registry.password ? { password: pulumi.secret(registry.password) } : {}) } } : {}),
        ...(cluster.renderYamlToDirectory !== undefined ? { renderYamlToDirectory: cluster.renderYamlToDirectory } : {}),
        ...(cluster.kubeconfig !== undefined ? { kubeconfig: pulumi.secret(cluster.kubeconfig) } : {}),
      });
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
/** Services deployed to every host. */
export const services = config.services.map((s) => s.name);
/** Where services run: compose, containers or kubernetes. */
export const deployTarget = config.deploy.target;
