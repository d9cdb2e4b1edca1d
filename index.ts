// The jetson-fleet program: stack config in, components out, stack outputs back.
// Config is validated once, before any resource exists; everything below works on typed specs.
import { existsSync, readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import {
  ComposeDeployment,
  ContainerDeployment,
  GpuImage,
  JetsonHost,
  pinServiceImages,
  readStackConfig,
  registryResolver,
  secretEnvironmentOf,
  securePathsInStackFile,
  serviceHostOf,
  stackFileName,
} from "./components/index.ts";

const config = readStackConfig();

// Hosts are independent: the engine bootstraps them in parallel, and one that fails leaves the
// others' progress in place.
const hosts = Object.fromEntries(config.hosts.map((host) => [host.name, new JetsonHost(host.name, { host, runtime: config.runtime })]));

/** What each host was before this stack changed it, by host name. */
export const hostFacts = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.facts])));
/** Each host's verification report (nvidia runtime listed, container ran), by host name. */
export const hostVerification = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.verification])));
/** Each host's Docker endpoint, by host name. */
export const dockerHosts = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.dockerHost])));
// Services go to every host, pinned by digest. Images are built (and tags resolved) only when
// there is a host to deploy them to.
const deployed = config.hosts.length > 0 && config.services.length > 0;
const registry = config.registry;
const credentials =
  registry?.username !== undefined && registry.password !== undefined
    ? { [registry.server]: { username: registry.username, password: registry.password } }
    : {};
const built = Object.fromEntries(
  (deployed ? config.images.filter((img) => config.services.some((s) => s.build === img.name)) : []).map((img) => {
    const builderName = process.env["BUILDX_BUILDER"];
    if (!builderName) {
      throw new pulumi.RunError(
        `images entry "${img.name}" must be built for services[].build; expected BUILDX_BUILDER to name a buildx builder (tools/buildkit.sh start prints one)`,
      );
    }
    const image = new GpuImage(img.name, {
      context: img.context,
      dockerfile: `${img.context}/${img.dockerfile}`,
      ...(img.target ? { target: img.target } : {}),
      platforms: img.platforms,
      buildArgs: { ...img.buildArgs, ...img.baseImages },
      repository: img.repository ?? `${registry?.server ?? ""}/${img.name}`,
      ...(registry
        ? {
            registry: {
              address: registry.server,
              ...(registry.username !== undefined ? { username: registry.username } : {}),
              ...(registry.password !== undefined ? { password: registry.password } : {}),
            },
          }
        : {}),
      builderName,
    });
    return [img.name, image.ref];
  }),
);
const images = deployed ? pinServiceImages(config.services, built, registryResolver(credentials)) : {};
const stackFile = stackFileName(pulumi.getStack());
const secretEnvironment = secretEnvironmentOf(
  config.services,
  existsSync(stackFile) ? securePathsInStackFile(readFileSync(stackFile, "utf8"), pulumi.getProject()) : [],
);
const targets = Object.entries(hosts).map(([name, host]) => serviceHostOf(name, host));
const deployArgs = {
  hosts: targets,
  services: config.services,
  images,
  secretEnvironment,
  maxUnavailable: config.deploy.rollout.maxUnavailable,
};
let results: pulumi.Output<Record<string, string>> = pulumi.output<Record<string, string>>({});
if (deployed) {
  switch (config.deploy.target) {
    case "compose":
      results = new ComposeDeployment("services", deployArgs).results;
      break;
    case "containers":
      results = new ContainerDeployment("services", deployArgs).results;
      break;
    case "kubernetes":
      break;
  }
}

/** Each host's deploy report (`service=image` per line), by host name. */
export const serviceResults = results;
/** Each service's image, pinned by digest (`repository@sha256:…`), by service name. */
export const serviceImages = pulumi.all(images);
/** Services deployed to every host. */
export const services = config.services.map((s) => s.name);
/** Where services run: compose, containers or kubernetes. */
export const deployTarget = config.deploy.target;
