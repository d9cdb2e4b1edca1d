// The jetson-fleet program: stack config in, components out, stack outputs back.
// Config is validated once, before any resource exists; everything below works on typed specs.
import * as pulumi from "@pulumi/pulumi";
import { GpuImage, JetsonHost, gpuImageArgs, readBuildEnvironment, readStackConfig, stackFileName } from "./components/index.ts";

const config = readStackConfig();
const build = readBuildEnvironment(process.env, stackFileName(pulumi.getStack()), config.images.length);

// Hosts are independent: the engine bootstraps them in parallel, and one that fails leaves the
// others' progress in place.
const hosts = Object.fromEntries(
  config.hosts.map((host) => [host.name, new JetsonHost(host.name, { host, runtime: config.runtime, production: config.production })]),
);

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
/** Each built image as pushed, `repository@sha256:…`, by image name. */
export const imageRefs = pulumi.all(Object.fromEntries(Object.entries(images).map(([name, image]) => [name, image.ref])));
/** Services deployed to every host. */
export const services = config.services.map((s) => s.name);
/** Where services run: compose, containers or kubernetes. */
export const deployTarget = config.deploy.target;
