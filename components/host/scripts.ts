// The host scripts as the command provider receives them: read from the files beside this module
// (shellcheck-clean, runnable on their own), with the shared apt library inlined, and wrapped
// in one command line that passes parameters as environment variables and elevates with sudo.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { quote } from "shell-quote";

/** The scripts every host runs, in order. */
export const HOST_SCRIPTS = ["facts", "install-docker", "install-nvidia-toolkit", "configure-docker", "verify"] as const;
/** Scripts a host runs when the stack needs them: the compose tool, the registry login. */
export const OPTIONAL_HOST_SCRIPTS = ["install-compose", "registry-login"] as const;
export type HostScript = (typeof HOST_SCRIPTS)[number];
export type OptionalHostScript = (typeof OPTIONAL_HOST_SCRIPTS)[number];

const DIR = join(import.meta.dirname, "scripts");
const INLINE = /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/([a-z-]+\.sh)" # inlined by renderHostScript$/m;

/** A script's full text, self-contained (its `source`d library inlined). */
export function renderHostScript(name: HostScript | OptionalHostScript): string {
  const text = readFileSync(join(DIR, `${name}.sh`), "utf8");
  return text.replace(INLINE, (_line, lib: string) => readFileSync(join(DIR, lib), "utf8").replace(/^# shellcheck shell=bash\n/, ""));
}

/** How the remote user gets root. */
export type Elevation = "root" | "sudo" | "sudo-password";

// With `sudo-password` the remote command is this wrapper, run as the login user. It always takes
// the first line of stdin itself (bash's `read` takes a pipe byte by byte, never more) and puts it
// in a pipe of its own; sudo's askpass is `cat` of that pipe, named by the prompt (askpass gets the
// prompt as its argument). sudo -A never reads stdin, so the rest reaches the script byte for byte
// whether sudo asks (password) or not (NOPASSWD, cached credentials). The password is in no argv,
// environment or file; unread, it goes with the pipe when the wrapper exits. Not `exec sudo`: the
// pipe must stay in this process (a setuid sudo's /proc entry is root's).
const SUDO_WRAPPER = [
  `IFS= read -r password || { echo "jetson-fleet: expected the sudo password on the first line of standard input" >&2; exit 1; }`,
  `exec {pw}< <(printf "%s\\n" "$password")`,
  `unset password`,
  `SUDO_ASKPASS=$(command -v cat) sudo -A -p "/proc/$$/fd/$pw" "$@"`,
  `exit "$?"`,
].join("\n");

/**
 * The command line that runs `script` on the host with `env`, as root. Its standard input is
 * `hostStdin(elevation, password, data)`: with `sudo-password` the password's line, then `data`;
 * otherwise `data` alone. The password is never an argument, a file or in an environment.
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
      return quote(["bash", "-c", SUDO_WRAPPER, "jetson-fleet", ...run]);
  }
}

/**
 * The standard input of `hostCommand(script, env, elevation)`: with `sudo-password` the password
 * on the first line (required, one line), then `data`; otherwise `data` alone (a password is then
 * not sent). Callers never concatenate by hand, so the password cannot end up in their data.
 */
export function hostStdin(elevation: Elevation, password: string | undefined, data = ""): string {
  if (elevation !== "sudo-password") return data;
  if (password === undefined || password === "")
    throw new Error("elevation sudo-password needs a sudo password; expected sudoPassword to be set");
  // A line break would end the password early and hand its rest to the script as data.
  if (password.includes("\n")) throw new Error("the sudo password contains a line break; expected a single line");
  return `${password}\n${data}`;
}

/** A short content hash: a step's trigger, so a changed script or parameter re-runs that step. */
export function contentHash(...parts: readonly string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 16);
}
