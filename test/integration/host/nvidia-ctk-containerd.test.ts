// The simulated Jetson's stand-in toolkit for containerd: `nvidia-ctk runtime configure
// --runtime=containerd` against a config.toml in a scratch directory, the file compared whole, and
// the stand-in nvidia-container-runtime's log line, with a runc that only exits. What it proves:
// a sim's containerd gets the `nvidia` handler the real tool writes, the rest of the file stays as
// it was, and a second run changes nothing.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { scratchDir } from "../../support/services.ts";

const TOOLKIT_BIN = join(import.meta.dirname, "..", "..", "..", "images", "jetson-sim", "nvidia-toolkit", "bin");
const CRI = `[plugins."io.containerd.grpc.v1.cri"`;

/** One stand-in tool into bin, as the image's build fills in its version. */
function install(bin: string, tool: string): void {
  const text = readFileSync(join(TOOLKIT_BIN, tool), "utf8")
    .replace(/@VERSION@/g, "1.16.2")
    .replace(/@COMMIT@/g, "0");
  writeFileSync(join(bin, tool), text);
  chmodSync(join(bin, tool), 0o755);
}

/** A scratch directory with the stand-in toolkit on PATH and where config.toml would be. */
function toolkit() {
  const dir = scratchDir("nvidia-ctk-containerd");
  const bin = join(dir, "bin");
  mkdirSync(bin);
  install(bin, "nvidia-ctk");
  install(bin, "nvidia-container-runtime");
  const config = join(dir, "etc", "containerd", "config.toml");
  return {
    dir,
    bin,
    config,
    /** What the default --nvidia-runtime-path resolves to: the stand-in runtime on PATH. */
    runtimePath: join(bin, "nvidia-container-runtime"),
    configure(args: string[], path = `${bin}:${process.env["PATH"] ?? ""}`) {
      return spawnSync(join(bin, "nvidia-ctk"), ["runtime", "configure", ...args], { encoding: "utf8", env: { PATH: path } });
    },
    write(text: string): void {
      mkdirSync(join(dir, "etc", "containerd"), { recursive: true });
      writeFileSync(config, text);
    },
    read: () => readFileSync(config, "utf8"),
  };
}

/** The table the real tool writes for a runtime, exactly. */
function runtimeTable({
  name = "nvidia",
  binary,
  runtimeType = "io.containerd.runc.v2",
  systemdCgroup = false,
}: {
  name?: string;
  binary: string;
  runtimeType?: string;
  systemdCgroup?: boolean;
}): string {
  return (
    `${CRI}.containerd.runtimes.${name}]\n` +
    `  privileged_without_host_devices = false\n` +
    `  runtime_engine = ""\n` +
    `  runtime_root = ""\n` +
    `  runtime_type = "${runtimeType}"\n` +
    `\n` +
    `  ${CRI}.containerd.runtimes.${name}.options]\n` +
    `    BinaryName = "${binary}"\n` +
    (systemdCgroup ? `    SystemdCgroup = true\n` : "")
  );
}

// A node's config as the sim's node setup writes it, with what a line editor could trip on:
// comments, a multi-line array whose lines start with "[", other plugins, no trailing blank line.
const NODE_CONFIG = `version = 2
# Written by the node setup; nvidia-ctk adds its runtime below.

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # Without CAP_SYS_RESOURCE no process may lower its OOM score.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"

[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
  mirrors_note = [
    "[plugins.not.a.header]",
  ]`;

interface Case {
  name: string;
  /** config.toml before the run; undefined: no file (nor its directory). */
  initial?: string;
  args: string[];
  /** config.toml after the run, given where the default runtime path resolves to. */
  expected: (runtimePath: string) => string;
}

