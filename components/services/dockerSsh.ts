// How the containers mode's Docker providers reach each host: the machine's `ssh`, told to trust
// exactly what the stack trusts (its pinned host key, its private key) and nothing the machine
// happens to hold (its ssh config, known_hosts, agent or key files). The private key never goes to
// disk: an ssh-agent of the stack's own holds it while the Pulumi run lasts
// (`scripts/docker-ssh-agent.sh`).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import sshpk from "sshpk";

/**
 * The `pulumi-resource-docker` version every `docker.Provider` of the project asks for. npm has no
 * `@pulumi/docker` 5.1.0 and the engine loads only the plugin version a resource requests, so each
 * provider says it (the `version` resource option); the 5.2.0 SDK's inputs all exist in 5.1.0's
 * schema but `Container.deviceCgroupRules`, which stays unused until the two match.
 */
export const DOCKER_PLUGIN_VERSION = "5.1.0";

/** Loads a private key into the stack's ssh-agent and returns the agent's socket. */
export type DockerSshAgent = (privateKey: string) => string;

/** What the Docker provider's ssh needs to know about a host. */
export interface DockerSshTarget {
  /**
   * The host's pinned SSH public key; without one any key is accepted (as the command provider does).
   * @example "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI..."
   */
  readonly hostKey?: string;
  /** Seconds the TCP connect may take. @example 20 */
  readonly connectTimeout: number;
}

/** The directory under the home directory holding the agents' sockets, as ssh's `~` names it. */
const AGENT_DIR = [".ssh", "jetson-fleet"] as const;

/** The socket's name for a key: a hash of its public half, so each key has one agent. */
export function dockerSshAgentName(privateKey: string): string {
  const publicKey = sshpk.parsePrivateKey(privateKey, "auto").toPublic().toString("ssh");
  return createHash("sha256").update(`jetson-fleet docker ssh agent\0${publicKey}`).digest("hex").slice(0, 16);
}

/**
 * The Docker provider's `sshOpts` for a host whose key the agent `agentName` holds. Paths are
 * written with ssh's `~`, so the options (provider inputs in the state) are the same on every
 * machine and for every user running the stack: a run elsewhere changes no provider.
 */
export function dockerSshOptions(target: DockerSshTarget, agentName: string): string[] {
  const socket = `~/${AGENT_DIR.join("/")}/${agentName}.sock`;
  const [type, key] = (target.hostKey ?? "").trim().split(/\s+/);
  const hostKeys =
    type !== undefined && key !== undefined
      ? // %H is the name ssh looks up ("[address]:port"): the pinned key is the only one it knows.
        [`KnownHostsCommand=/bin/echo %H ${type} ${key}`, "StrictHostKeyChecking=yes"]
      : ["StrictHostKeyChecking=no", "LogLevel=ERROR"];
  return [
    "-F",
    "none",
    ...[
      "BatchMode=yes",
      `ConnectTimeout=${target.connectTimeout}`,
      "ServerAliveInterval=15",
      `IdentityAgent=${socket}`,
      `IdentityFile=${socket}.pub`,
      "IdentitiesOnly=yes",
      "UserKnownHostsFile=/dev/null",
      "GlobalKnownHostsFile=/dev/null",
      "CheckHostIP=no",
      ...hostKeys,
    ].flatMap((o) => ["-o", o]),
  ];
}

const SCRIPT = join(import.meta.dirname, "scripts", "docker-ssh-agent.sh");
const loaded = new Map<string, string>();

/**
 * The default `DockerSshAgent`: the key goes, on standard input, to an ssh-agent of its own under
 * `~/.ssh/jetson-fleet/` (created mode 0700; refused if another user owns it or can enter it),
 * which stops once this Pulumi run's language host (the program's parent, alive until the
 * update's last delete) and every other run using it have ended. Once per key per run.
 */
export const dockerSshAgent: DockerSshAgent = (privateKey) => {
  const name = dockerSshAgentName(privateKey);
  const known = loaded.get(name);
  if (known !== undefined) return known;
  const home = userInfo().homedir;
  let dir = home;
  for (const part of AGENT_DIR) {
    dir = join(dir, part);
    mkdirSync(dir, { mode: 0o700, recursive: true });
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== userInfo().uid || (st.mode & 0o077) !== 0) {
      throw new Error(
        `${dir} must be a directory of this user's, mode 0700, to hold the Docker providers' ssh-agent; fix it with chmod 700 ${dir}`,
      );
    }
  }
  const socket = join(dir, `${name}.sock`);
  // Bounded: an agent that never answers must not hang the program.
  const run = spawnSync("bash", [SCRIPT, socket, String(process.ppid)], { input: privateKey, encoding: "utf8", timeout: 30_000 });
  if (run.status !== 0) {
    throw new Error(
      `cannot start the Docker providers' ssh-agent at ${socket}: ${[run.error?.message, run.stderr].filter(Boolean).join(": ").trim()}`,
    );
  }
  loaded.set(name, socket);
  return socket;
};
