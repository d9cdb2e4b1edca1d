// The host scripts on simulated Jetsons over real SSH, sent exactly as JetsonHost's steps send
// them (the same short command line; the sudo password, the script and its parameters on stdin):
// install, pin, merge, verify; a second run changes nothing; injected faults converge on the next
// run. A failed step's error is the script's message after a short command line, and no
// parameter shows in the host's process list while a step runs.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { RuntimeSpec } from "../../../components/config/index.ts";
import { HOST_SCRIPTS, hostCommand, hostStdin, renderHostScript, type HostScript } from "../../../components/host/scripts.ts";
import { ssh, startSims, type SimFleet, type SimHost } from "../../support/jetson-sim.ts";

const runtime = RuntimeSpec.parse({
  docker: { package: "docker.io", version: "20.10.24+dfsg1-1+deb12u1" },
  nvidiaToolkitVersion: "1.16.2-1",
  // Like a Jetson, the sims come with NVIDIA's (stand-in) L4T repository configured.
  aptSources: [],
});

function envFor(id: HostScript, l4t = "36.4.3"): Record<string, string> {
  const apt = runtime.aptSources.join("\n");
  const nvidiaDefault = String(runtime.nvidiaDefaultRuntime);
  switch (id) {
    case "facts":
      return { DOCKER_PACKAGE: runtime.docker.package, EXPECTED_L4T: l4t };
    case "install-docker":
      return { DOCKER_PACKAGE: runtime.docker.package, DOCKER_VERSION: runtime.docker.version, APT_SOURCES: apt };
    case "install-nvidia-toolkit":
      return { NVIDIA_TOOLKIT_VERSION: runtime.nvidiaToolkitVersion, APT_SOURCES: apt };
    case "configure-docker":
      return { DAEMON_JSON: JSON.stringify(runtime.daemonJson), NVIDIA_DEFAULT_RUNTIME: nvidiaDefault };
    case "verify":
      return { NVIDIA_DEFAULT_RUNTIME: nvidiaDefault };
  }
}

