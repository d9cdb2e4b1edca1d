// The product's main job under the real engine: `pulumi up` of the dev stack bootstraps three
// simulated Jetsons over SSH (Docker engine, NVIDIA toolkit, compose tool, daemon.json, verify) and
// deploys the default stack on them in compose mode, pinned by digest from the dev registry.
// Faults are injected for real (an SSH session cut mid-install, the dpkg lock held by a running
// dpkg, a half-installed package, dockerd stopped, a host unreachable, a wrong host key, a wrong
// L4T release) and each converges on the next `up`. A rollout of a broken image stops after the
// first batch. Every secret is searched for in the state, the engine's output and the hosts'
// process lists.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { editStackConfig, engineStack, storedState, type EngineStack } from "../support/engine.ts";
import {
  PROBE_PORT,
  PROBE_SECOND_PORT,
  devServicesWithProbe,
  recreatedProbe,
  pushProbe,
  sampleProcessLists,
  startDevFleet,
  type DevFleet,
  type Probe,
} from "../support/fleet.ts";
import { ed25519KeyPair } from "../support/fixtures.ts";
import type { SimHost } from "../support/jetson-sim.ts";
import { formatFigures, startLoad, type LoadFigures } from "../support/load.ts";
import { containerMemoryBytes } from "../support/memory.ts";
import { secretLeaks } from "../support/secrets.ts";
import { docker } from "../support/services.ts";

const STACK = "fleet";
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** A secret environment value of the probe service (`--secret --path`), which only its container may see. */
const PROBE_TOKEN = "probe-token-41c7e9d25b";