const CASES: Case[] = [
  {
    name: "a missing file: created with its version, so containerd 1.x reads the tables as version 2",
    args: [],
    expected: (binary) => `version = 2\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "an empty file: as a missing one",
    initial: "",
    args: [],
    expected: (binary) => `version = 2\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "a file with other plugins and comments: every line kept, the runtime appended",
    initial: NODE_CONFIG,
    args: [],
    expected: (binary) => `${NODE_CONFIG}\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "a file without a version line: left without one",
    initial: `${CRI}]\n  sandbox_image = "registry.k8s.io/pause:3.10"\n`,
    args: [],
    expected: (binary) => `${CRI}]\n  sandbox_image = "registry.k8s.io/pause:3.10"\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "an existing nvidia runtime and its sub-tables: replaced, not duplicated; what follows it kept",
    initial: `version = 2

${CRI}.containerd]
  snapshotter = "overlayfs"

  ${CRI}.containerd.runtimes.nvidia]
    runtime_type = "io.containerd.runc.v1"
    privileged_without_host_devices = true

    ${CRI}.containerd.runtimes.nvidia.options]
      BinaryName = "/old/nvidia-container-runtime"
      Root = "/run/nvidia"

  # runc, for pods without a RuntimeClass
  ${CRI}.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`,
    args: ["--nvidia-runtime-path=/usr/bin/nvidia-container-runtime"],
    expected: () => `version = 2

${CRI}.containerd]
  snapshotter = "overlayfs"


  # runc, for pods without a RuntimeClass
  ${CRI}.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

${runtimeTable({ binary: "/usr/bin/nvidia-container-runtime" })}`,
  },
  {
    name: "runc's runtime_type and SystemdCgroup = true: copied",
    initial: `version = 2

${CRI}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v1"

  ${CRI}.containerd.runtimes.runc.options]
    SystemdCgroup = true
`,
    args: [],
    expected: (binary) => `version = 2

${CRI}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v1"

  ${CRI}.containerd.runtimes.runc.options]
    SystemdCgroup = true

${runtimeTable({ binary, runtimeType: "io.containerd.runc.v1", systemdCgroup: true })}`,
  },
  {
    name: "runc with SystemdCgroup = false: not copied",
    initial: `version = 2\n\n${CRI}.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n`,
    args: [],
    expected: (binary) => `version = 2\n\n${CRI}.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "--set-as-default with a default_runtime_name: that line replaced, its indentation kept",
    initial: `version = 2\n\n  ${CRI}.containerd]\n    snapshotter = "overlayfs"\n    default_runtime_name = "runc"\n`,
    args: ["--set-as-default"],
    expected: (binary) =>
      `version = 2\n\n  ${CRI}.containerd]\n    snapshotter = "overlayfs"\n    default_runtime_name = "nvidia"\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "--set-as-default with the containerd table but no default_runtime_name: inserted after its header",
    initial: `version = 2\n\n  ${CRI}.containerd]\n    snapshotter = "overlayfs"\n`,
    args: ["--set-as-default"],
    expected: (binary) =>
      `version = 2\n\n  ${CRI}.containerd]\n    default_runtime_name = "nvidia"\n    snapshotter = "overlayfs"\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "--set-as-default without the containerd table: the table appended",
    initial: `version = 2\n\n${CRI}]\n  sandbox_image = "registry.k8s.io/pause:3.10"\n`,
    args: ["--set-as-default"],
    expected: (binary) =>
      `version = 2\n\n${CRI}]\n  sandbox_image = "registry.k8s.io/pause:3.10"\n\n${CRI}.containerd]\n  default_runtime_name = "nvidia"\n\n${runtimeTable({ binary })}`,
  },
  {
    name: "a custom name and path: that runtime written, the nvidia one left alone",
    initial: `version = 2\n\n${runtimeTable({ binary: "/usr/bin/nvidia-container-runtime" })}`,
    args: [
      "--nvidia-runtime-name=nvidia-experimental",
      "--nvidia-runtime-path=/usr/local/nvidia/toolkit/nvidia-container-runtime.experimental",
    ],
    expected: () =>
      `version = 2\n\n${runtimeTable({ binary: "/usr/bin/nvidia-container-runtime" })}\n` +
      runtimeTable({ name: "nvidia-experimental", binary: "/usr/local/nvidia/toolkit/nvidia-container-runtime.experimental" }),
  },
  {
    name: "a name that is no bare TOML key: quoted in the headers",
    args: ["--nvidia-runtime-name=nvidia.cdi", "--set-as-default"],
    expected: (binary) =>
      `version = 2\n\n${CRI}.containerd]\n  default_runtime_name = "nvidia.cdi"\n\n${runtimeTable({ name: `"nvidia.cdi"`, binary })}`,
  },
];

describe("nvidia-ctk runtime configure --runtime=containerd: the real tool's runtime table, the rest of the file kept", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const kit = toolkit();
      if (c.initial !== undefined) kit.write(c.initial);
      const once = kit.configure(["--runtime=containerd", `--config=${kit.config}`, ...c.args]);
      assert.equal(once.status, 0, once.stderr);
      const expected = c.expected(kit.runtimePath);
      assert.equal(kit.read(), expected);
      const loaded = c.initial === undefined ? "Config file does not exist; creating new one" : `Loading config from ${kit.config}`;
      assert.match(once.stderr, new RegExp(`^time="[^"]+" level=info msg="${escapeRegExp(loaded)}"$`, "m"));
      assert.match(
        once.stderr,
        new RegExp(
          `level=info msg="Wrote updated config to ${escapeRegExp(kit.config)}"\n.*msg="It is recommended that containerd daemon be restarted\\."\n$`,
        ),
      );
      // Twice is once.
      const twice = kit.configure(["--runtime=containerd", `--config=${kit.config}`, ...c.args]);
      assert.equal(twice.status, 0, twice.stderr);
      assert.equal(kit.read(), expected);
    });
  }

  it("defaults to /etc/containerd/config.toml (seen in --dry-run, which names the file it would load)", () => {
    const kit = toolkit();
    const r = kit.configure(["--runtime=containerd", "--dry-run"]);
    assert.equal(r.status, 0, r.stderr);
    // Only a machine with that file shows the path; without it the message names none.
    const loaded = existsSync("/etc/containerd/config.toml")
      ? "Loading config from /etc/containerd/config.toml"
      : "Config file does not exist; creating new one";
    assert.match(r.stderr, new RegExp(`msg="${escapeRegExp(loaded)}"`));
  });

  it("falls back to /usr/bin/nvidia-container-runtime when none is on PATH", () => {
    const kit = toolkit();
    const r = kit.configure(["--runtime=containerd", `--config=${kit.config}`], "/usr/bin:/bin");
    assert.equal(r.status, 0, r.stderr);
    assert.match(kit.read(), /^ {4}BinaryName = "\/usr\/bin\/nvidia-container-runtime"$/m);
  });

  it("--dry-run prints the file it would write and writes nothing", () => {
    const kit = toolkit();
    const missing = kit.configure(["--runtime=containerd", `--config=${kit.config}`, "--dry-run", "--set-as-default"]);
    assert.equal(missing.status, 0, missing.stderr);
    assert.equal(
      missing.stdout,
      `version = 2\n\n${CRI}.containerd]\n  default_runtime_name = "nvidia"\n\n${runtimeTable({ binary: kit.runtimePath })}`,
    );
    assert.equal(existsSync(join(kit.dir, "etc")), false);
    assert.doesNotMatch(missing.stderr, /Wrote/);

    kit.write(NODE_CONFIG);
    const existing = kit.configure(["--runtime=containerd", `--config=${kit.config}`, "--dry-run"]);
    assert.equal(existing.status, 0, existing.stderr);
    assert.equal(existing.stdout, `${NODE_CONFIG}\n\n${runtimeTable({ binary: kit.runtimePath })}`);
    assert.equal(kit.read(), NODE_CONFIG);
  });

  it("writes an existing file in place: its mode stays", () => {
    const kit = toolkit();
    kit.write(NODE_CONFIG);
    chmodSync(kit.config, 0o640);
    const r = kit.configure(["--runtime=containerd", `--config=${kit.config}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(kit.config).mode & 0o777, 0o640);
  });

  it("refuses a version 3 config and leaves it as it was", () => {
    const kit = toolkit();
    const v3 = `version = 3\n\n[plugins."io.containerd.cri.v1.runtime"]\n  enable_cdi = true\n`;
    kit.write(v3);
    const r = kit.configure(["--runtime=containerd", `--config=${kit.config}`]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^time="[^"]+" level=error msg="unable to load config for runtime containerd: config version 3 is not supported by the simulated Jetson's nvidia-ctk"$/m,
    );
    assert.equal(kit.read(), v3);
  });

  it("still refuses --runtime=crio", () => {
    const kit = toolkit();
    const r = kit.configure(["--runtime=crio", `--config=${join(kit.dir, "crio.conf")}`]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /level=error msg="the simulated Jetson's nvidia-ctk configures docker and containerd only \(got --runtime=crio\)"$/m,
    );
    assert.equal(existsSync(join(kit.dir, "crio.conf")), false);
  });

  // containerd comes with Debian's docker.io, which tools/machine.sh installs.
  it("writes a file containerd loads, with the nvidia handler as the default", () => {
    const kit = toolkit();
    kit.write(NODE_CONFIG);
    const r = kit.configure(["--runtime=containerd", `--config=${kit.config}`, "--set-as-default"]);
    assert.equal(r.status, 0, r.stderr);
    // `--config FILE config dump`: containerd 1.6 has no `config dump -c`.
    const dump = spawnSync("containerd", ["--config", kit.config, "config", "dump"], { encoding: "utf8" });
    assert.equal(dump.status, 0, dump.stderr);
    assert.match(dump.stdout, /^\s*default_runtime_name = "nvidia"$/m);
    assert.match(
      dump.stdout,
      new RegExp(
        `^\\s*${escapeRegExp(`${CRI}.containerd.runtimes.nvidia.options]`)}\\n\\s*BinaryName = "${escapeRegExp(kit.runtimePath)}"$`,
        "m",
      ),
    );
  });
});

describe("nvidia-container-runtime: a log line per create, then runc", () => {
  /** The stand-in runtime with a runc that records its arguments, and the log in a scratch directory. */
  function runtime() {
    const kit = toolkit();
    const fakeBin = join(kit.dir, "fake-bin");
    mkdirSync(fakeBin);
    const runcCalls = join(kit.dir, "runc-calls");
    writeFileSync(join(fakeBin, "runc"), `#!/bin/sh\necho "$*" >>"${runcCalls}"\nexit 0\n`);
    chmodSync(join(fakeBin, "runc"), 0o755);
    const log = join(kit.dir, "log", "nvidia-container-runtime.log");
    mkdirSync(join(kit.dir, "log"));
    return {
      log,
      run(args: string[], logPath = log) {
        const r = spawnSync(kit.runtimePath, args, {
          encoding: "utf8",
          env: { PATH: `${fakeBin}:${process.env["PATH"] ?? ""}`, NVIDIA_CONTAINER_RUNTIME_LOG: logPath },
        });
        assert.equal(r.status, 0, r.stderr);
        return r;
      },
      logText: () => (existsSync(log) ? readFileSync(log, "utf8") : ""),
      runcCalls: () => readFileSync(runcCalls, "utf8"),
    };
  }

  it("logs create with all of runc's arguments, the container id among them", () => {
    const rt = runtime();
    const args = ["--root", "/run/containerd/runc/k8s.io", "create", "--bundle", "/run/containerd/bundle/abc123", "abc123"];
    rt.run(args);
    rt.run(["start", "abc123"]);
    assert.match(
      rt.logText(),
      /^time="\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z" level=info msg="Running nvidia-container-runtime" args="--root \/run\/containerd\/runc\/k8s\.io create --bundle \/run\/containerd\/bundle\/abc123 abc123"\n$/,
    );
    assert.equal(rt.runcCalls(), `${args.join(" ")}\nstart abc123\n`);
  });

  it("writes no log line for --version, and never fails for a log it cannot write", () => {
    const rt = runtime();
    assert.match(rt.run(["--version"]).stdout, /^NVIDIA Container Runtime version 1\.16\.2\ncommit: 0\n/);
    assert.equal(rt.logText(), "");
    rt.run(["create", "--bundle", "/b", "id"], join(rt.log, "..", "missing", "nvidia-container-runtime.log"));
    assert.equal(rt.logText(), "");
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
