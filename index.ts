// The jetson-fleet program: stack config in, components out, stack outputs back.
// Config is validated once, before any resource exists; everything below works on typed specs.
import * as pulumi from "@pulumi/pulumi";
import { JetsonHost, readStackConfig } from "./components/index.ts";

const config = readStackConfig();

// Hosts are independent: the engine bootstraps them in parallel, and one that fails leaves the
// others' progress in place.
const hosts = Object.fromEntries(
  config.hosts.map((host) => [host.name, new JetsonHost(host.name, { host, runtime: config.runtime, production: config.production })]),
);

/** What each host was before this stack changed it, by host name. */
export const hostFacts = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.facts])));
/** Each host's verification report (nvidia runtime listed, container ran), by host name. */
export const hostVerification = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.verification])));
/** Each host's Docker endpoint, by host name. */
export const dockerHosts = pulumi.all(Object.fromEntries(Object.entries(hosts).map(([name, h]) => [name, h.dockerHost])));
/** Services deployed to every host. */
export const services = config.services.map((s) => s.name);
/** Where services run: compose, containers or kubernetes. */
export const deployTarget = config.deploy.target;
