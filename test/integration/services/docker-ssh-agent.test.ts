// The containers mode's ssh-agent (components/services/scripts/docker-ssh-agent.sh), run for real
// on this machine: it holds the stack's key without any file holding it, serves every run that
// attached, and goes away, socket and all, once the last of them has ended.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { REPO } from "../../support/engine.ts";
import { ed25519KeyPair } from "../../support/fixtures.ts";

const SCRIPT = join(REPO, "components", "services", "scripts", "docker-ssh-agent.sh");

describe("docker-ssh-agent.sh", () => {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-agent-"));
  const socket = join(dir, "stack.sock");
  const key = ed25519KeyPair();
  const runs: ChildProcess[] = [];
  after(async () => {
    for (const r of runs) r.kill();
    // The keeper stops its agent once no run lives: wait for it, so no agent outlives the test.
    for (let i = 0; i < 50 && existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A stand-in for a Pulumi run's language host: a process that lives until killed. */
  const run = () => {
    const child = spawn("sleep", ["600"], { stdio: "ignore" });
    runs.push(child);
    return child;
  };
  const attach = (pid: number) => spawnSync("bash", [SCRIPT, socket, String(pid)], { input: key.privateKey, encoding: "utf8" });
  const listed = () => spawnSync("ssh-add", ["-L"], { env: { ...process.env, SSH_AUTH_SOCK: socket }, encoding: "utf8" });
  const gone = async () => {
    for (let i = 0; i < 50 && existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    return !existsSync(socket);
  };
  const publicKey = key.publicKey.trim().split(/\s+/).slice(0, 2).join(" ");

  it("serves the key from memory while a run attached to it lives, then stops with its socket", async () => {
    const first = run();
    const r = attach(first.pid ?? 0);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(listed().stdout.trim().split(/\s+/).slice(0, 2).join(" "), publicKey);
    // The public half for IdentitiesOnly; no file anywhere holds the private key.
    assert.equal(readFileSync(`${socket}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" "), publicKey);
    for (const f of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
      const path = join(dir, f);
      if (spawnSync("test", ["-f", path]).status === 0) assert.doesNotMatch(readFileSync(path, "utf8"), /PRIVATE KEY/, f);
    }

    // A second run attaches to the same agent; the first ending does not stop it.
    const second = run();
    assert.equal(attach(second.pid ?? 0).status, 0);
    first.kill();
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(listed().status, 0, "the agent still serves the second run");

    second.kill();
    assert.ok(await gone(), "the socket is gone once no run lives");
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith("stack.sock")),
      [],
    );
    assert.equal(listed().status, 2, "no agent answers");
  });

  it("starts a new agent at a socket an ended one left behind", () => {
    // What a killed agent leaves: a socket path nothing answers on.
    writeFileSync(socket, "");
    assert.equal(listed().status, 2);
    const r = attach(run().pid ?? 0);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(listed().status, 0);
  });
});
