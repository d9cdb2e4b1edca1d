// The services' host script as the command provider receives it (read from the file beside this module).
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** Scripts the compose mode runs on hosts. */
export const SERVICE_SCRIPTS = ["compose-apply"] as const;
export type ServiceScript = (typeof SERVICE_SCRIPTS)[number];

/** A script's full text. */
export function renderServiceScript(name: ServiceScript): string {
  return readFileSync(join(import.meta.dirname, "scripts", `${name}.sh`), "utf8");
}
