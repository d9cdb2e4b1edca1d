// configure-docker.sh on this machine, against a daemon.json and a record of what the stack manages
// in a scratch directory: the stand-in nvidia-ctk of the simulated Jetson, and stand-ins for
// systemctl and docker that only record their calls. What it proves: the host's own settings
// survive, the stack's dropped settings go (or go back to the host's value), and a run cut off
// anywhere is finished by the next. The real dockerd on a sim is in bootstrap.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { renderHostScript } from "../../../components/host/scripts.ts";
import { scratchDir } from "../../support/services.ts";

const NVIDIA_CTK = join(import.meta.dirname, "..", "..", "..", "images", "jetson-sim", "nvidia-toolkit", "bin", "nvidia-ctk");
const NVIDIA = { runtimes: { nvidia: { args: [], path: "nvidia-container-runtime" } }, "default-runtime": "nvidia" };
type Json = Record<string, unknown>;

/** A host: its daemon.json and record in a scratch directory, the script run as JetsonHost's step runs it. */
function host(initial?: Json) {
  const dir = scratchDir("configure-docker");
  const bin = join(dir, "bin");
  mkdirSync(bin);
  const daemonJson = join(dir, "etc", "docker", "daemon.json");
  const managed = join(dir, "var", "lib", "jetson-fleet", "daemon-json.managed.json");
  const calls = join(dir, "calls");
  writeFileSync(
    join(bin, "nvidia-ctk"),
    readFileSync(NVIDIA_CTK, "utf8")
      .replace(/@VERSION@/g, "1.16.2")
      .replace(/@COMMIT@/g, "0"),
  );
  // FAIL_AT=nvidia-ctk cuts the run off after the record's first write, before daemon.json is.
  writeFileSync(
    join(bin, "nvidia-ctk-wrapper"),
    `#!/bin/bash\n[[ \${FAIL_AT:-} != nvidia-ctk ]] || { echo "cut off" >&2; exit 137; }\nexec "${join(bin, "nvidia-ctk.real")}" "$@"\n`,
  );
  for (const stub of ["systemctl", "docker"]) writeFileSync(join(bin, stub), `#!/bin/sh\necho "${stub} $*" >>"${calls}"\n`);
  spawnSync("mv", [join(bin, "nvidia-ctk"), join(bin, "nvidia-ctk.real")]);
  spawnSync("mv", [join(bin, "nvidia-ctk-wrapper"), join(bin, "nvidia-ctk")]);
  for (const f of ["nvidia-ctk", "nvidia-ctk.real", "systemctl", "docker"]) chmodSync(join(bin, f), 0o755);
  if (initial) {
    mkdirSync(join(dir, "etc", "docker"), { recursive: true });
    writeFileSync(daemonJson, JSON.stringify(initial));
  }
  const script = renderHostScript("configure-docker");
  return {
    managed,
    configure(want: Json, env: Record<string, string> = {}) {
      writeFileSync(calls, "");
      const r = spawnSync("bash", ["-c", script], {
        encoding: "utf8",
        env: {
          // HOME: bash reads ~/.bashrc when its stdin is a socket, as node's pipes are.
          HOME: dir,
          PATH: `${bin}:${process.env["PATH"] ?? ""}`,
          DAEMON_JSON: JSON.stringify(want),
          NVIDIA_DEFAULT_RUNTIME: "true",
          DOCKER_DAEMON_JSON: daemonJson,
          DOCKER_DAEMON_JSON_MANAGED: managed,
          ...env,
        },
      });
      return { ...r, calls: readFileSync(calls, "utf8") };
    },
    ok(want: Json) {
      const r = this.configure(want);
      assert.equal(r.status, 0, r.stderr);
      return r;
    },
    daemon: () => JSON.parse(readFileSync(daemonJson, "utf8")) as Json,
    record: () => (existsSync(managed) ? (JSON.parse(readFileSync(managed, "utf8")) as Json) : undefined),
    edit(change: (d: Json) => Json) {
      writeFileSync(daemonJson, JSON.stringify(change(JSON.parse(readFileSync(daemonJson, "utf8")) as Json)));
    },
  };
}

const LOGS = { "log-driver": "json-file", "log-opts": { "max-size": "10m", "max-file": "3" } };
const HOST = { "max-concurrent-downloads": 2, debug: true, "log-opts": { labels: "site" } };

