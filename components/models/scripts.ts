// The models' scripts as the command provider receives them: read from the files beside this
// module (shellcheck-clean, runnable on their own), with the OCI client library inlined.
import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The models' scripts: the artifact push and verify (a local command on the machine running
 * Pulumi), and the two host steps: the model's fetch into the host's store and the engine build.
 */
export const MODEL_SCRIPTS = ["model-artifact", "model-fetch", "engine-build"] as const;
export type ModelScript = (typeof MODEL_SCRIPTS)[number];

const DIR = join(import.meta.dirname, "scripts");
const INLINE = /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/([a-z-]+\.sh)" # inlined by renderModelScript$/gm;

/** A script's full text, self-contained (every `source`d library inlined). */
export function renderModelScript(name: ModelScript): string {
  const text = readFileSync(join(DIR, `${name}.sh`), "utf8");
  return text.replace(INLINE, (_line, lib: string) => readFileSync(join(DIR, lib), "utf8").replace(/^# shellcheck shell=bash\n/, ""));
}
