// The host scripts as the command provider receives them: read from the files beside this module
// (shellcheck-clean, runnable on their own), with the shared apt library inlined. A step's command
// line is one short launcher that elevates with sudo; the script and its parameters travel on
// standard input, ahead of the step's data.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { quote } from "shell-quote";

/** The scripts every host runs, in order. */
export const HOST_SCRIPTS = ["facts", "install-docker", "install-nvidia-toolkit", "configure-docker", "verify"] as const;
/** Scripts a host runs when the stack needs them: the compose tool, the login user's Docker access, the registry login. */
export const OPTIONAL_HOST_SCRIPTS = ["install-compose", "docker-access", "registry-login"] as const;
export type HostScript = (typeof HOST_SCRIPTS)[number];
export type OptionalHostScript = (typeof OPTIONAL_HOST_SCRIPTS)[number];

const DIR = join(import.meta.dirname, "scripts");

/** A script's full text, self-contained (its `source`d library inlined). */
export function renderHostScript(name: HostScript | OptionalHostScript): string {
  return inlineScript(DIR, name, "renderHostScript");
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

/** How the remote user gets root. */
export type Elevation = "root" | "sudo" | "sudo-password";

/** Which of the provider's commands runs: the step's create, update or delete. */
export type StepAction = "create" | "update" | "delete";

/** A step's parameters: the environment of its script. Names as the shell takes them, values any text but NUL. */
export type StepParams = Readonly<Record<string, string>>;

/**
 * What a step runs, as its standard input carries it: the script, and its parameters for each
 * action the step has a command for (`create` always; `update` and `delete` when the resource
 * runs the launcher for them).
 */
export interface HostStep {
  /** The script's text (bash). */
  readonly script: string;
  /** Parameters of the create (and of the provider's update when the step has no update command). */
  readonly create: StepParams;
  /** Parameters of the update command. */
  readonly update?: StepParams;
  /** Parameters of the delete command. */
  readonly delete?: StepParams;
}

// With `sudo-password` the remote command is this wrapper, run as the login user. It always takes
// the first line of stdin itself (bash's `read` takes a pipe byte by byte, never more) and puts it
// in a pipe of its own; sudo's askpass is `cat` of that pipe, named by the prompt (askpass gets the
// prompt as its argument). sudo -A never reads stdin, so the rest reaches the launcher byte for
// byte whether sudo asks (password) or not (NOPASSWD, cached credentials). The password is in no
// argv, environment or file; unread, it goes with the pipe when the wrapper exits. Not `exec sudo`:
// the pipe must stay in this process (a setuid sudo's /proc entry is root's).
const SUDO_WRAPPER = [
  `IFS= read -r password || { echo "jetson-fleet: expected the sudo password on the first line of standard input" >&2; exit 1; }`,
  `exec {pw}< <(printf "%s\\n" "$password")`,
  `unset password`,
  `SUDO_ASKPASS=$(command -v cat) sudo -A -p "/proc/$$/fd/$pw" "$@"`,
  `exit "$?"`,
].join("\n");

/** First and last line of a step on standard input; the first names the format's version. */
const STEP_HEADER = "jetson-fleet-step/1";
const STEP_END = "jetson-fleet-step/end";

// The root side of every step, one text for all: `bash -c LAUNCHER jetson-fleet:<step> <action>`.
// It reads the step from stdin (`hostStdin`): a header line of byte lengths, then the script and
// each action's parameters, each taken with `head -c` (which reads no further than asked; `read`
// takes a pipe byte by byte), then an end line, so a stream cut short runs nothing. The script
// goes to fd 3 (a pipe) first; then the action's parameters, `export` lines, are evaluated (so a
// parameter named like a variable here changes nothing that follows) and `exec` makes the script
// the only process holding them, in its environment, never in an argument. The script's stdin is
// the rest of the stream: the step's data. `ps` shows it as `jetson-fleet:<step> /dev/fd/3`.
const LAUNCHER = [
  `set -euo pipefail`,
  `fail() { echo "$0 $1: $2" >&2; exit 2; }`,
  `re="^${STEP_HEADER}( ([0-9]+|-)){4}$"`,
  `IFS= read -r h && [[ $h =~ $re ]] || fail "$1" "expected a step on standard input"`,
  `read -r _ s c u d <<<"$h"`,
  `take() { [[ $1 == - ]] || { head -c "$1"; echo .; }; }`,
  `s=$(take "$s") c=$(take "$c") u=$(take "$u") d=$(take "$d")`,
  `IFS= read -r h && [[ $h == ${STEP_END} ]] || fail "$1" "standard input ended inside the step"`,
  `case $1 in create) p=$c ;; update) p=$u ;; delete) p=$d ;; *) p= ;; esac`,
  `[[ -n $p ]] || fail "$1" "the step has no parameters for $1"`,
  `exec 3<<<"\${s%.}"`,
  `eval "\${p%.}"`,
  `exec -a "$0" bash /dev/fd/3`,
].join("\n");

const STEP_NAME = /^[a-z0-9][a-z0-9-]*$/;

/**
 * The command line of step `step`'s `action` on the host, as root: the same short launcher for
 * every step (only the step's name and the action differ), which reads the script and the
 * parameters from standard input, `hostStdin(elevation, password, step, data)`. Nothing a step
 * is given is ever an argument: parameters stay out of `ps` and out of the provider's error
 * message, which prints the command line before the script's own output.
 */
export function hostCommand(step: string, action: StepAction, elevation: Elevation): string {
  if (!STEP_NAME.test(step)) throw new Error(`step name ${JSON.stringify(step)}: expected lower-case letters, digits and "-"`);
  const run = ["bash", "-c", LAUNCHER, `jetson-fleet:${step}`, action];
  switch (elevation) {
    case "root":
      return quote(run);
    case "sudo":
      return quote(["sudo", "-n", ...run]);
    case "sudo-password":
      return quote(["bash", "-c", SUDO_WRAPPER, "jetson-fleet", ...run]);
  }
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `params` as the launcher evaluates them: `export NAME='value'` lines, sorted by name. */
function exportLines(params: StepParams): string {
  return Object.keys(params)
    .sort()
    .map((name) => {
      const value = params[name] ?? "";
      if (!PARAM_NAME.test(name)) throw new Error(`step parameter ${JSON.stringify(name)}: expected a shell variable name`);
      if (value.includes("\0")) throw new Error(`step parameter ${name} holds a NUL byte, which no environment variable can`);
      return `export ${name}='${value.replaceAll("'", `'\\''`)}'\n`;
    })
    .join("");
}

/**
 * The standard input of every command of `step` (the provider sends a step's stdin to its create,
 * update and delete alike): with `sudo-password` the password on the first line (required, one
 * line), for the wrapper; then the step, framed so nothing in it can be taken for data:
 * `jetson-fleet-step/1 S C U D` (byte lengths of the script and of the create, update and delete
 * parameters, `-` for an action without any), those bytes, `jetson-fleet-step/end`; then `data`,
 * the script's own standard input. Callers never concatenate by hand, so neither the password nor
 * a parameter can end up in the data.
 */
export function hostStdin(elevation: Elevation, password: string | undefined, step: HostStep, data = ""): string {
  let head = "";
  if (elevation === "sudo-password") {
    if (password === undefined || password === "")
      throw new Error("elevation sudo-password needs a sudo password; expected sudoPassword to be set");
    // A line break would end the password early and hand its rest to the launcher.
    if (password.includes("\n")) throw new Error("the sudo password contains a line break; expected a single line");
    head = `${password}\n`;
  }
  const parts = [step.script, ...[step.create, step.update, step.delete].map((p) => (p === undefined ? undefined : exportLines(p)))];
  const lengths = parts.map((p) => (p === undefined ? "-" : String(Buffer.byteLength(p, "utf8"))));
  return `${head}${STEP_HEADER} ${lengths.join(" ")}\n${parts.join("")}${STEP_END}\n${data}`;
}

/**
 * A step's trigger: a hash of its script and its create parameters, so a changed script or
 * parameter re-runs exactly that step (the launcher, the same for every step, is not in it).
 */
export function stepTrigger(step: HostStep): string {
  return contentHash(step.script, exportLines(step.create));
}

/** A short content hash: a step's trigger, so a changed script or parameter re-runs that step. */
export function contentHash(...parts: readonly string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 16);
}
