// Simulated Jetson hosts (tools/jetson-sim.sh): containers with systemd as PID 1, sshd on a loopback
// port and user `jetson` whose sudo takes a password, reached over real SSH with pinned host keys.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { clientKey } from "./fixtures.ts";
import { run, scratchDir } from "./services.ts";

export const JETSON_SIM_SCRIPT = join(import.meta.dirname, "..", "..", "tools", "jetson-sim.sh");

/** One line of `tools/jetson-sim.sh start`: how to reach a simulated Jetson. */
export interface SimHost {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** `ssh-ed25519 AAAA...`, as the host's sshd presents it. */
  readonly hostKey: string;
  readonly l4tRelease: string;
}

export interface SimFleet {
  readonly hosts: readonly SimHost[];
  /** OpenSSH private key text that every host accepts for `jetson`. */
  readonly privateKey: string;
  /** The same key in a file (mode 600), for `ssh -i`. */
  readonly privateKeyFile: string;
  /** jetson's sudo password. */
  readonly sudoPassword: string;
  /** Removes the containers and their volumes. */
  stop(): Promise<void>;
}

export interface StartSimsOptions {
  /** Container name prefix; tests use their own so they never touch the dev stack's sims. @default "jetson-sim-test" */
  readonly prefix?: string;
  /** @default "36.4.3" */
  readonly l4tRelease?: string;
}

function simEnv(prefix: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, JETSON_SIM_PREFIX: prefix, ...extra };
}

/** Starts (or reuses) `count` sims and waits until each one's sshd answers. A cold image build takes minutes. */
export async function startSims(count: number, options: StartSimsOptions = {}): Promise<SimFleet> {
  const prefix = options.prefix ?? "jetson-sim-test";
  const env = simEnv(prefix, {
    JETSON_SIM_AUTHORIZED_KEY: clientKey.publicKey,
    ...(options.l4tRelease ? { JETSON_SIM_L4T_RELEASE: options.l4tRelease } : {}),
  });
  const { stdout } = await run(JETSON_SIM_SCRIPT, ["start", String(count)], { env, maxBuffer: 16 * 1024 * 1024 });
  const hosts = stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as SimHost);
  const vars = await simVars(prefix);
  const dir = scratchDir("jetson-sim");
  const privateKeyFile = join(dir, "id_ed25519");
  writeFileSync(privateKeyFile, clientKey.privateKey, { mode: 0o600 });
  return {
    hosts,
    privateKey: clientKey.privateKey,
    privateKeyFile,
    sudoPassword: readFileSync(vars.JETSON_SIM_SUDO_PASSWORD_FILE ?? "", "utf8").trim(),
    stop: () => stopSims(prefix),
  };
}

export async function stopSims(prefix = "jetson-sim-test"): Promise<void> {
  await run(JETSON_SIM_SCRIPT, ["stop"], { env: simEnv(prefix) });
}

/** What `tools/jetson-sim.sh env` exports: JETSON_SIM_PRIVATE_KEY, JETSON_SIM_SUDO_PASSWORD_FILE, JETSON_SIM_REPO, ... */
export async function simVars(prefix = "jetson-sim-test"): Promise<Record<string, string>> {
  const { stdout } = await run(JETSON_SIM_SCRIPT, ["env"], { env: simEnv(prefix) });
  return Object.fromEntries([...stdout.matchAll(/^export (\w+)=(\S+)$/gm)].map((m) => [m[1] ?? "", m[2] ?? ""]));
}

export interface SshResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The remote command's exit code; 255 when ssh itself failed (refused host key, no auth, ...). */
  readonly code: number;
}

export interface SshOptions {
  /** Text written to the remote command's stdin (e.g. a password for `sudo -S`). */
  readonly input?: string;
  /** The host key to pin instead of the host's own (to prove a mismatch is refused). */
  readonly hostKey?: string;
  readonly user?: string;
}

/** Runs `command` on `host` over real SSH with the fleet's key and StrictHostKeyChecking=yes; never throws on a non-zero exit. */
export async function ssh(fleet: SimFleet, host: SimHost, command: string, options: SshOptions = {}): Promise<SshResult> {
  const dir = scratchDir("ssh");
  const knownHosts = join(dir, "known_hosts");
  writeFileSync(knownHosts, `[${host.address}]:${host.port} ${options.hostKey ?? host.hostKey}\n`);
  const args = [
    ...["-i", fleet.privateKeyFile, "-p", String(host.port)],
    ...["-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"],
    ...["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"],
    `${options.user ?? host.user}@${host.address}`,
    "--",
    command,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ stdout, stderr, code: code ?? 255 }));
    child.stdin.end(options.input ?? "");
  });
}
