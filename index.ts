// The jetson-fleet program: stack config in, components out, stack outputs back.
// Config is validated once, before any resource exists; everything below works on typed specs.
import { readStackConfig } from "./components/index.ts";

const config = readStackConfig();

/** Hosts this stack manages, by name. */
export const hosts = config.hosts.map((h) => h.name);
/** Services deployed to every host. */
export const services = config.services.map((s) => s.name);
/** Where services run: compose, containers or kubernetes. */
export const deployTarget = config.deploy.target;
