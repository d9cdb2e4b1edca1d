// The simulated Jetson (images/jetson-sim/, tools/jetson-sim.sh) behaves like a fresh JetPack host
// at the interface JetsonHost uses: real SSH with a pinned host key, the L4T release file, and a
// `jetson` user whose sudo takes a password.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ed25519KeyPair } from "../../support/fixtures.ts";
import { ssh, startSims, type SimFleet } from "../../support/jetson-sim.ts";
import { scratchDir } from "../../support/services.ts";

const RELEASE_LINE = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025";

describe("simulated Jetson hosts", { timeout: 20 * 60_000 }, () => {
  let fleet: SimFleet;
  // A prefix of one's own keeps a run off everyone else's sims.
  const prefix = process.env["JETSON_SIM_PREFIX"] ?? "jetson-sim-test";
  // A cold first run builds the base and sim images (about 4 minutes on 2 cores).
  before(async () => (fleet = await startSims(2, { prefix })), { timeout: 15 * 60_000 });
  after(() => fleet?.stop());

  it("prints one line per host with its address, port, user, host key and release", () => {
    assert.deepEqual(
      fleet.hosts.map((h) => h.name),
      [`${prefix}-1`, `${prefix}-2`],
    );
    for (const host of fleet.hosts) {
      assert.equal(host.address, "127.0.0.1");
      assert.equal(host.user, "jetson");
      assert.equal(host.l4tRelease, "36.4.3");
      assert.match(host.hostKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+$/);
    }
    assert.notEqual(fleet.hosts[0]?.port, fleet.hosts[1]?.port);
    assert.notEqual(fleet.hosts[0]?.hostKey, fleet.hosts[1]?.hostKey, "each sim has its own host keys");
  });

  it("logs in with the key, pinning the printed host key, and reads /etc/nv_tegra_release", async () => {
    for (const host of fleet.hosts) {
      const result = await ssh(fleet, host, "id -un; hostname; cat /etc/nv_tegra_release");
      assert.equal(result.code, 0, result.stderr);
      const [user, hostname, releaseLine] = result.stdout.split("\n");
      assert.equal(user, "jetson");
      assert.equal(hostname, host.name);
      assert.equal(releaseLine, RELEASE_LINE);
    }
  });

  it("runs systemd as PID 1 with no failed units", async () => {
    const host = fleet.hosts[0]!;
    const result = await ssh(fleet, host, "ps -o comm= -p 1; systemctl is-system-running --wait; systemctl --failed --no-legend");
    assert.equal(result.stdout, "systemd\nrunning\n", result.stderr);
  });

  it("gives sudo to jetson with the password, and refuses a wrong one", async () => {
    const host = fleet.hosts[1]!;
    const ok = await ssh(fleet, host, "sudo -S -p '' id -u", { input: `${fleet.sudoPassword}\n` });
    assert.deepEqual([ok.code, ok.stdout], [0, "0\n"], ok.stderr);

    const wrong = await ssh(fleet, host, "sudo -S -p '' id -u", { input: "not-the-password\n" });
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stdout, "");
    assert.match(wrong.stderr, /incorrect password attempt/);

    const none = await ssh(fleet, host, "sudo -n true");
    assert.equal(none.code, 1, "sudo needs the password: no NOPASSWD rule");
    assert.match(none.stderr, /a password is required/);
  });

  it("refuses a host whose key does not match the pinned one", async () => {
    const [first, second] = fleet.hosts as [(typeof fleet.hosts)[0], (typeof fleet.hosts)[0]];
    for (const hostKey of [second.hostKey, ed25519KeyPair().publicKey]) {
      const result = await ssh(fleet, first, "true", { hostKey });
      assert.equal(result.code, 255);
      assert.match(result.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    }
  });

  it("refuses a client key the host was not given", async () => {
    const keyFile = join(scratchDir("other-key"), "id_ed25519");
    writeFileSync(keyFile, ed25519KeyPair().privateKey, { mode: 0o600 });
    const other = { ...fleet, privateKeyFile: keyFile };
    const result = await ssh(other, fleet.hosts[0]!, "true");
    assert.equal(result.code, 255);
    assert.match(result.stderr, /Permission denied \(publickey\)/);
  });
});
