import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseShell } from "shell-quote";
import {
  HOST_SCRIPTS,
  HostSpec,
  JetsonHost,
  RECONNECT_CHECK,
  RuntimeSpec,
  contentHash,
  hostCommand,
  hostStdin,
  renderHostScript,
} from "../../../components/index.ts";
import { clientKey, hostKey } from "../../support/fixtures.ts";
import { ResourceRecorder, unwrap, useMockStack } from "../../support/mocks.ts";

const FACTS = {
  l4tRelease: "36.4.3",
  os: "Ubuntu 22.04.5 LTS",
  arch: "arm64",
  kernel: "5.15.148-tegra",
  dockerVersion: "",
  nvidiaToolkitVersion: "",
  runtimes: [],
  defaultRuntime: "",
  dockerDataRoot: "/var/lib/docker",
  freeBytes: 51200000000,
};

function recorder() {
  return new ResourceRecorder((args) =>
    args.type === "command:remote:Command"
      ? { stdout: args.name.endsWith("-facts") ? JSON.stringify(FACTS) : "verified: nvidia runtime listed (default)\n", stderr: "" }
      : {},
  );
}

const host = HostSpec.parse({
  name: "orin-01",
  address: "192.168.50.11",
  user: "fleet",
  privateKey: clientKey.privateKey,
  hostKey: hostKey.publicKey,
  l4tRelease: "36.4.3",
});
const runtime = RuntimeSpec.parse({
  docker: { version: "27.5.1" },
  nvidiaToolkitVersion: "1.16.2-1",
  aptSources: ["deb [trusted=yes] file:/opt/repo ./"],
});

/** A JetsonHost under mocks, once all its steps are registered (the last one has resolved). */
async function build(spec: HostSpec = host, production?: boolean) {
  const rec = useMockStack({ stack: "unit", config: {} }, recorder());
  const h = new JetsonHost("orin-01", { host: spec, runtime, ...(production === undefined ? {} : { production }) });
  await unwrap(h.verification);
  return { rec, h };
}

/** The elevation prefix, env assignments and script of a rendered command line (`... env K=V... bash -c SCRIPT jetson-fleet`). */
function decode(create: string): { prefix: string[]; env: Record<string, string>; script: string } {
  const words = parseShell(create).map(String);
  const bashAt = words.length - 4;
  const envAt = words.lastIndexOf("env", bashAt);
  const env = Object.fromEntries(words.slice(envAt + 1, bashAt).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]));
  return { prefix: words.slice(0, envAt), env, script: words[bashAt + 2] ?? "" };
}

