// How a host command elevates: the exact command lines, the exact standard input, and the
// sudo-password wrapper run by a real bash against a stand-in sudo that behaves like sudo -A
// (asks its askpass helper or not, never reads stdin). The real sudo is in the integration tier.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { hostCommand, hostStdin } from "../../../components/index.ts";

const WRAPPER = `'IFS= read -r password || { echo "jetson-fleet: expected the sudo password on the first line of standard input" >&2; exit 1; }
exec {pw}< <(printf "%s\\n" "$password")
unset password
SUDO_ASKPASS=$(command -v cat) sudo -A -p "/proc/$$/fd/$pw" "$@"
exit "$?"'`;

describe("hostCommand", () => {
  it("renders each elevation exactly, parameters as env assignments, the script as one argument", () => {
    const env = { A: "1", B: "two words" };
    assert.equal(hostCommand("echo hi", env, "root"), `env A\\=1 'B=two words' bash -c 'echo hi' jetson-fleet`);
    assert.equal(hostCommand("echo hi", env, "sudo"), `sudo -n env A\\=1 'B=two words' bash -c 'echo hi' jetson-fleet`);
    assert.equal(
      hostCommand("echo hi", env, "sudo-password"),
      `bash -c ${WRAPPER} jetson-fleet env A\\=1 'B=two words' bash -c 'echo hi' jetson-fleet`,
    );
  });
});

describe("hostStdin", () => {
  it("puts the password on its own first line only for sudo-password, data after it untouched", () => {
    const rows: [Parameters<typeof hostStdin>, string][] = [
      [["sudo-password", "hunter2", "services:\n  web: {}\n"], "hunter2\nservices:\n  web: {}\n"],
      [["sudo-password", "hunter2"], "hunter2\n"],
      [["sudo-password", "pw with spaces\t", "no newline at the end"], "pw with spaces\t\nno newline at the end"],
      [["sudo", "hunter2", "data\n"], "data\n"],
      [["sudo", undefined], ""],
      [["root", "hunter2", "data"], "data"],
    ];
    for (const [args, stdin] of rows) assert.equal(hostStdin(...args), stdin, JSON.stringify(args));
  });

  it("refuses a missing password and one that would spill into the data", () => {
    assert.throws(() => hostStdin("sudo-password", undefined, "data"), {
      message: "elevation sudo-password needs a sudo password; expected sudoPassword to be set",
    });
    assert.throws(() => hostStdin("sudo-password", "", "data"), { message: /needs a sudo password/ });
    assert.throws(() => hostStdin("sudo-password", "hunter2\nrm -rf /", "data"), {
      message: "the sudo password contains a line break; expected a single line",
    });
  });
});

describe("the sudo-password wrapper", () => {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-sudo-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Like sudo -A -p PROMPT: runs askpass with the prompt as its only argument when a password is
  // needed, and otherwise not; never touches stdin; records what it was given.
  writeFileSync(
    join(dir, "sudo"),
    `#!/bin/bash
set -euo pipefail
[[ $1 == -A && $2 == -p ]] || { echo "stand-in sudo: unexpected arguments: $*" >&2; exit 90; }
prompt=$3
shift 3
if [[ $ASKS == yes ]]; then "$SUDO_ASKPASS" "$prompt" >"$OUT/askpass"; fi
printf '%s\\0' "$@" >"$OUT/argv"
env >"$OUT/env"
exec "$@"
`,
  );
  chmodSync(join(dir, "sudo"), 0o755);

  /** Runs the rendered command as sshd would (`sh -c`), with `stdin`; the script saves its stdin. */
  function run(stdin: string, asks: "yes" | "no") {
    const out = mkdtempSync(join(dir, "run-"));
    const create = hostCommand(`cat >"$OUT/data"`, { STEP: "apply" }, "sudo-password");
    const r = spawnSync("sh", ["-c", create], {
      input: stdin,
      encoding: "utf8",
      // HOME: bash reads ~/.bashrc when stdin is a socket, as under sshd.
      env: { PATH: `${dir}:${process.env["PATH"] ?? ""}`, HOME: dir, OUT: out, ASKS: asks },
    });
    const read = (f: string) => (existsSync(join(out, f)) ? readFileSync(join(out, f), "utf8") : undefined);
    return { ...r, askpass: read("askpass"), data: read("data"), argv: read("argv"), env: read("env") };
  }
  const file = "services:\n  web:\n    image: x@sha256:1\n\n# hunter2 is not the password here\nlast line without newline";

  it("gives sudo the first line through askpass and the script every other byte", () => {
    const r = run(hostStdin("sudo-password", "s3cr3t pw", file), "yes");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.askpass, "s3cr3t pw\n");
    assert.equal(r.data, file);
    assert.deepEqual(r.argv?.split("\0").slice(0, -1).slice(0, 2), ["env", "STEP=apply"]);
    assert.doesNotMatch(r.argv ?? "", /s3cr3t/);
    assert.doesNotMatch(r.env ?? "", /s3cr3t/);
  });

  it("still takes the password line when sudo does not ask (NOPASSWD, cached credentials)", () => {
    const r = run(hostStdin("sudo-password", "s3cr3t pw", file), "no");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.askpass, undefined);
    assert.equal(r.data, file);
  });

  it("fails before sudo when no password line arrives", () => {
    const r = run("", "yes");
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "jetson-fleet: expected the sudo password on the first line of standard input\n");
    assert.equal(r.argv, undefined);
  });
});
