// Real servers for the integration tier, each on a free loopback port in a temp directory, and
// stopped by the caller: OpenSSH's sshd, the distribution registry, and the Docker engine's CLI.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const run = promisify(execFile);
/** Debian's Docker client: it speaks the classic builder API to Debian's dockerd. */
export const DOCKER = "/usr/bin/docker";

export function docker(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(DOCKER, args, { maxBuffer: 64 * 1024 * 1024 });
}

/**
 * `repository@sha256:…` of a tag just pushed: the image's repo digest for that repository (an
 * image pushed to other registries before has theirs too, in no useful order).
 */
export async function pushedDigest(tag: string): Promise<string> {
  const repository = tag.replace(/:[^:/]+$/, "");
  const { stdout } = await docker("image", "inspect", "-f", "{{range .RepoDigests}}{{println .}}{{end}}", tag);
  const digest = stdout.split("\n").find((d) => d.startsWith(`${repository}@`));
  if (!digest) throw new Error(`${tag} has no repo digest in ${repository}: ${stdout}`);
  return digest;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms`);
}

export interface Sshd {
  readonly port: number;
  /** Host public keys by type, as `ssh-keyscan` prints them (without the host name). */
  readonly hostKeys: Record<"ssh-ed25519" | "ecdsa-sha2-nistp256" | "ssh-rsa", string>;
  stop(): Promise<void>;
}

/** A real sshd on 127.0.0.1 with fresh host keys of three types; it accepts `authorizedKey` for root. */
export async function startSshd(authorizedKey: string): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-sshd-"));
  const port = await freePort();
  const types = { "ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa", "ssh-rsa": "rsa" } as const;
  for (const t of Object.values(types)) await run("ssh-keygen", ["-q", "-t", t, "-N", "", "-f", join(dir, `host_${t}`)]);
  writeFileSync(join(dir, "authorized_keys"), `${authorizedKey}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      ...Object.values(types).map((t) => `HostKey ${join(dir, `host_${t}`)}`),
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PasswordAuthentication no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      `PidFile ${join(dir, "sshd.pid")}`,
    ].join("\n"),
  );
  const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: "ignore" });
  await waitFor(
    "sshd",
    async () => (await run("ssh-keyscan", ["-p", String(port), "-t", "ed25519", "127.0.0.1"])).stdout.includes("ssh-ed25519"),
    child,
  );
  const hostKeys = Object.fromEntries(
    Object.entries(types).map(([type, t]) => [
      type,
      readFileSync(join(dir, `host_${t}.pub`), "utf8")
        .trim()
        .split(" ")
        .slice(0, 2)
        .join(" "),
    ]),
  ) as Sshd["hostKeys"];
  return { port, hostKeys, stop: () => stopChild(child, dir) };
}

export interface Registry {
  /** host:port, as `registry.server` takes it. */
  readonly server: string;
  /**
   * Digests of the blobs clients have uploaded so far, in order, read from the registry's access
   * log. The registry logs a request after answering it: call `quiet()` first.
   */
  uploadedBlobs(): string[];
  /** Resolves once the registry's log has stopped growing (1 s without a new line, at most 15 s). */
  quiet(): Promise<void>;
  /** The size in bytes of a stored blob. */
  blobSize(digest: string): number;
  stop(): Promise<void>;
}

/** A real registry (distribution 2.x, Debian's docker-registry) on 127.0.0.1 with empty storage. */
export async function startRegistry(): Promise<Registry> {
  return serveRegistry();
}

export interface AuthRegistry extends Registry {
  readonly username: string;
  readonly password: string;
}

/** Like startRegistry, but every request needs basic auth (htpasswd, bcrypt) with `username`/`password`. */
export async function startAuthRegistry(username: string, password: string): Promise<AuthRegistry> {
  return { ...(await serveRegistry({ username, password })), username, password };
}

async function serveRegistry(auth?: { username: string; password: string }): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-registry-"));
  const port = await freePort();
  const server = `127.0.0.1:${port}`;
  const config = ["version: 0.1", "storage:", "  filesystem:", `    rootdirectory: ${join(dir, "data")}`, "http:", `  addr: ${server}`];
  if (auth) {
    const { stdout } = await run("htpasswd", ["-Bbn", auth.username, auth.password]);
    writeFileSync(join(dir, "htpasswd"), stdout);
    config.push("auth:", "  htpasswd:", "    realm: jetson-fleet-test", `    path: ${join(dir, "htpasswd")}`);
  }
  writeFileSync(join(dir, "config.yml"), config.join("\n"));
  const log = openSync(join(dir, "registry.log"), "a");
  const child = spawn("/usr/bin/docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", log, log] });
  closeSync(log);
  // Ready when /v2/ answers: 200 without auth, 401 (asking for credentials) with it.
  const ready = auth ? 401 : 200;
  await waitFor("docker-registry", async () => (await fetch(`http://${server}/v2/`)).status === ready, child);
  return {
    server,
    // A finished upload is the PUT that names the blob's digest (monolithic or after PATCH chunks).
    uploadedBlobs: () =>
      [
        ...readFileSync(join(dir, "registry.log"), "utf8").matchAll(
          /"PUT \/v2\/\S+\/blobs\/uploads\/\S*[?&]digest=sha256%3A([a-f0-9]{64})\S* HTTP\/[\d.]+" 201 /g,
        ),
      ].map((m) => `sha256:${m[1]}`),
    quiet: async () => {
      const size = () => statSync(join(dir, "registry.log")).size;
      const deadline = Date.now() + 15_000;
      let last = size();
      let stableSince = Date.now();
      while (Date.now() - stableSince < 1000 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        const now = size();
        if (now !== last) [last, stableSince] = [now, Date.now()];
      }
    },
    blobSize: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return statSync(join(dir, "data", "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data")).size;
    },
    stop: () => stopChild(child, dir),
  };
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}

const scratch: string[] = [];
process.once("exit", () => scratch.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** A temp directory removed when the test process exits. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `jetson-fleet-${prefix}-`));
  scratch.push(dir);
  return dir;
}
