// The host scripts as the command provider receives them: read from the files beside this module
// (shellcheck-clean, runnable on their own), with the shared apt library inlined, and wrapped
// in one command line that passes parameters as environment variables and elevates with sudo.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { quote } from "shell-quote";

/** The scripts a host runs, in order. */
export const HOST_SCRIPTS = ["facts", "install-docker", "install-nvidia-toolkit", "configure-docker", "verify"] as const;
export type HostScript = (typeof HOST_SCRIPTS)[number];

const DIR = join(import.meta.dirname, "scripts");
const INLINE = /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/([a-z-]+\.sh)" # inlined by renderHostScript$/m;

/** A script's full text, self-contained (its `source`d library inlined). */
export function renderHostScript(name: HostScript): string {
  const text = readFileSync(join(DIR, `${name}.sh`), "utf8");
  return text.replace(INLINE, (_line, lib: string) => readFileSync(join(DIR, lib), "utf8").replace(/^# shellcheck shell=bash\n/, ""));
}

/** How the remote user gets root. */
export type Elevation = "root" | "sudo" | "sudo-password";

/**
 * The command line that runs `script` on the host with `env`, as root. With `sudo-password` the
 * password is read from standard input (never an argument, never in the environment).
 */
export function hostCommand(script: string, env: Readonly<Record<string, string>>, elevation: Elevation): string {
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const run = ["env", ...assignments, "bash", "-c", script, "jetson-fleet"];
  switch (elevation) {
    case "root":
      return quote(run);
    case "sudo":
      return quote(["sudo", "-n", ...run]);
    case "sudo-password":
      return quote(["sudo", "-S", "-p", "", ...run]);
  }
}

/** A short content hash: a step's trigger, so a changed script or parameter re-runs that step. */
export function contentHash(...parts: readonly string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 16);
}
