// The registry login under the real engine: a stack whose registry has credentials logs root's
// Docker client on a simulated Jetson in to exactly that registry (the password on standard
// input), the program pins the service's tag to a digest with the same credentials, and the
// host pulls it. A second `up` opens no SSH session; a rotated password logs in again before the
// pull that needs it; the stack switched to the containers mode pulls with the same credentials
// through its Docker provider, and back again; credentials leaving the stack log the host out. No registry password, sudo
// password or private key line is in the state, the backend's files, the engine's output or the
// host's process lists.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { editStackConfig, engineStack, REPO, storedState, type EngineStack } from "../support/engine.ts";
import { PROBE_PORT, probeService, sampleProcessLists, startDevFleet, type DevFleet } from "../support/fleet.ts";
import type { SimHost } from "../support/jetson-sim.ts";
import { secretLeaks } from "../support/secrets.ts";
import { run, scratchDir, startAuthRegistry, type AuthRegistry } from "../support/services.ts";

const STACK = "login";
const PROJECT = `jetson-fleet-${STACK}`;
const DEV_REGISTRY = "127.0.0.1:5000";
const USERNAME = "fleet-puller";

/**
 * A password with characters a shell or JSON would mangle; `core` is its random part, which any
 * copy of it holds however it was quoted or escaped.
 */
function newPassword(label: string): { value: string; core: string } {
  const core = randomBytes(18).toString("base64url");
  return { value: `${label}-${core} $'"\\;&|*`, core };
}
const basicAuth = (username: string, password: string) => Buffer.from(`${username}:${password}`).toString("base64");

/** The htpasswd file of the running auth registry serving at `server` (from its config.yml). */
function htpasswdOf(server: string): string {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith("jetson-fleet-registry-")) continue;
    let config: string;
    try {
      config = readFileSync(join(tmpdir(), entry, "config.yml"), "utf8");
    } catch {
      continue;
    }
    const path = /^auth:\n {2}htpasswd:\n(?: {4}.*\n)*? {4}path: (.+)$/m.exec(config)?.[1];
    if (config.includes(`  addr: ${server}\n`) && path) return path;
  }
  throw new Error(`no htpasswd registry config for ${server} under ${tmpdir()}`);
}