let fleet: SimFleet;
async function step(host: SimHost, id: HostScript, env = envFor(id)) {
  return ssh(fleet, host, hostCommand(id, "create", "sudo-password"), {
    input: hostStdin("sudo-password", fleet.sudoPassword, { script: renderHostScript(id), create: env }),
  });
}
/** Runs a root shell script on the host (sent on stdin after the sudo password). */
async function sh(host: SimHost, command: string) {
  const r = await ssh(fleet, host, "sudo -S -p '' sh -s", { input: `${fleet.sudoPassword}\n${command}\n` });
  assert.equal(r.code, 0, `${command}: ${r.stderr}`);
  return r.stdout;
}
async function bootstrap(host: SimHost): Promise<Record<HostScript, string>> {
  const out: Partial<Record<HostScript, string>> = {};
  for (const id of HOST_SCRIPTS) {
    const r = await step(host, id);
    assert.equal(r.code, 0, `${host.name} ${id} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    out[id] = r.stdout;
  }
  return out as Record<HostScript, string>;
}
/** daemon.json after a bootstrap: the host's own key, the stack's settings, the nvidia runtime as the default. */
const BOOTSTRAPPED_DAEMON_JSON = {
  "max-concurrent-downloads": 2,
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "3" },
  runtimes: { nvidia: { args: [], path: "nvidia-container-runtime" } },
  "default-runtime": "nvidia",
};
const daemonJsonOf = async (host: SimHost) => JSON.parse(await sh(host, "cat /etc/docker/daemon.json")) as Record<string, unknown>;
const dockerStarted = (host: SimHost) => sh(host, "systemctl show -p ActiveEnterTimestampMonotonic docker.service");

describe("host scripts on simulated Jetsons", { timeout: 30 * 60_000 }, () => {
  let a: SimHost;
  let b: SimHost;
  before(async () => {
    fleet = await startSims(2, { prefix: process.env["JETSON_SIM_PREFIX"] ?? "jetson-sim-bootstrap" });
    [a, b] = fleet.hosts as [SimHost, SimHost];
    // A key the host already had: it must survive the merge (a valid daemon option, or dockerd refuses to start).
    for (const h of [a, b]) await sh(h, `mkdir -p /etc/docker && echo '{"max-concurrent-downloads": 2}' > /etc/docker/daemon.json`);
  });
  after(() => fleet.stop());

  it("refuses a host whose L4T release differs, before any change", async () => {
    const r = await step(a, "facts", envFor("facts", "35.4.1"));
    assert.equal(r.code, 3);
    assert.equal(r.stderr.trim(), "L4T release is 36.4.3, expected 35.4.1; nothing was changed on this host");
    assert.equal(await sh(a, "dpkg-query -W -f='${db:Status-Status}' docker.io 2>/dev/null || true"), "");
  });

  it("fails a step with the script's message after a short command line, which holds neither script nor parameters", async () => {
    const command = hostCommand("facts", "create", "sudo-password");
    const r = await step(a, "facts", envFor("facts", "35.4.1"));
    // What the command provider's error prints: `<exit>: running <%q of the command line>:\n<stdout and stderr>`.
    const printed = `Process exited with status ${r.code}: running ${JSON.stringify(command)}:\n${r.stdout}${r.stderr}`;
    assert.ok(command.length < 1200, `${command.length} characters`);
    assert.equal(command, hostCommand("verify", "create", "sudo-password").replace("jetson-fleet\\:verify", "jetson-fleet\\:facts"));
    assert.doesNotMatch(command, /35\.4\.1|docker-ce|docker\.io|nv_tegra_release/);
    // One line for the command, then what the script printed (its facts), its message last.
    const lines = printed.trim().split("\n");
    assert.equal(lines[0], `Process exited with status 3: running ${JSON.stringify(command)}:`);
    assert.equal(lines.length, 3, printed);
    assert.equal(lines.at(-1), "L4T release is 36.4.3, expected 35.4.1; nothing was changed on this host");
  });

  it("bootstraps two hosts in parallel: pinned, merged, verified", async () => {
    const [ra, rb] = await Promise.all([bootstrap(a), bootstrap(b)]);
    for (const [h, r] of [
      [a, ra],
      [b, rb],
    ] as const) {
      const facts = JSON.parse(r.facts) as Record<string, unknown>;
      assert.equal(facts["l4tRelease"], "36.4.3");
      assert.equal(facts["dockerVersion"], "");
      // No device tree in a sim: no GPU identity.
      assert.equal(facts["gpu"], "none");
      assert.match(r.verify, /^verified: nvidia runtime listed \(default\), container ran with --runtime nvidia$/m);
      assert.deepEqual(await daemonJsonOf(h), BOOTSTRAPPED_DAEMON_JSON);
      const held = (await sh(h, "apt-mark showhold")).trim().split("\n").sort();
      assert.deepEqual(held, [
        "docker.io",
        "libnvidia-container-tools",
        "libnvidia-container1",
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
      ]);
      assert.equal((await sh(h, "dpkg-query -W -f='${Version}' nvidia-container-toolkit-base")).trim(), "1.16.2-1");
    }
  });

  it("changes nothing on a second run and does not restart Docker", async () => {
    const started = await dockerStarted(a);
    const r = await bootstrap(a);
    assert.match(r["install-docker"], /^already installed: docker\.io=/m);
    assert.match(r["install-nvidia-toolkit"], /^already installed: nvidia-container-toolkit=1\.16\.2-1/m);
    assert.match(r["configure-docker"], /^daemon\.json unchanged; Docker not restarted$/m);
    assert.equal(await dockerStarted(a), started);
  });

  it("removes the daemon.json settings the stack dropped and gives the host's own value back; Docker restarts with it", async () => {
    // The stack once set two more settings, one of them over the host's own value (2)...
    const more = { ...runtime.daemonJson, "max-concurrent-uploads": 3, "max-concurrent-downloads": 4 };
    const set = await step(a, "configure-docker", { ...envFor("configure-docker"), DAEMON_JSON: JSON.stringify(more) });
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(await daemonJsonOf(a), { ...BOOTSTRAPPED_DAEMON_JSON, "max-concurrent-uploads": 3, "max-concurrent-downloads": 4 });
    // ...and then no longer does.
    const started = await dockerStarted(a);
    const back = await step(a, "configure-docker");
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /^daemon\.json changed; restarting Docker$/m);
    assert.deepEqual(await daemonJsonOf(a), BOOTSTRAPPED_DAEMON_JSON);
    assert.notEqual(await dockerStarted(a), started);
    // What the stack manages, readable by root only (values may hold proxy credentials).
    const record = JSON.parse(await sh(a, "cat /var/lib/jetson-fleet/daemon-json.managed.json")) as { settings: { path: string[] }[] };
    assert.deepEqual(record.settings.map((s) => s.path.join(".")).sort(), ["log-driver", "log-opts.max-file", "log-opts.max-size"]);
    assert.equal((await sh(a, "stat -c %a /var/lib/jetson-fleet/daemon-json.managed.json")).trim(), "600");
    assert.match((await step(a, "verify")).stdout, /^verified:/m);
  });

  it("makes the stack's apt source list follow the config, down to none, and refreshes the package lists", async () => {
    // A second flat repository (empty) for the stack to name.
    await sh(a, "mkdir -p /opt/jf-extra && : >/opt/jf-extra/Packages");
    const source = "deb [trusted=yes] file:/opt/jf-extra ./";
    const named = await step(a, "install-docker", { ...envFor("install-docker"), APT_SOURCES: source });
    assert.equal(named.code, 0, named.stderr);
    assert.equal(await sh(a, "cat /etc/apt/sources.list.d/jetson-fleet.list"), `${source}\n`);
    assert.match(await sh(a, "ls /var/lib/apt/lists"), /^_opt_jf-extra_\._Packages$/m);
    // The config names none again (JetsonHost passes APT_SOURCES="", and its trigger changes).
    const none = await step(a, "install-docker");
    assert.equal(none.code, 0, none.stderr);
    assert.equal(await sh(a, "test -e /etc/apt/sources.list.d/jetson-fleet.list && echo present || echo absent"), "absent\n");
    assert.doesNotMatch(await sh(a, "ls /var/lib/apt/lists"), /jf-extra/, "apt-get update ran after the source went");
    assert.match(none.stdout, /^already installed: docker\.io=/m);
  });

  it("refreshes the package lists on the next run when the run that changed the apt sources failed", async () => {
    const source = "deb [trusted=yes] file:/opt/jf-later ./";
    const env = { ...envFor("install-nvidia-toolkit"), APT_SOURCES: source };
    // The repository is not there yet: apt-get update fails after the list was written.
    const failed = await step(a, "install-nvidia-toolkit", env);
    assert.notEqual(failed.code, 0);
    assert.equal(await sh(a, "cat /etc/apt/sources.list.d/jetson-fleet.list"), `${source}\n`);
    await sh(a, "mkdir -p /opt/jf-later && : >/opt/jf-later/Packages");
    const again = await step(a, "install-nvidia-toolkit", env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(await sh(a, "ls /var/lib/apt/lists"), /^_opt_jf-later_\._Packages$/m, "the list unchanged since, yet updated");
    assert.equal((await step(a, "install-nvidia-toolkit")).code, 0);
    assert.doesNotMatch(await sh(a, "ls /var/lib/apt/lists"), /jf-later/);
  });

  it("verifies whatever busybox the host has: a dynamically linked one, or none, and installs nothing for it", async () => {
    // Debian's busybox package is linked dynamically (busybox-static is the static one).
    await sh(a, "apt-get -y -q install busybox >/dev/null 2>&1");
    assert.match(await sh(a, "ldd /bin/busybox"), /libc\.so/);
    const removeImages = "docker image ls -q jetson-fleet/verify | xargs -r docker image rm -f >/dev/null";
    for (const busybox of ["dynamic", "none"]) {
      if (busybox === "none") await sh(a, "apt-get -y -q purge busybox >/dev/null 2>&1; test ! -e /bin/busybox");
      await sh(a, removeImages);
      const r = await step(a, "verify");
      assert.equal(r.code, 0, `${busybox}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^verified: nvidia runtime listed \(default\), container ran with --runtime nvidia$/m);
    }
    assert.equal(await sh(a, "dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null || true"), "");
    // One verification image on the host: the one in use.
    assert.equal((await sh(a, "docker image ls -q jetson-fleet/verify")).trim().split("\n").length, 1);
  });

  it("converges after dockerd was stopped", async () => {
    await sh(b, "systemctl stop docker.service docker.socket");
    assert.notEqual((await step(b, "verify")).code, 0, "verification fails while the engine is down");
    const r = await step(b, "configure-docker");
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await step(b, "verify")).code, 0);
  });

  it("waits for the dpkg lock another package manager holds while an install must run, then installs", async () => {
    // Something to install: the top package of the toolkit is gone.
    await sh(b, "apt-mark unhold nvidia-container-toolkit >/dev/null; apt-get -y -q remove nvidia-container-toolkit >/dev/null 2>&1");
    // Another package manager at work: dpkg itself, configuring a package whose postinst takes a
    // while, holds the locks apt and dpkg take (fcntl locks on /var/lib/dpkg/lock-frontend and lock).
    await sh(
      b,
      `d=$(mktemp -d) && mkdir "$d/DEBIAN"
       printf 'Package: jf-slow\\nVersion: 1\\nArchitecture: all\\nMaintainer: jetson-fleet <jetson-fleet@localhost>\\nDescription: holds the dpkg lock\\n' >"$d/DEBIAN/control"
       printf '#!/bin/sh\\nsleep 25\\n' >"$d/DEBIAN/postinst" && chmod 755 "$d/DEBIAN/postinst"
       dpkg-deb -b "$d" /tmp/jf-slow.deb >/dev/null
       (setsid dpkg -i /tmp/jf-slow.deb >/tmp/jf-slow.log 2>&1 &)
       for i in $(seq 1 100); do pgrep -f 'jf-slow.postinst' >/dev/null && break; sleep 0.1; done`,
    );
    // The real lock: dpkg, asked to take it, finds it held (and does not wait).
    const probe = await ssh(fleet, b, "sudo -S -p '' dpkg --configure -a", { input: `${fleet.sudoPassword}\n` });
    assert.notEqual(probe.code, 0);
    assert.match(probe.stderr, /dpkg frontend lock (was locked|is locked) by another process/);
    const started = Date.now();
    const r = await step(b, "install-nvidia-toolkit");
    const waited = Date.now() - started;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /dpkg is busy|Waiting for cache lock/, "the step waited for the lock");
    assert.ok(waited > 15_000, `the step took ${waited} ms: it cannot have waited for the lock`);
    assert.doesNotMatch(r.stdout, /^already installed/m);
    // The other package manager finished undisturbed; the step installed after it.
    for (const [pkg, version] of [
      ["jf-slow", "1"],
      ["nvidia-container-toolkit", "1.16.2-1"],
    ])
      assert.equal(await sh(b, `dpkg-query -W -f='\${db:Status-Status} \${Version}' ${pkg}`), `installed ${version}`, pkg);
    assert.match(await sh(b, "apt-mark showhold"), /^nvidia-container-toolkit$/m);
  });

  it("finishes a half-installed package", async () => {
    // Unpacked but never configured: what an install cut off mid-way leaves.
    await sh(
      b,
      "apt-mark unhold libnvidia-container1 >/dev/null; dpkg --unpack /opt/nvidia-l4t-repo/libnvidia-container1_1.16.2-1_*.deb >/dev/null",
    );
    assert.match(await sh(b, "dpkg-query -W -f='${db:Status-Status}' libnvidia-container1"), /unpacked|half-configured/);
    const r = await step(b, "install-nvidia-toolkit");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sh(b, "dpkg-query -W -f='${db:Status-Status}' libnvidia-container1"), "installed");
  });

  it("converges after the SSH connection is cut mid-install", async () => {
    await sh(b, "apt-mark unhold docker.io >/dev/null; apt-get -y -q remove docker.io >/dev/null");
    // Start the install; once dpkg is at work, kill the sshd session that runs it: the connection
    // drops and the install gets SIGHUP mid-way.
    const cut = step(b, "install-docker");
    await sh(
      b,
      `for i in $(seq 1 600); do pgrep -x dpkg >/dev/null && break; sleep 0.1; done
       p=$(pgrep -f '^jetson-fleet:install-docker ' | head -n 1)
       while [ -n "$p" ] && [ "$(ps -o comm= -p "$p")" != sshd ]; do p=$(ps -o ppid= -p "$p" | tr -d ' '); done
       kill -9 "$p"`,
    );
    assert.notEqual((await cut).code, 0, "the install was cut off");
    const r = await bootstrap(b);
    assert.match(r.verify, /^verified:/m);
  });

  it("keeps the parameters and the sudo password out of the host's process list while a step runs", async () => {
    const marker = `jf-ps-${randomBytes(6).toString("hex")}`;
    // Like APT_SOURCES and DAEMON_JSON: several lines, quotes, a credential in a URL.
    const params = {
      ONE: `${marker}-one`,
      LINES: `deb [trusted=yes] file:/opt/${marker} ./\n# it's ${marker}-two`,
      JSON: JSON.stringify({ proxies: { "http-proxy": `http://fleet:${marker}@proxy.lab:3128` } }),
    };
    // Long enough to be sampled; then it proves its parameters and its data arrived whole.
    const script = `set -euo pipefail\nsleep 3\nprintf '%s|%s|%s|' "$ONE" "$LINES" "$JSON"\ncat\n`;
    const running = ssh(fleet, a, hostCommand("ps-probe", "create", "sudo-password"), {
      input: hostStdin("sudo-password", fleet.sudoPassword, { script, create: params }, "the data"),
    });
    const samples = await sh(a, "for i in $(seq 1 40); do ps -eo args; echo --; sleep 0.1; done");
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${params.ONE}|${params.LINES}|${params.JSON}|the data`);
    assert.match(samples, /^jetson-fleet:ps-probe \/dev\/fd\/3$/m, "sampled while the step ran");
    assert.equal(samples.includes(marker), false, "a parameter value in ps");
    assert.equal(samples.includes(fleet.sudoPassword), false, "the sudo password in ps");
  });
});