describe("configure-docker.sh: daemon.json follows the config, the host keeps its own settings", () => {
  it("removes settings the stack wrote and no longer names, down to none, and never touches the host's", () => {
    const h = host(HOST);
    h.ok({ ...LOGS, "max-concurrent-uploads": 3 });
    assert.deepEqual(h.daemon(), {
      ...HOST,
      ...LOGS,
      "log-opts": { labels: "site", ...LOGS["log-opts"] },
      "max-concurrent-uploads": 3,
      ...NVIDIA,
    });
    // One setting of an object dropped, a top-level one dropped.
    h.ok({ "log-driver": "json-file", "log-opts": { "max-size": "10m" } });
    assert.deepEqual(h.daemon(), { ...HOST, "log-driver": "json-file", "log-opts": { labels: "site", "max-size": "10m" }, ...NVIDIA });
    h.ok({});
    assert.deepEqual(h.daemon(), { ...HOST, ...NVIDIA });
    assert.deepEqual(h.record(), { settings: [] });
  });

  it("removes an object the stack created once its last setting goes", () => {
    const h = host({ debug: true });
    h.ok(LOGS);
    h.ok({ "log-driver": "json-file" });
    assert.deepEqual(h.daemon(), { debug: true, "log-driver": "json-file", ...NVIDIA });
    h.ok({});
    assert.deepEqual(h.daemon(), { debug: true, ...NVIDIA });
  });

  it("gives an overridden host setting its own value back when the stack stops setting it", () => {
    const h = host(HOST);
    h.ok({ debug: false, "max-concurrent-downloads": 6 });
    assert.deepEqual(h.daemon(), { ...HOST, debug: false, "max-concurrent-downloads": 6, ...NVIDIA });
    // A changed value of the stack's keeps the host's original, not the stack's previous one.
    h.ok({ debug: false, "max-concurrent-downloads": 8 });
    h.ok({ debug: false });
    assert.deepEqual(h.daemon(), { ...HOST, debug: false, ...NVIDIA });
    h.ok({});
    assert.deepEqual(h.daemon(), { ...HOST, ...NVIDIA });
  });

  it("leaves a setting someone changed on the host since the stack wrote it", () => {
    const h = host({});
    h.ok({ "log-level": "warn" });
    h.edit((d) => ({ ...d, "log-level": "debug" }));
    h.ok({});
    assert.deepEqual(h.daemon(), { "log-level": "debug", ...NVIDIA });
    assert.deepEqual(h.record(), { settings: [] });
  });

  it("keeps the record readable by root only: daemon.json settings may hold proxy credentials", () => {
    const h = host({});
    h.ok({ proxies: { "http-proxy": "http://fleet:s3cret@proxy.lab:3128" } });
    assert.equal(statSync(h.managed).mode & 0o777, 0o600);
  });

  it("changes nothing and restarts nothing on a second run", () => {
    const h = host(HOST);
    assert.match(h.ok(LOGS).calls, /^systemctl restart docker\.service$/m);
    const [daemon, record] = [h.daemon(), h.record()];
    const again = h.ok(LOGS);
    assert.match(again.stdout, /^daemon\.json unchanged; Docker not restarted$/m);
    assert.doesNotMatch(again.calls, /restart/);
    assert.deepEqual([h.daemon(), h.record()], [daemon, record]);
  });

  it("finishes a run cut off after the record's first write, even with another config next time", () => {
    for (const next of [{ "log-driver": "json-file" }, {}]) {
      const h = host(HOST);
      h.ok({ ...LOGS, debug: false });
      // Cut off before daemon.json is written: the record already names the new settings and the
      // dropped ones.
      const cut = h.configure({ "log-driver": "local", "max-concurrent-uploads": 3 }, { FAIL_AT: "nvidia-ctk" });
      assert.notEqual(cut.status, 0);
      assert.deepEqual(h.daemon(), { ...HOST, ...LOGS, "log-opts": { labels: "site", ...LOGS["log-opts"] }, debug: false, ...NVIDIA });
      h.ok(next);
      const reference = host(HOST);
      reference.ok({ ...LOGS, debug: false });
      reference.ok(next);
      assert.deepEqual(h.daemon(), reference.daemon(), JSON.stringify(next));
      assert.deepEqual(h.record(), reference.record(), JSON.stringify(next));
    }
  });

  it("finishes a run cut off after daemon.json was written, before the record's last write", () => {
    const h = host(HOST);
    h.ok(LOGS);
    // The record as the cut-off run left it: its first write (new and dropped settings together).
    h.configure({ "log-driver": "local" }, { FAIL_AT: "nvidia-ctk" });
    const pending = readFileSync(h.managed, "utf8");
    h.ok({ "log-driver": "local" });
    writeFileSync(h.managed, pending);
    h.ok({ "log-driver": "local" });
    h.ok({});
    assert.deepEqual(h.daemon(), { ...HOST, ...NVIDIA });
  });
});
