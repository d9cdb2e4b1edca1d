// The services' host scripts as the command provider receives them: read from the files beside
// this module, with the shared libraries (bind-sources, proxy) inlined.
import { readFileSync } from "node:fs";
import { join } from "node:path";

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

/**
 * The script `<dir>/<name>.sh` with each line `source "$(dirname "${BASH_SOURCE[0]}")/<lib>.sh" #
 * inlined by <renderer>` replaced by that library's text (without its `# shellcheck shell=bash`
 * header): what the command provider sends, runnable without the files beside it.
 */
export function inlineScript(dir: string, name: string, renderer: string): string {
  const inline = new RegExp(`^source "\\$\\(dirname "\\$\\{BASH_SOURCE\\[0\\]\\}"\\)/([a-z-]+\\.sh)" # inlined by ${renderer}$`, "gm");
  return readFileSync(join(dir, `${name}.sh`), "utf8").replace(inline, (_line, lib: string) =>
    readFileSync(join(dir, lib), "utf8").replace(/^# shellcheck shell=bash\n/, ""),
  );
}
