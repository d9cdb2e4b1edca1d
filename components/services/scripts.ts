// The services' host scripts as the command provider receives them: read from the files beside
// this module, with the shared libraries (bind-sources, proxy) inlined.
import { join } from "node:path";
import { inlineScript } from "../host/scripts.ts";

/**
 * Scripts the deploy modes run on hosts: the compose mode's apply, the containers mode's update
 * guard and its blue-green switch behind the stack's proxy.
 */
export const SERVICE_SCRIPTS = ["compose-apply", "container-handover", "proxy-switch"] as const;
export type ServiceScript = (typeof SERVICE_SCRIPTS)[number];

const DIR = join(import.meta.dirname, "scripts");

/** A script's full text, self-contained (every `source`d library inlined). */
export function renderServiceScript(name: ServiceScript): string {
  return inlineScript(DIR, name, "renderServiceScript");
}