describe("the dev stack on three simulated Jetsons under pulumi up", { timeout: 90 * 60_000 }, () => {
  let fleet: DevFleet;
  let env: EngineStack;
  let probe: Probe;
  let services: Record<string, unknown>[];
  /** Everything the engine printed (preview, up, destroy, and the failures' messages). */
  let engineOutput = "";
  let processLists = "";
  const [h1, h2, h3] = [0, 1, 2];
  /** Host 1's client key after a rotation (made fresh, never committed). */
  const rotated = ed25519KeyPair();
  const host = (i: number): SimHost => fleet.hosts[i] as SimHost;

  /** Changes the stack file as a user would edit it. */
  const edit = (change: (cfg: Record<string, unknown>) => void) => editStackConfig(env, STACK, change);
  const runtime = (cfg: Record<string, unknown>) => cfg["runtime"] as { daemonJson: { "log-opts": Record<string, string> } };
  const hostsOf = (cfg: Record<string, unknown>) => cfg["hosts"] as Record<string, unknown>[];
  /** Both probes (blue-green and recreate) to `image`. */
  const setProbe = (image: string) =>
    edit((cfg) => {
      for (const entry of cfg["services"] as Record<string, unknown>[]) {
        if (entry["name"] === "probe" || entry["name"] === "probe-recreate") entry["image"] = image;
      }
    });

  /** `pulumi up`, its output kept for the secret search and the hosts' process lists sampled throughout. */
  async function up(): Promise<{ ok: true; changes: Record<string, number> } | { ok: false; message: string }> {
    const sampler = sampleProcessLists(fleet);
    try {
      // As tools/dev.sh runs it: hosts are independent, one that fails holds back no other.
      const result = await env.stack.up({ color: "never", continueOnError: true });
      engineOutput += result.stdout + result.stderr;
      return { ok: true, changes: result.summary.resourceChanges ?? {} };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      engineOutput += message;
      return { ok: false, message };
    } finally {
      processLists += await sampler.stop();
    }
  }
  async function upOk(): Promise<Record<string, number>> {
    const r = await up();
    assert.ok(r.ok, r.ok ? "" : r.message);
    return r.changes;
  }
  async function upFails(): Promise<string> {
    const r = await up();
    assert.ok(!r.ok, "expected the update to fail");
    return r.message;
  }
  const nonSame = (changes: Record<string, number>) => Object.entries(changes).filter(([op]) => op !== "same");
  const maxFile = (json: Record<string, unknown>) => (json["log-opts"] as Record<string, string> | undefined)?.["max-file"];
  const daemonJson = async (i: number) => JSON.parse(await fleet.exec(host(i), "cat /etc/docker/daemon.json")) as Record<string, unknown>;
  const containers = (i: number) => fleet.composeContainers(host(i), `jetson-fleet-${STACK}`);
  async function get(url: string): Promise<{ status: number; body: string }> {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: await res.text() };
  }

  before(
    async () => {
      fleet = await startDevFleet({
        prefix: "jetson-engine",
        addressNet: "127.0.2",
        portBase: 22100,
        publish: `8080 8554 8889 8189/udp 8088 ${PROBE_PORT} ${PROBE_SECOND_PORT}`,
      });
      probe = await pushProbe("engine");
      services = devServicesWithProbe(probe.v1, { resources: { cpus: 0.25, memory: "64m" } });
      // A second probe, recreated on update (before the probe, which stays last for its secret's path).
      services.splice(services.length - 1, 0, recreatedProbe(probe.v1, { resources: { cpus: 0.25, memory: "64m" } }));
      env = await engineStack({
        stack: STACK,
        stackFile: "Pulumi.dev.yaml",
        config: { hosts: fleet.hostsConfig(), services },
        secrets: { ...fleet.hostSecrets(), [`services[${services.length - 1}].environment.PROBE_TOKEN`]: PROBE_TOKEN },
        env: fleet.buildEnv,
      });
      // A key the host already has in daemon.json, which the stack does not manage.
      for (const h of fleet.hosts) await fleet.exec(h, `mkdir -p /etc/docker && echo '{"debug": true}' >/etc/docker/daemon.json`);
    },
    { timeout: 30 * 60_000 },
  );
  after(async () => {
    await env?.dispose().catch(() => undefined);
    await fleet?.stop();
  });

  it("previews every host step, the image and the services without touching a host", async () => {
    const before = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
    const preview = await env.stack.preview({ color: "never", diff: true });
    engineOutput += preview.stdout + preview.stderr;
    // Per host: the component, facts, four installs, configure, verify (7 steps) and per service a
    // Service; the compose projects and their apply steps; the image; the stack.
    assert.ok((preview.changeSummary["create"] ?? 0) >= 3 * 8 + 3 * (1 + 1 + services.length), JSON.stringify(preview.changeSummary));
    assert.deepEqual(await Promise.all(fleet.hosts.map((h) => fleet.logins(h))), before);
  });

  it("bootstraps through faults: an SSH session cut mid-install fails only that host, a held dpkg lock and a half-installed package are waited for and finished", async () => {
    // Host 3: a package unpacked but never configured, as an interrupted dpkg leaves it.
    await fleet.exec(
      host(h3),
      "dpkg --unpack /opt/nvidia-l4t-repo/libnvidia-container1_*.deb >/dev/null 2>&1 && dpkg -s libnvidia-container1 | grep '^Status'",
    );
    assert.match(await fleet.exec(host(h3), "dpkg-query -W -f '${Status}' libnvidia-container1"), /unpacked/);
    // Host 2: a real dpkg run holding the dpkg locks (fcntl on lock-frontend and lock) for 40 s.
    await fleet.exec(
      host(h2),
      `d=$(mktemp -d) && mkdir -p "$d/pkg/DEBIAN" && printf 'Package: lock-holder\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: test <test@example.invalid>\\nDescription: holds the dpkg lock\\n' >"$d/pkg/DEBIAN/control" && printf '#!/bin/sh\\nsleep 40\\n' >"$d/pkg/DEBIAN/preinst" && chmod 755 "$d/pkg/DEBIAN/preinst" && dpkg-deb -b "$d/pkg" /root/lock-holder.deb >/dev/null`,
    );
    await docker("exec", "-d", host(h2).name, "dpkg", "-i", "/root/lock-holder.deb");
    await fleet.exec(host(h2), "for i in $(seq 1 50); do pgrep -f 'sleep 40' >/dev/null && exit 0; sleep 0.2; done; exit 1");
    // Host 1: the SSH session that runs the engine install is cut while apt is installing.
    const cut = (async () => {
      // Waits until dpkg is unpacking the engine's package (apt hands dpkg a directory of archives
      // on a first install, so the log tells, not dpkg's arguments), then kills the sshd session
      // process the apt-get installing it runs under.
      const script = `for i in $(seq 1 3000); do
        if grep -q ' status half-installed docker.io:' /var/log/dpkg.log 2>/dev/null; then
          pid=$(pgrep -f 'apt-get .*install .*docker\\.io=' | head -n 1 || true)
          while [[ -n $pid && $pid -gt 1 ]]; do
            comm=$(ps -o comm= -p "$pid" || true)
            if [[ $comm == sshd ]]; then kill "$pid"; echo "cut session $pid"; exit 0; fi
            pid=$(ps -o ppid= -p "$pid" | tr -d ' ' || true)
          done
        fi
        sleep 0.1
      done; exit 1`;
      return fleet.exec(host(h1), script).catch((err: unknown) => String(err));
    })();
    const message = await upFails();
    assert.match(await cut, /^cut session [0-9]+/);
    assert.match(message, /jetson-engine-1-install-docker/);
    assert.doesNotMatch(message, /jetson-engine-[23]-\S+ \*\*creating failed\*\*/);
    // The other two hosts completed their bootstrap; host 2's step waited for the lock holder.
    const state = JSON.stringify(await env.stack.exportStack());
    for (const name of ["jetson-engine-2-verify", "jetson-engine-3-verify"])
      assert.ok(state.includes(`::${name}"`), `${name} is in the state`);
    assert.match(await fleet.exec(host(h2), "dpkg-query -W -f '${Status}' lock-holder"), /install ok installed/);
    assert.match(engineOutput, /dpkg is busy|Waiting for cache lock|Could not get lock/);
    assert.match(await fleet.exec(host(h3), "dpkg-query -W -f '${Status}' libnvidia-container1"), /^(install|hold) ok installed$/);

    await upOk();
    // The secret environment value reached the probe's container on every host.
    for (const [i, h] of fleet.hosts.entries()) {
      const envs = await fleet.exec(h, `docker inspect -f '{{json .Config.Env}}' ${(await containers(i))["probe"]?.id ?? "probe"}`);
      assert.ok((JSON.parse(envs) as string[]).includes(`PROBE_TOKEN=${PROBE_TOKEN}`), `${h.name}: ${envs}`);
    }
  });

  it("leaves three hosts installed, configured and verified, the planted daemon.json key kept", async () => {
    const verification = (await env.stack.outputs())["hostVerification"]?.value as Record<string, string>;
    for (const [i, h] of fleet.hosts.entries()) {
      assert.match(verification[h.name] ?? "", /^verified: nvidia runtime listed \(default\), container ran with --runtime nvidia$/);
      const json = await daemonJson(i);
      assert.equal(json["debug"], true);
      assert.equal(json["default-runtime"], "nvidia");
      assert.ok((json["runtimes"] as Record<string, unknown>)["nvidia"], "nvidia runtime registered");
      assert.deepEqual(json["log-opts"], { "max-size": "10m", "max-file": "3" });
      const held = (await fleet.exec(host(i), "apt-mark showhold")).trim().split("\n").sort();
      assert.deepEqual(held, [
        "docker-compose",
        "docker.io",
        "libnvidia-container-tools",
        "libnvidia-container1",
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
      ]);
      const versions = await fleet.exec(
        host(i),
        "dpkg-query -W -f '${Package}=${Version}\\n' docker.io docker-compose nvidia-container-toolkit",
      );
      // The pin "20.10.24+dfsg1-1+deb12u1" is the upstream version the apt version starts with (a binNMU adds +bN).
      assert.match(
        versions.trim().split("\n").sort().join(" "),
        /^docker-compose=1\.29\.2-3 docker\.io=20\.10\.24\+dfsg1-1\+deb12u1(\+b[0-9]+)? nvidia-container-toolkit=1\.16\.2-1$/,
      );
    }
  });

  it("runs the default stack healthy on every host, every image pulled by digest from the dev registry", async () => {
    const outputs = await env.stack.outputs();
    const images = outputs["serviceImages"]?.value as Record<string, string>;
    const endpoints = outputs["serviceEndpoints"]?.value as Record<string, Record<string, string[]>>;
    for (const [i, h] of fleet.hosts.entries()) {
      const running = await containers(i);
      assert.deepEqual(Object.keys(running).sort(), ["inference", "jetson-fleet-proxy", "mediamtx", "probe", "probe-recreate", "web-ui"]);
      for (const [service, c] of Object.entries(running)) {
        const pinned = service === "jetson-fleet-proxy" ? outputs["proxyImage"]?.value : images[service];
        assert.equal(c.image, pinned, `${h.name} ${service} runs the pinned image`);
        assert.match(c.image, /^127\.0\.0\.1:5000\/.+@sha256:[a-f0-9]{64}$/);
        assert.match(c.status, /^running(\/healthy)?$/, `${h.name} ${service}: ${c.status}`);
      }
      assert.deepEqual(endpoints[h.name]?.["web-ui"], [`${h.address}:8088/tcp`]);
      // Each service answers where the stack output says.
      assert.equal((await get(`http://${h.address}:8088/`)).status, 200);
      assert.equal((await get(`http://${h.address}:8080/health`)).status, 200);
      assert.equal((await get(`http://${h.address}:${PROBE_PORT}/`)).body, "1.0.0\n");
    }
    // Blue-green where it works: the web UI and the probe behind the proxy; the rest recreated.
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(outputs["serviceUpdates"]?.value as Record<string, { strategy: string }>).map(([k, v]) => [k, v.strategy]),
      ),
      { inference: "recreate", mediamtx: "recreate", "web-ui": "blue-green", "probe-recreate": "recreate", probe: "blue-green" },
    );
  });

  it("changes nothing on a second up and runs no remote command", async () => {
    const before = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
    assert.deepEqual(nonSame(await upOk()), []);
    assert.deepEqual(await Promise.all(fleet.hosts.map((h) => fleet.logins(h))), before);
  });

  it("converges a host whose dockerd was stopped when daemon.json changes, and re-verifies every host", async () => {
    await fleet.exec(host(h2), "systemctl stop docker.socket docker.service");
    edit((cfg) => (runtime(cfg).daemonJson["log-opts"]["max-file"] = "4"));
    await upOk();
    for (const i of [h1, h2, h3]) {
      assert.equal(maxFile(await daemonJson(i)), "4");
      assert.equal((await fleet.exec(host(i), "systemctl is-active docker.service")).trim(), "active");
    }
  });

  it("names an unreachable host, completes the other two, and converges it once it is back", async () => {
    await fleet.exec(host(h3), "systemctl stop ssh.socket ssh.service 2>/dev/null || systemctl stop ssh.service");
    edit((cfg) => (runtime(cfg).daemonJson["log-opts"]["max-file"] = "5"));
    const message = await upFails();
    assert.match(message, /jetson-engine-3-configure-docker/);
    assert.doesNotMatch(message, /jetson-engine-[12]-\S+ \*\*updating failed\*\*/);
    for (const i of [h1, h2]) assert.equal(maxFile(await daemonJson(i)), "5");
    assert.equal(maxFile(await daemonJson(h3)), "4");
    await fleet.exec(host(h3), "systemctl start ssh.service");
    await upOk();
    assert.equal(maxFile(await daemonJson(h3)), "5");
  });

  it("refuses a wrong host key, naming the host; a rotated client key re-runs only the facts and verify scripts", async () => {
    edit((cfg) => ((hostsOf(cfg)[h1] as Record<string, unknown>)["hostKey"] = host(h2).hostKey));
    const message = await upFails();
    assert.match(message, /jetson-engine-1-facts[\s\S]*ssh: handshake failed: ssh: host key mismatch/);
    // The failed update left the state as it was: the corrected key has nothing to redo.
    edit((cfg) => ((hostsOf(cfg)[h1] as Record<string, unknown>)["hostKey"] = host(h1).hostKey));
    assert.deepEqual(nonSame(await upOk()), []);

    // A rotated client key: the host accepts the new one, the stack's secret is replaced.
    await fleet.exec(host(h1), `echo '${rotated.publicKey}' >>/home/jetson/.ssh/authorized_keys`);
    await env.stack.setConfig("jetson-fleet:hosts[0].privateKey", { value: rotated.privateKey, secret: true }, true);
    const aptRuns = async () => Number((await fleet.exec(host(h1), "grep -c '^Start-Date' /var/log/apt/history.log || true")).trim());
    const apt = await aptRuns();
    const changes = await upOk();
    // The connection changed, nothing else: host 1's six steps, its model's fetch and engine
    // build and its compose apply are updated in place (none replaced); the install, model and
    // apply steps only proved the new key works (no apt run, no fetch or build, no service
    // touched), facts and verify ran their scripts again.
    assert.deepEqual(nonSame(changes), [["update", 9]]);
    assert.equal(await aptRuns(), apt);
    const verification = (await env.stack.outputs())["hostVerification"]?.value as Record<string, string>;
    assert.match(verification["jetson-engine-1"] ?? "", /^verified: /);
  });

  it("refuses a wrong L4T release with the message the user sees, naming the host, and changes nothing on it", async () => {
    const snapshot = () =>
      fleet.exec(
        host(h2),
        "sha256sum /etc/docker/daemon.json; dpkg-query -W -f '${Package}=${Version} ${Status}\\n'; docker ps -q --no-trunc | sort",
      );
    const before = await snapshot();
    edit((cfg) => ((hostsOf(cfg)[h2] as Record<string, unknown>)["l4tRelease"] = "35.6.0"));
    const message = await upFails();
    assert.match(message, /jetson-engine-2-facts/);
    assert.match(message, /L4T release is 36\.4\.3, expected 35\.6\.0; nothing was changed on this host/);
    assert.equal(await snapshot(), before);
    edit((cfg) => ((hostsOf(cfg)[h2] as Record<string, unknown>)["l4tRelease"] = "36.4.3"));
    await upOk();
  });

  it("updates the blue-green probe behind each host's proxy under load with 0 failed requests, and measures the recreated one", async () => {
    // Both probes answer from this machine through the sims' published ports: the blue-green one
    // through the proxy (18080), the recreated one on its own port (18081).
    const load = startLoad(
      fleet.hosts.flatMap((h) => [
        { name: `${h.name} probe (blue-green)`, url: `http://${h.address}:${PROBE_PORT}/` },
        { name: `${h.name} probe-recreate`, url: `http://${h.address}:${PROBE_SECOND_PORT}/` },
      ]),
    );
    let figures: Record<string, LoadFigures>;
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      load.mark("up");
      setProbe(probe.v2);
      await upOk();
    } finally {
      figures = await load.stop();
    }
    for (const h of fleet.hosts) {
      const bg = figures[`${h.name} probe (blue-green)`] ?? assert.fail("no figures");
      const rc = figures[`${h.name} probe-recreate`] ?? assert.fail("no figures");
      console.log(formatFigures(`good update, compose, ${h.name}, probe (blue-green)`, bg));
      console.log(formatFigures(`good update, compose, ${h.name}, probe-recreate (recreate)`, rc));
      assert.equal(bg.failed, 0, `${h.name}: requests failed during the blue-green update`);
      assert.ok((bg.answers["2.0.0"] ?? 0) > 0 && (bg.answers["1.0.0"] ?? 0) > 0, JSON.stringify(bg.answers));
      assert.equal((await get(`http://${h.address}:${PROBE_PORT}/`)).body, "2.0.0\n");
      assert.equal((await get(`http://${h.address}:${PROBE_SECOND_PORT}/`)).body, "2.0.0\n");
    }
    // The proxy's cost on each host, as its cgroup counts it.
    for (const h of fleet.hosts) {
      const id = (await fleet.exec(h, "docker ps -q --filter label=com.docker.compose.service=jetson-fleet-proxy")).trim();
      const bytes = await containerMemoryBytes((script) => fleet.exec(h, script), id);
      console.log(`proxy memory, compose, ${h.name}: ${(bytes / 1024 ** 2).toFixed(1)} MiB`);
    }
  });

  it("never sends a request to a broken release of the blue-green probe: it is removed, traffic stays, the rollout stops after the first batch", async () => {
    const before = await Promise.all(fleet.hosts.map((_, i) => containers(i)));
    const load = startLoad(fleet.hosts.map((h) => ({ name: h.name, url: `http://${h.address}:${PROBE_PORT}/` })));
    let figures: Record<string, LoadFigures>;
    let message: string;
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      load.mark("up");
      edit((cfg) => {
        const entry = (cfg["services"] as Record<string, unknown>[]).find((s) => s["name"] === "probe");
        if (entry) entry["image"] = probe.broken;
      });
      message = await upFails();
    } finally {
      figures = await load.stop();
    }
    assert.match(
      message,
      new RegExp(
        `host jetson-engine-1: service probe is not healthy after the update to ${escape(probe.broken)}; health output: .+; traffic stayed on the previous version \\(jetson-fleet-fleet_probe_\\d+\\), the new container was removed`,
      ),
    );
    for (const h of fleet.hosts) {
      const f = figures[h.name] ?? assert.fail("no figures");
      console.log(formatFigures(`broken release, compose, ${h.name}, probe (blue-green)`, f));
      assert.equal(f.failed, 0, `${h.name}: requests failed`);
      assert.equal(f.answers["3.0.0"], undefined, `${h.name}: the broken release answered`);
    }
    // Host 1 still runs v2 only (the broken container is gone); hosts 2 and 3 were never touched.
    assert.deepEqual(await containers(h1), before[h1]);
    assert.equal((await fleet.exec(host(h1), `docker ps -aq --filter ancestor=${probe.broken} | wc -l`)).trim(), "0");
    for (const i of [h2, h3]) assert.deepEqual(await containers(i), before[i]);
    setProbe(probe.v2);
    await upOk();
  });

  it("keeps every secret of the stack out of the state, the engine's output, the hosts' files, journals and process lists, and the logs", async () => {
    const secrets = {
      "the private key": fleet.privateKey,
      "the rotated private key": rotated.privateKey,
      "the sudo password": fleet.sudoPassword,
      "the probe's PROBE_TOKEN": PROBE_TOKEN,
    };
    assert.ok(processLists.length > 0 && engineOutput.length > 0);
    assert.match(await storedState(env, STACK), /"ciphertext": ?"v1:/, "the export holds the secrets encrypted");
    const leaks = await secretLeaks(secrets, {
      env,
      stack: STACK,
      engineOutput,
      fleet,
      processLists,
      neededOnHosts: ["the probe's PROBE_TOKEN"],
    });
    assert.deepEqual(leaks, []);
  });

  it("destroys the services on every host", async () => {
    const sampler = sampleProcessLists(fleet);
    const result = await env.stack.destroy({ color: "never" });
    engineOutput += result.stdout + result.stderr;
    processLists += await sampler.stop();
    for (const i of [h1, h2, h3]) assert.deepEqual(await containers(i), {});
    const state = await env.stack.exportStack();
    assert.deepEqual((state.deployment as { resources?: unknown[] }).resources ?? [], []);
    for (const line of fleet.privateKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
      assert.ok(
        !engineOutput.includes(line) && !processLists.includes(line),
        "the private key is in the destroy's output or process lists",
      );
    }
    assert.ok(!engineOutput.includes(fleet.sudoPassword) && !processLists.includes(fleet.sudoPassword));
  });
});
