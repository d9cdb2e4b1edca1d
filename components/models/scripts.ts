// The models' scripts as the command provider receives them: read from the files beside this
// module (shellcheck-clean, runnable on their own), with the OCI client library inlined.
import { join } from "node:path";
import { inlineScript } from "../host/scripts.ts";

/**
 * The models' scripts: the artifact push and verify (a local command on the machine running
 * Pulumi), and the two host steps: the model's fetch into the host's store and the engine build.
 */
export const MODEL_SCRIPTS = ["model-artifact", "model-fetch", "engine-build"] as const;
export type ModelScript = (typeof MODEL_SCRIPTS)[number];

const DIR = join(import.meta.dirname, "scripts");

/** A script's full text, self-contained (every `source`d library inlined). */
export function renderModelScript(name: ModelScript): string {
  return inlineScript(DIR, name, "renderModelScript");
}