describe("JetsonHost", () => {
  it("runs the five steps in order, each with its script, parameters and trigger", async () => {
    const { rec, h } = await build();
    const facts = await unwrap(h.facts);
    assert.deepEqual(facts, FACTS);
    const commands = rec.ofType("command:remote:Command");
    assert.deepEqual(
      commands.map((c) => c.name),
      HOST_SCRIPTS.map((s) => `orin-01-${s}`),
    );
    const envs = commands.map((c) => decode(c.inputs["create"] as string));
    assert.deepEqual(
      envs.map((e) => e.env),
      [
        { DOCKER_PACKAGE: "docker-ce", EXPECTED_L4T: "36.4.3" },
        { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: "27.5.1", APT_SOURCES: "deb [trusted=yes] file:/opt/repo ./" },
        { NVIDIA_TOOLKIT_VERSION: "1.16.2-1", APT_SOURCES: "deb [trusted=yes] file:/opt/repo ./" },
        { DAEMON_JSON: '{"log-driver":"json-file","log-opts":{"max-size":"10m","max-file":"3"}}', NVIDIA_DEFAULT_RUNTIME: "true" },
        { NVIDIA_DEFAULT_RUNTIME: "true" },
      ],
    );
    const own = commands.map((c) => contentHash(c.inputs["create"] as string));
    envs.forEach((e, i) => {
      assert.deepEqual(e.prefix, ["sudo", "-n"]);
      assert.equal(e.script, renderHostScript(HOST_SCRIPTS[i] ?? "facts"));
      // Verification re-runs whenever any step before it does: its triggers hold theirs too.
      assert.deepEqual(commands[i]?.inputs["triggers"], i === commands.length - 1 ? [own[i], ...own.slice(0, i)] : [own[i]]);
      assert.equal(commands[i]?.inputs["addPreviousOutputInEnv"], false);
    });
    assert.equal(await unwrap(h.dockerHost), "ssh://fleet@192.168.50.11:22");
    assert.equal(await unwrap(h.verification), "verified: nvidia runtime listed (default)");
  });

  it("connects with the pinned host key, a secret private key and bounded dials", async () => {
    const { rec } = await build();
    assert.equal(rec.ofType("command:remote:Command").length, 5);
    for (const c of rec.ofType("command:remote:Command")) {
      // The whole connection reaches the provider (and the state) as a secret, because the key is one.
      assert.deepEqual(c.inputs["connection"], {
        [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
        value: {
          host: "192.168.50.11",
          port: 22,
          user: "fleet",
          privateKey: clientKey.privateKey,
          hostKey: hostKey.publicKey,
          perDialTimeout: 20,
          dialErrorLimit: 6,
        },
      });
    }
  });

  it("registers what the policy pack checks, nothing secret: name, address, pinned host key, production", async () => {
    const { rec } = await build();
    assert.deepEqual(rec.ofType("jetson:host:JetsonHost")[0]?.inputs, {
      host: "orin-01",
      address: "192.168.50.11",
      hostKeyPinned: true,
      production: false,
    });
  });

  it("registers an unpinned host key and production as they are", async () => {
    const { rec } = await build({ ...host, hostKey: undefined }, true);
    assert.deepEqual(rec.ofType("jetson:host:JetsonHost")[0]?.inputs, {
      host: "orin-01",
      address: "192.168.50.11",
      hostKeyPinned: false,
      production: true,
    });
  });

  it("keeps the private key and the sudo password secret", async () => {
    const { h } = await build({ ...host, sudoPassword: "hunter2" });
    const step = h.ready;
    // The sudo password goes through standard input, never the command line.
    const create = await unwrap(step.create);
    assert.doesNotMatch(create ?? "", /hunter2/);
    // The wrapper that takes the password's line itself, so nothing else on stdin can meet sudo.
    assert.equal(create, hostCommand(renderHostScript("verify"), { NVIDIA_DEFAULT_RUNTIME: "true" }, "sudo-password"));
    assert.deepEqual(decode(create ?? "").prefix.slice(0, 2), ["bash", "-c"]);
    assert.equal(await pulumi.isSecret(step.stdin), true);
    assert.equal(await unwrap(step.stdin), "hunter2\n");
  });

  it("on a change of the connection alone, runs no install script: only facts and verify run again", async () => {
    const { rec } = await build();
    const update = Object.fromEntries(rec.ofType("command:remote:Command").map((c) => [c.name, c.inputs["update"]]));
    assert.deepEqual(update, {
      "orin-01-facts": undefined,
      "orin-01-install-docker": RECONNECT_CHECK,
      "orin-01-install-nvidia-toolkit": RECONNECT_CHECK,
      "orin-01-configure-docker": RECONNECT_CHECK,
      "orin-01-verify": undefined,
    });
    assert.equal(RECONNECT_CHECK, "true");
  });

  it("installs the pinned compose tool when the runtime names one, before verification", async () => {
    const rec = useMockStack({ stack: "unit", config: {} }, recorder());
    const withCompose = RuntimeSpec.parse({ ...runtime, compose: { package: "docker-compose-plugin", version: "2.29.7" } });
    const h = new JetsonHost("orin-01", { host, runtime: withCompose });
    await unwrap(h.verification);
    const commands = rec.ofType("command:remote:Command");
    assert.deepEqual(
      commands.map((c) => c.name),
      ["facts", "install-docker", "install-nvidia-toolkit", "configure-docker", "install-compose", "verify"].map((s) => `orin-01-${s}`),
    );
    const compose = commands[4];
    assert.equal(
      compose?.inputs["create"],
      hostCommand(
        renderHostScript("install-compose"),
        { COMPOSE_PACKAGE: "docker-compose-plugin", COMPOSE_VERSION: "2.29.7", APT_SOURCES: "deb [trusted=yes] file:/opt/repo ./" },
        "sudo",
      ),
    );
    assert.equal(compose?.inputs["update"], RECONNECT_CHECK);
  });

  it("logs in to the stack's registry with the password on stdin, a secret trigger, and logs out on delete", async () => {
    const rec = useMockStack({ stack: "unit", config: {} }, recorder());
    const h = new JetsonHost("orin-01", {
      host: { ...host, sudoPassword: "hunter2" },
      runtime,
      registry: { server: "registry.lab:5000", username: "fleet", password: pulumi.secret("s3cret-token") },
    });
    await unwrap(h.verification);
    const step = rec.ofType("command:remote:Command").find((c) => c.name === "orin-01-registry-login");
    assert.ok(step, "a registry-login step");
    const create = step.inputs["create"] as string;
    assert.equal(
      create,
      hostCommand(
        renderHostScript("registry-login"),
        { REGISTRY_SERVER: "registry.lab:5000", REGISTRY_USERNAME: "fleet" },
        "sudo-password",
      ),
    );
    assert.doesNotMatch(JSON.stringify(step.inputs["create"]) + JSON.stringify(step.inputs["delete"]), /s3cret-token|hunter2/);
    assert.equal(
      step.inputs["delete"],
      hostCommand(renderHostScript("registry-login"), { REGISTRY_SERVER: "registry.lab:5000", LOGOUT: "1" }, "sudo-password"),
    );
    // Password line first, for sudo; then the registry password, the script's standard input.
    assert.deepEqual(step.inputs["stdin"], {
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: hostStdin("sudo-password", "hunter2", "s3cret-token"),
    });
    // A secret element makes the whole list a secret in the state.
    assert.deepEqual(step.inputs["triggers"], {
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: [contentHash(create), contentHash("s3cret-token")],
    });
  });

  it("logs in to no registry when the stack's has no credentials", async () => {
    const { rec } = await build();
    assert.equal(rec.ofType("command:remote:Command").filter((c) => c.name.endsWith("-registry-login")).length, 0);
  });

  it("leaves the host's packages in place on delete (no delete command)", async () => {
    const { rec } = await build();
    assert.equal(rec.ofType("command:remote:Command").length, 5);
    for (const c of rec.ofType("command:remote:Command")) assert.equal(c.inputs["delete"], undefined);
  });

  it("changes a step's trigger when its script or parameters change, and only that step's", () => {
    const a = hostCommand(renderHostScript("install-docker"), { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: "27.5.1" }, "sudo");
    const b = hostCommand(renderHostScript("install-docker"), { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: "27.5.0" }, "sudo");
    assert.notEqual(contentHash(a), contentHash(b));
    assert.equal(
      contentHash(a),
      contentHash(hostCommand(renderHostScript("install-docker"), { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: "27.5.1" }, "sudo")),
    );
  });
});

describe("renderHostScript", () => {
  it("inlines the apt library so the script stands alone", () => {
    const text = renderHostScript("install-nvidia-toolkit");
    assert.doesNotMatch(text, /source "\$\(dirname/);
    assert.match(text, /^apt_install_pinned\(\) \{/m);
    assert.match(text, /"libnvidia-container1=\$version"/);
  });
});
