// How a host step reaches the host: the exact command lines (one short launcher for every step),
// the exact standard input (password line, framed step, data), and the launcher and the
// sudo-password wrapper run by a real bash against stand-in sudos that behave like sudo -n and
// sudo -A (ask their askpass helper or not, never read stdin). The real sudo is in the integration tier.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { quote } from "shell-quote";
import { hostCommand, hostStdin, stepTrigger, type Elevation, type HostStep, type StepAction } from "../../../components/index.ts";
import { readHostStdin } from "../../support/host-stdin.ts";

const WRAPPER = `IFS= read -r password || { echo "jetson-fleet: expected the sudo password on the first line of standard input" >&2; exit 1; }
exec {pw}< <(printf "%s\\n" "$password")
unset password
SUDO_ASKPASS=$(command -v cat) sudo -A -p "/proc/$$/fd/$pw" "$@"
exit "$?"`;

const LAUNCHER = `set -euo pipefail
fail() { echo "$0 $1: $2" >&2; exit 2; }
re="^jetson-fleet-step/1( ([0-9]+|-)){4}$"
IFS= read -r h && [[ $h =~ $re ]] || fail "$1" "expected a step on standard input"
read -r _ s c u d <<<"$h"
take() { [[ $1 == - ]] || { head -c "$1"; echo .; }; }
s=$(take "$s") c=$(take "$c") u=$(take "$u") d=$(take "$d")
IFS= read -r h && [[ $h == jetson-fleet-step/end ]] || fail "$1" "standard input ended inside the step"
case $1 in create) p=$c ;; update) p=$u ;; delete) p=$d ;; *) p= ;; esac
[[ -n $p ]] || fail "$1" "the step has no parameters for $1"
exec 3<<<"\${s%.}"
eval "\${p%.}"
exec -a "$0" bash /dev/fd/3`;

describe("hostCommand", () => {
  it("renders each elevation exactly: the launcher, the step's name and the action, nothing else", () => {
    const run = ["bash", "-c", LAUNCHER, "jetson-fleet:install-docker", "create"];
    assert.equal(hostCommand("install-docker", "create", "root"), quote(run));
    assert.equal(hostCommand("install-docker", "create", "sudo"), quote(["sudo", "-n", ...run]));
    assert.equal(hostCommand("install-docker", "create", "sudo-password"), quote(["bash", "-c", WRAPPER, "jetson-fleet", ...run]));
    assert.equal(
      hostCommand("compose-apply", "delete", "sudo"),
      quote(["sudo", "-n", "bash", "-c", LAUNCHER, "jetson-fleet:compose-apply", "delete"]),
    );
    // Short, whatever the script: the provider prints it in front of every failed step's output.
    assert.ok(hostCommand("install-docker", "create", "sudo-password").length < 1200);
  });

  it("refuses a step name the command line would have to quote", () => {
    for (const bad of ["", "Facts", "a b", "x;rm", "-x"]) {
      assert.throws(() => hostCommand(bad, "create", "root"), {
        message: `step name ${JSON.stringify(bad)}: expected lower-case letters, digits and "-"`,
      });
    }
  });
});

describe("hostStdin", () => {
  const step: HostStep = { script: "echo hi\n", create: { B: "two words", A: "1" } };
  it("frames the step after the password's line (sudo-password only), byte lengths first, the data last and untouched", () => {
    const framed = "jetson-fleet-step/1 8 34 - -\necho hi\nexport A='1'\nexport B='two words'\njetson-fleet-step/end\n";
    const rows: [Parameters<typeof hostStdin>, string][] = [
      [["sudo-password", "hunter2", step, "services:\n  web: {}\n"], `hunter2\n${framed}services:\n  web: {}\n`],
      [["sudo-password", "pw with spaces\t", step], `pw with spaces\t\n${framed}`],
      [["sudo", "hunter2", step, "data\n"], `${framed}data\n`],
      [["sudo", undefined, step], framed],
      [["root", "hunter2", step, "no newline at the end"], `${framed}no newline at the end`],
      // Every action's parameters; lengths in bytes (ü is two), quotes closed and reopened.
      [
        ["root", undefined, { script: "", create: {}, update: { Q: "it's ü" }, delete: { X: "" } }],
        "jetson-fleet-step/1 0 0 22 12\nexport Q='it'\\''s ü'\nexport X=''\njetson-fleet-step/end\n",
      ],
    ];
    for (const [args, stdin] of rows) assert.equal(hostStdin(...args), stdin, JSON.stringify(args));
    assert.deepEqual(readHostStdin(hostStdin("sudo-password", "hunter2", step, "data"), "sudo-password"), {
      password: "hunter2",
      ...step,
      data: "data",
    });
  });

  it("refuses a missing password, one that would spill into the step, and parameters no environment can hold", () => {
    assert.throws(() => hostStdin("sudo-password", undefined, step, "data"), {
      message: "elevation sudo-password needs a sudo password; expected sudoPassword to be set",
    });
    assert.throws(() => hostStdin("sudo-password", "", step, "data"), { message: /needs a sudo password/ });
    assert.throws(() => hostStdin("sudo-password", "hunter2\nrm -rf /", step, "data"), {
      message: "the sudo password contains a line break; expected a single line",
    });
    assert.throws(() => hostStdin("root", undefined, { script: "", create: { "A-B": "x" } }), {
      message: 'step parameter "A-B": expected a shell variable name',
    });
    assert.throws(() => hostStdin("root", undefined, { script: "", create: {}, delete: { A: "x\0y" } }), {
      message: "step parameter A holds a NUL byte, which no environment variable can",
    });
  });
});