describe("registry login on a simulated Jetson under pulumi up", { timeout: 60 * 60_000 }, () => {
  const passwords = [newPassword("first"), newPassword("rotated")] as const;
  let registry: AuthRegistry;
  let fleet: DevFleet;
  let env: EngineStack;
  let host: SimHost;
  let repository: string;
  const probe: Record<string, string> = {};
  /** Everything the engine printed (previews, ups, destroy). */
  let engineOutput = "";
  /** The host's process lists sampled during every up and the destroy. */
  let processLists = "";
  /** `pulumi stack export` after every up. */
  let exports = "";
  const stackExport = () => storedState(env, STACK);

  /** Changes the stack file's project config as a user would edit it. */
  const edit = (change: (cfg: Record<string, unknown>) => void) => editStackConfig(env, STACK, change);
  const setProbe = (image: string) =>
    edit((cfg) => {
      const entry = (cfg["services"] as Record<string, unknown>[]).find((s) => s["name"] === "probe");
      assert.ok(entry, "the stack has the probe service");
      entry["image"] = image;
    });

  /** web-probe VERSION pushed to the auth registry as `login/web-probe:VERSION` with `password`; returns `repo@sha256:…`. */
  async function pushProbe(version: string, password: string): Promise<string> {
    const local = `jetson-fleet-test/login-web-probe:${version}`;
    await run(join(REPO, "images", "web-probe", "build.sh"), [local, version, "true"]);
    // Credentials in an auth file of mode 600, never on a command line.
    const dir = scratchDir("login-push");
    const authfile = join(dir, "auth.json");
    writeFileSync(authfile, JSON.stringify({ auths: { [registry.server]: { auth: basicAuth(USERNAME, password) } } }), { mode: 0o600 });
    try {
      await run("skopeo", [
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-authfile",
        authfile,
        "--digestfile",
        join(dir, "digest"),
        `docker-daemon:${local}`,
        `docker://${repository}:${version}`,
      ]);
      const digest = readFileSync(join(dir, "digest"), "utf8").trim();
      assert.match(digest, /^sha256:[a-f0-9]{64}$/);
      return `${repository}@${digest}`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** A new password for USERNAME: the registry takes it at once (it reloads htpasswd) and refuses the old one. */
  async function rotate(password: string): Promise<void> {
    const file = htpasswdOf(registry.server);
    const { stdout } = await run("htpasswd", ["-Bbn", USERNAME, password]);
    writeFileSync(`${file}.new`, stdout, { mode: 0o600 });
    renameSync(`${file}.new`, file);
  }
  async function v2Status(password: string): Promise<number> {
    const res = await fetch(`http://${registry.server}/v2/`, { headers: { authorization: `Basic ${basicAuth(USERNAME, password)}` } });
    return res.status;
  }

  async function up(): Promise<Record<string, number>> {
    const sampler = sampleProcessLists(fleet);
    try {
      const result = await env.stack.up({ color: "never" });
      engineOutput += result.stdout + result.stderr;
      return result.summary.resourceChanges ?? {};
    } catch (err) {
      engineOutput += err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      processLists += await sampler.stop();
      exports += await stackExport();
    }
  }
  async function preview(): Promise<{ stdout: string; changeSummary: Record<string, number> }> {
    const result = await env.stack.preview({ color: "never", diff: true });
    engineOutput += result.stdout + result.stderr;
    return { stdout: result.stdout, changeSummary: result.changeSummary };
  }
  const nonSame = (changes: Record<string, number>) => Object.entries(changes).filter(([op]) => op !== "same");

  /** root's Docker client config on the host: the registries it is logged in to. */
  async function auths(): Promise<Record<string, { auth?: string }>> {
    const text = await fleet.exec(host, "cat /root/.docker/config.json 2>/dev/null || echo '{}'");
    return (JSON.parse(text) as { auths?: Record<string, { auth?: string }> }).auths ?? {};
  }
  const containers = () => fleet.composeContainers(host, PROJECT);
  /** The containers mode's probe containers (blue-green: `probe-<generation>`), by id. */
  const PROBE_CONTAINERS = `docker ps -aq --filter name='^probe(-[0-9a-f]{12})?$'`;
  /** The containers mode's probe container: image, status(/health), id. */
  async function probeContainer(): Promise<{ image: string; status: string; id: string }> {
    const [image = "", status = "", id = ""] = (
      await fleet.exec(
        host,
        `docker inspect -f '{{.Config.Image}} {{.State.Status}}{{if .State.Health}}/{{.State.Health.Status}}{{end}} {{.Id}}' $(${PROBE_CONTAINERS})`,
      )
    )
      .trim()
      .split(" ");
    return { image, status, id };
  }
  /** The probe's answer on the host's address; retried briefly while the container starts. */
  async function probeAnswer(): Promise<string> {
    let last = "";
    for (let i = 0; i < 30; i++) {
      try {
        const res = await fetch(`http://${host.address}:${PROBE_PORT}/`, { signal: AbortSignal.timeout(5_000) });
        if (res.status === 200) return await res.text();
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    return last;
  }

  before(
    async () => {
      registry = await startAuthRegistry(USERNAME, passwords[0].value);
      repository = `${registry.server}/login/web-probe`;
      fleet = await startDevFleet({
        prefix: "jetson-login",
        addressNet: "127.0.3",
        portBase: 22200,
        count: 1,
        publish: String(PROBE_PORT),
        registries: [DEV_REGISTRY, registry.server],
      });
      host = fleet.hosts[0] as SimHost;
      probe["v1"] = await pushProbe("1.0.0", passwords[0].value);
      env = await engineStack({
        stack: STACK,
        // The dev stack's runtime (docker.io pinned, Debian's docker-compose), compose mode.
        stackFile: "Pulumi.dev.yaml",
        config: {
          hosts: fleet.hostsConfig(),
          registry: { server: registry.server, username: USERNAME },
          images: [],
          services: [
            // By tag: the program resolves it to a digest with the stack's credentials.
            probeService(`${repository}:1.0.0`),
          ],
        },
        secrets: { ...fleet.hostSecrets(), "registry.password": passwords[0].value },
      });
    },
    { timeout: 30 * 60_000 },
  );
  after(async () => {
    await env?.dispose({ runProgram: true }).catch(() => undefined);
    await fleet?.stop();
    await registry?.stop();
  });

  it("previews the registry login without touching the host", async () => {
    const logins = await fleet.logins(host);
    const result = await preview();
    assert.match(result.stdout, new RegExp(`${host.name}-registry-login`));
    assert.equal(await fleet.logins(host), logins);
  });

  it("logs the host in to exactly the stack's registry and runs the service by the digest its tag resolved to", async () => {
    assert.deepEqual(await auths(), {}, "a fresh host is logged in nowhere");
    await up();
    const logged = await auths();
    assert.deepEqual(Object.keys(logged), [registry.server]);
    assert.equal(logged[registry.server]?.auth, basicAuth(USERNAME, passwords[0].value));
    assert.equal((await fleet.exec(host, "stat -c '%U %a' /root/.docker/config.json")).trim(), "root 600");
    const images = (await env.stack.outputs())["serviceImages"]?.value as Record<string, string>;
    assert.equal(images["probe"], probe["v1"]);
    const running = await containers();
    // The probe is blue-green (the dev stack has a proxy), behind the host's proxy.
    assert.deepEqual(Object.keys(running).sort(), ["jetson-fleet-proxy", "probe"]);
    assert.equal(running["probe"]?.image, probe["v1"]);
    assert.match(running["probe"]?.status ?? "", /^running\/healthy$/);
    assert.equal(await probeAnswer(), "1.0.0\n");
  });

  it("changes nothing on a second up and opens no SSH session on the host", async () => {
    const logins = await fleet.logins(host);
    const config = await fleet.exec(host, "sha256sum /root/.docker/config.json");
    assert.deepEqual(nonSame(await up()), []);
    assert.equal(await fleet.logins(host), logins);
    assert.equal(await fleet.exec(host, "sha256sum /root/.docker/config.json"), config);
  });

  it("logs in again with a rotated password before pulling a new release with it", async () => {
    await rotate(passwords[1].value);
    assert.equal(await v2Status(passwords[0].value), 401, "the registry refuses the old password");
    assert.equal(await v2Status(passwords[1].value), 200);
    probe["v2"] = await pushProbe("2.0.0", passwords[1].value);
    await env.stack.setConfig("jetson-fleet:registry.password", { value: passwords[1].value, secret: true }, true);
    setProbe(`${repository}:2.0.0`);
    const before = await containers();

    const plan = await preview();
    assert.match(plan.stdout, new RegExp(`${host.name}-registry-login`));
    assert.ok((plan.changeSummary["replace"] ?? 0) >= 1, JSON.stringify(plan.changeSummary));
    await up();

    const logged = await auths();
    assert.deepEqual(Object.keys(logged), [registry.server]);
    assert.equal(logged[registry.server]?.auth, basicAuth(USERNAME, passwords[1].value), "config.json holds the new credentials");
    const running = await containers();
    assert.equal(running["probe"]?.image, probe["v2"], "the host pulled 2.0.0 with the new credentials");
    assert.notEqual(running["probe"]?.id, before["probe"]?.id);
    assert.match(running["probe"]?.status ?? "", /^running\/healthy$/);
    assert.equal(await probeAnswer(), "2.0.0\n");
  });

  it("switches to the containers mode with one config change: the Docker provider pulls with the stack's credentials, the compose container gives way", async () => {
    probe["v3"] = await pushProbe("3.0.0", passwords[1].value);
    setProbe(`${repository}:3.0.0`);
    edit((cfg) => {
      cfg["deploy"] = { target: "containers", rollout: { maxUnavailable: 1 } };
    });
    await up();
    assert.deepEqual(await containers(), {}, "the compose project is gone");
    const running = await probeContainer();
    assert.equal(running.image, probe["v3"], "the provider pulled 3.0.0, which the host never had, with the rotated password");
    assert.equal(running.status, "running/healthy");
    assert.equal(await probeAnswer(), "3.0.0\n");
    // The provider's credentials are in the state as a secret.
    assert.match(
      exports,
      /"registryAuth":\s*\{\s*"4dabf18193072939515e22adb298388d":\s*"1b47061264138c4ac30d75fd1eb44270",\s*"ciphertext"/,
    );
  });

  it("switches back to the compose mode: the containers mode's container gives way to compose's", async () => {
    edit((cfg) => {
      cfg["deploy"] = { target: "compose", rollout: { maxUnavailable: 1 } };
    });
    await up();
    assert.equal((await fleet.exec(host, PROBE_CONTAINERS)).trim(), "", "the containers mode's probe is gone");
    const running = await containers();
    assert.equal(running["probe"]?.image, probe["v3"]);
    assert.match(running["probe"]?.status ?? "", /^running\/healthy$/);
    assert.equal(await probeAnswer(), "3.0.0\n");
  });

  it("logs the host out when the credentials leave the stack, the service untouched", async () => {
    const v3 = probe["v3"] ?? "";
    edit((cfg) => {
      cfg["registry"] = { server: registry.server };
    });
    // Without credentials the tag cannot be resolved: the image the host runs, by digest.
    setProbe(v3);
    const before = await containers();
    const changes = await up();
    assert.ok((changes["delete"] ?? 0) >= 1, JSON.stringify(changes));
    const logged = await auths();
    assert.ok(!(registry.server in logged), `config.json still holds ${registry.server}: ${JSON.stringify(Object.keys(logged))}`);
    assert.deepEqual(await containers(), before);
    assert.equal(await probeAnswer(), "3.0.0\n");
  });

  it("destroys the stack, leaving no container of the project", async () => {
    const sampler = sampleProcessLists(fleet);
    try {
      // The containers mode's providers get their ssh-agent from the program.
      const result = await env.stack.destroy({ color: "never", runProgram: true });
      engineOutput += result.stdout + result.stderr;
    } finally {
      processLists += await sampler.stop();
    }
    assert.deepEqual(await containers(), {});
    assert.equal((await fleet.exec(host, PROBE_CONTAINERS)).trim(), "");
    const state = await env.stack.exportStack();
    assert.deepEqual((state.deployment as { resources?: unknown[] }).resources ?? [], []);
  });

  it("keeps the registry passwords, the sudo password and the private key out of everything the run left", async () => {
    assert.ok(exports.length > 0 && engineOutput.length > 0 && processLists.length > 0);
    // The secrets are there, encrypted: the search looks where they would be.
    assert.match(exports, /registry-login[\s\S]*"ciphertext"/);
    const secrets: Record<string, string> = { "the sudo password": fleet.sudoPassword, "the private key": fleet.privateKey };
    for (const [i, p] of passwords.entries()) {
      secrets[`registry password ${i + 1}`] = p.value;
      secrets[`registry password ${i + 1} (its random part)`] = p.core;
      secrets[`registry credentials ${i + 1} (base64, as in config.json)`] = basicAuth(USERNAME, p.value);
    }
    const leaks = await secretLeaks(secrets, {
      env,
      stack: STACK,
      engineOutput,
      fleet,
      collected: { "the stack exports taken during the run": exports },
      processLists,
    });
    assert.deepEqual(leaks, []);
  });
});