describe("stepTrigger", () => {
  it("changes with the script or a create parameter, not with the order of parameters or the other actions'", () => {
    const base: HostStep = { script: "install\n", create: { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: "27.5.1" } };
    const t = stepTrigger(base);
    assert.match(t, /^[0-9a-f]{16}$/);
    assert.notEqual(stepTrigger({ ...base, script: "install v2\n" }), t);
    assert.notEqual(stepTrigger({ ...base, create: { ...base.create, DOCKER_VERSION: "27.5.0" } }), t);
    assert.notEqual(stepTrigger({ ...base, create: { ...base.create, EXTRA: "" } }), t);
    assert.equal(stepTrigger({ ...base, create: { DOCKER_VERSION: "27.5.1", DOCKER_PACKAGE: "docker-ce" } }), t);
    assert.equal(stepTrigger({ ...base, update: { A: "1" }, delete: { B: "2" } }), t);
  });
});

describe("the launcher and the sudo-password wrapper, run by bash", () => {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-launcher-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Like sudo -n and sudo -A -p PROMPT: -A runs askpass with the prompt as its only argument when
  // a password is needed (ASKS=yes); neither touches stdin; records its argv and environment.
  writeFileSync(
    join(dir, "sudo"),
    `#!/bin/bash
set -euo pipefail
if [[ $1 == -n ]]; then shift
elif [[ $1 == -A && $2 == -p ]]; then
  prompt=$3
  shift 3
  if [[ $ASKS == yes ]]; then "$SUDO_ASKPASS" "$prompt" >"$OUT/askpass"; fi
else echo "stand-in sudo: unexpected arguments: $*" >&2; exit 90
fi
printf '%s\\0' "$@" >"$OUT/argv"
env >"$OUT/sudo-env"
exec "$@"
`,
  );
  chmodSync(join(dir, "sudo"), 0o755);

  // Saves what the script was given: its environment (NUL-separated), its stdin, its $0.
  const SCRIPT = `set -euo pipefail
env -0 >"$OUT/env"
cat >"$OUT/data"
printf '%s' "$0" >"$OUT/zero"
echo "ran: $ONE"
`;
  const params = { ONE: "1", MULTI: "deb [trusted=yes] file:/opt/repo ./\ndeb file:/x ./\n", ODD: `it's "$HOME" \`id\` \\ ü;` };
  const file = "services:\n  web:\n    image: x@sha256:1\n\n# hunter2 is not the password here\nlast line without newline";

  /** Runs the rendered command as sshd would (`sh -c`), with `stdin`. */
  function run(elevation: Elevation, action: StepAction, stdin: string, asks: "yes" | "no" = "yes") {
    const out = mkdtempSync(join(dir, "run-"));
    const r = spawnSync("sh", ["-c", hostCommand("probe", action, elevation)], {
      input: stdin,
      encoding: "utf8",
      // HOME: bash reads ~/.bashrc when stdin is a socket, as under sshd.
      env: { PATH: `${dir}:${process.env["PATH"] ?? ""}`, HOME: dir, OUT: out, ASKS: asks },
    });
    const read = (f: string) => (existsSync(join(out, f)) ? readFileSync(join(out, f), "utf8") : undefined);
    const env = read("env");
    return {
      ...r,
      askpass: read("askpass"),
      data: read("data"),
      zero: read("zero"),
      argv: read("argv"),
      sudoEnv: read("sudo-env"),
      env:
        env === undefined
          ? undefined
          : Object.fromEntries(
              env
                .split("\0")
                .filter(Boolean)
                .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
            ),
    };
  }
  const step: HostStep = { script: SCRIPT, create: params, delete: { ONE: "deleting" } };

  for (const elevation of ["root", "sudo", "sudo-password"] as const) {
    it(`${elevation}: the script gets its parameters as its environment and every byte of the data on its stdin`, () => {
      const r = run(elevation, "create", hostStdin(elevation, "s3cr3t pw", step, file));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, "ran: 1\n");
      assert.equal(r.stderr, "");
      for (const [k, v] of Object.entries(params)) assert.equal(r.env?.[k], v, k);
      assert.equal(r.data, file);
      assert.equal(r.zero, "/dev/fd/3");
      // None of the launcher's own variables leaks into the script's environment.
      for (const k of ["h", "s", "c", "u", "d", "p", "re"]) assert.equal(r.env?.[k], undefined, k);
      if (elevation !== "root") {
        const argv = r.argv?.split("\0").slice(0, -1) ?? [];
        assert.deepEqual([argv[0], argv[1], argv.slice(3)], ["bash", "-c", ["jetson-fleet:probe", "create"]]);
        assert.doesNotMatch(r.argv ?? "", /trusted|it's|s3cr3t/);
        assert.doesNotMatch(r.sudoEnv ?? "", /trusted|it's|s3cr3t/);
      }
      if (elevation === "sudo-password") assert.equal(r.askpass, "s3cr3t pw\n");
    });
  }

  it("runs the delete's parameters for the delete action, and refuses an action the step has none for", () => {
    const stdin = hostStdin("root", undefined, step, "x");
    const d = run("root", "delete", stdin);
    assert.equal(d.status, 0, d.stderr);
    assert.equal(d.stdout, "ran: deleting\n");
    assert.equal(d.env?.["MULTI"], undefined);
    const u = run("root", "update", stdin);
    assert.equal(u.status, 2);
    assert.equal(u.stderr, "jetson-fleet:probe update: the step has no parameters for update\n");
    assert.equal(u.data, undefined, "the script did not run");
  });

  it("runs nothing from a stream without a step or cut short inside it", () => {
    const whole = hostStdin("root", undefined, step, file);
    const cuts = [0, 10, whole.indexOf("\n") + 5, whole.indexOf("jetson-fleet-step/end") + 3];
    for (const cut of cuts) {
      const r = run("root", "create", whole.slice(0, cut));
      assert.equal(r.status, 2, `cut at ${cut}`);
      assert.match(r.stderr, /^jetson-fleet:probe create: (expected a step on standard input|standard input ended inside the step)\n$/);
      assert.equal(r.data, undefined, `cut at ${cut}: the script did not run`);
    }
    // Data alone, as a caller that forgot the step would send it.
    const r = run("root", "create", file);
    assert.equal(r.stderr, "jetson-fleet:probe create: expected a step on standard input\n");
  });

  it("runs the step's script whatever its parameters are named (a parameter named like a launcher variable)", () => {
    const r = run("root", "create", hostStdin("root", undefined, { script: SCRIPT, create: { s: "echo pwned", p: "x", ONE: "1" } }, ""));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "ran: 1\n");
    assert.equal(r.env?.["s"], "echo pwned");
  });

  it("sudo-password: still takes the password line when sudo does not ask (NOPASSWD, cached credentials)", () => {
    const r = run("sudo-password", "create", hostStdin("sudo-password", "s3cr3t pw", step, file), "no");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.askpass, undefined);
    assert.equal(r.data, file);
    assert.equal(r.env?.["ONE"], "1");
  });

  it("sudo-password: fails before sudo when no password line arrives", () => {
    const r = run("sudo-password", "create", "");
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "jetson-fleet: expected the sudo password on the first line of standard input\n");
    assert.equal(r.argv, undefined);
  });

  it("reads a large script and data whole (more than a pipe holds)", () => {
    const big = `# ${"x".repeat(200_000)}\n${SCRIPT}`;
    const data = "y".repeat(300_000);
    const r = run("sudo", "create", hostStdin("sudo", undefined, { script: big, create: params }, data));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.data, data);
  });
});
