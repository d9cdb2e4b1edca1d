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
  stepTrigger,
  type Elevation,
} from "../../../components/index.ts";
import { clientKey, hostKey } from "../../support/fixtures.ts";
import { readHostStdin } from "../../support/host-stdin.ts";
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
  gpu: "nvidia,p3768-0000+p3767-0000,nvidia,p3767-0000,nvidia,tegra234",
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

/** The step a command's stdin carries (always a secret: the parameters may hold credentials). */
function stepOf(c: { inputs: Record<string, unknown> } | undefined, elevation: Elevation = "sudo") {
  const stdin = c?.inputs["stdin"] as { [k: string]: unknown; value?: unknown } | undefined;
  assert.equal(stdin?.[pulumi.runtime.specialSigKey], pulumi.runtime.specialSecretSig, "stdin is a secret");
  return readHostStdin(String(stdin?.value), elevation);
}

describe("JetsonHost", () => {
  it("registers the five steps, each with its script, parameters and trigger", async () => {
    const { rec, h } = await build();
    const facts = await unwrap(h.facts);
    assert.deepEqual(facts, FACTS);
    const commands = rec.ofType("command:remote:Command");
    assert.deepEqual(
      commands.map((c) => c.name),
      HOST_SCRIPTS.map((s) => `orin-01-${s}`),
    );
    const steps = commands.map((c) => stepOf(c));
    assert.deepEqual(
      steps.map((e) => e.create),
      [
        { DOCKER_PACKAGE: "docker-ce", EXPECTED_L4T: "36.4.3" },
        { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: "27.5.1", APT_SOURCES: "deb [trusted=yes] file:/opt/repo ./" },
        { NVIDIA_TOOLKIT_VERSION: "1.16.2-1", APT_SOURCES: "deb [trusted=yes] file:/opt/repo ./" },
        { DAEMON_JSON: '{"log-driver":"json-file","log-opts":{"max-size":"10m","max-file":"3"}}', NVIDIA_DEFAULT_RUNTIME: "true" },
        { NVIDIA_DEFAULT_RUNTIME: "true" },
      ],
    );
    const own = steps.map((e) => stepTrigger({ script: e.script, create: e.create }));
    steps.forEach((e, i) => {
      const id = HOST_SCRIPTS[i] ?? "facts";
      // The same short launcher for every step, by name; the script and parameters on stdin, nothing else there.
      assert.equal(commands[i]?.inputs["create"], hostCommand(id, "create", "sudo"));
      assert.deepEqual(e, { script: renderHostScript(id), create: e.create, data: "" });
      // Verification re-runs whenever any step before it does: its triggers hold theirs too.
      assert.deepEqual(commands[i]?.inputs["triggers"], i === commands.length - 1 ? [own[i], ...own.slice(0, i)] : [own[i]]);
      assert.equal(commands[i]?.inputs["addPreviousOutputInEnv"], false);
    });
    assert.equal(await unwrap(h.dockerHost), "ssh://fleet@192.168.50.11:22");
    assert.equal(await unwrap(h.verification), "verified: nvidia runtime listed (default)");
  });

  // The engine orders steps by dependsOn, not by registration: each step must name the one before.
  for (const [label, extra, names] of [
    ["the five steps", {}, HOST_SCRIPTS],
    [
      "every step, optional ones too",
      {
        runtime: RuntimeSpec.parse({ ...runtime, compose: { package: "docker-compose-plugin", version: "2.29.7" } }),
        dockerAccess: true,
        registry: { server: "registry.lab:5000", username: "fleet", password: pulumi.secret("s3cret-token") },
      },
      [
        "facts",
        "install-docker",
        "install-nvidia-toolkit",
        "configure-docker",
        "install-compose",
        "docker-access",
        "registry-login",
        "verify",
      ],
    ],
  ] as const) {
    it(`runs ${label} in order: each depends on the step before it, the first on none`, async () => {
      useMockStack({ stack: "unit", config: {} }, recorder());
      const steps: { name: string; resource: pulumi.Resource; opts: pulumi.ResourceOptions }[] = [];
      // Mocks do not see resource options; a transformation the steps inherit from their parent does.
      const capture: pulumi.ResourceTransformation = (a) => {
        if (a.type === "command:remote:Command") steps.push({ name: a.name, resource: a.resource, opts: a.opts });
        return undefined;
      };
      const h = new JetsonHost("orin-01", { host, runtime, ...extra }, { transformations: [capture] });
      await unwrap(h.verification);
      assert.deepEqual(
        steps.map((s) => s.name),
        names.map((n) => `orin-01-${n}`),
      );
      steps.forEach((s, i) => {
        const before = steps[i - 1];
        if (before === undefined) assert.equal(s.opts.dependsOn, undefined, s.name);
        else {
          const deps = s.opts.dependsOn;
          assert.ok(Array.isArray(deps) && deps.length === 1, `${s.name} depends on exactly one step`);
          assert.equal(deps[0], before.resource, `${s.name} depends on ${before.name}`);
        }
        assert.equal(s.opts.parent, h, s.name);
      });
      assert.equal(steps.at(-1)?.resource, h.ready);
    });
  }

  it("passes APT_SOURCES as empty text when the config names none: the install steps re-run and remove the stack's list", async () => {
    // Two hosts in one stack, one whose config names a source and one whose config names none.
    const rec = useMockStack({ stack: "unit", config: {} }, recorder());
    for (const [name, aptSources] of [
      ["named", ["deb [trusted=yes] file:/opt/repo ./"]],
      ["none", []],
    ] as const)
      await unwrap(new JetsonHost(name, { host, runtime: RuntimeSpec.parse({ ...runtime, aptSources }) }).verification);
    const stepsOf = (name: string) =>
      Object.fromEntries(
        rec
          .ofType("command:remote:Command")
          .filter((c) => c.name.startsWith(`${name}-`))
          .map((c) => [c.name.slice(name.length + 1), c]),
      );
    const [named, none] = [stepsOf("named"), stepsOf("none")];
    for (const id of ["install-docker", "install-nvidia-toolkit"]) {
      assert.equal(stepOf(none[id]).create["APT_SOURCES"], "", id);
      assert.notDeepEqual(none[id]?.inputs["triggers"], named[id]?.inputs["triggers"], id);
    }
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
    assert.equal(create, hostCommand("verify", "create", "sudo-password"));
    assert.deepEqual(parseShell(create ?? "").slice(0, 2), ["bash", "-c"]);
    assert.equal(await pulumi.isSecret(step.stdin), true);
    assert.equal(
      await unwrap(step.stdin),
      hostStdin("sudo-password", "hunter2", { script: renderHostScript("verify"), create: { NVIDIA_DEFAULT_RUNTIME: "true" } }),
    );
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
    assert.equal(compose?.inputs["create"], hostCommand("install-compose", "create", "sudo"));
    assert.deepEqual(stepOf(compose), {
      script: renderHostScript("install-compose"),
      create: { COMPOSE_PACKAGE: "docker-compose-plugin", COMPOSE_VERSION: "2.29.7", APT_SOURCES: "deb [trusted=yes] file:/opt/repo ./" },
      data: "",
    });
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
    assert.equal(step.inputs["create"], hostCommand("registry-login", "create", "sudo-password"));
    assert.equal(step.inputs["delete"], hostCommand("registry-login", "delete", "sudo-password"));
    const program = {
      script: renderHostScript("registry-login"),
      create: { REGISTRY_SERVER: "registry.lab:5000", REGISTRY_USERNAME: "fleet" },
      delete: { REGISTRY_SERVER: "registry.lab:5000", LOGOUT: "1" },
    };
    // Password line first, for sudo; then the step (the logout's parameters beside the login's);
    // then the registry password, the script's standard input.
    assert.deepEqual(step.inputs["stdin"], {
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: hostStdin("sudo-password", "hunter2", program, "s3cret-token"),
    });
    assert.deepEqual(stepOf(step, "sudo-password"), { password: "hunter2", ...program, data: "s3cret-token" });
    // A secret element makes the whole list a secret in the state.
    assert.deepEqual(step.inputs["triggers"], {
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: [stepTrigger(program), contentHash("s3cret-token")],
    });
  });

  it("gives the login user the Docker engine (the docker group) when asked, and takes it back on delete", async () => {
    const rec = useMockStack({ stack: "unit", config: {} }, recorder());
    const h = new JetsonHost("orin-01", { host, runtime, dockerAccess: true });
    await unwrap(h.verification);
    const commands = rec.ofType("command:remote:Command");
    assert.deepEqual(
      commands.map((c) => c.name),
      ["facts", "install-docker", "install-nvidia-toolkit", "configure-docker", "docker-access", "verify"].map((s) => `orin-01-${s}`),
    );
    const access = commands[4];
    assert.equal(access?.inputs["create"], hostCommand("docker-access", "create", "sudo"));
    assert.equal(access?.inputs["delete"], hostCommand("docker-access", "delete", "sudo"));
    assert.equal(access?.inputs["update"], RECONNECT_CHECK);
    assert.deepEqual(stepOf(access), {
      script: renderHostScript("docker-access"),
      create: { LOGIN_USER: "fleet" },
      delete: { LOGIN_USER: "fleet", REVOKE: "1" },
      data: "",
    });
  });

  for (const [label, spec, dockerAccess] of [
    ["a root login", { ...host, user: "root" }, true],
    ["anyone unless asked", host, false],
  ] as const) {
    it(`gives no docker group to ${label}`, async () => {
      const rec = useMockStack({ stack: "unit", config: {} }, recorder());
      const h = new JetsonHost("orin-01", { host: spec, runtime, dockerAccess });
      await unwrap(h.verification);
      assert.equal(rec.ofType("command:remote:Command").filter((c) => c.name.endsWith("-docker-access")).length, 0);
    });
  }

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
    const step = (version: string, id: "install-docker" | "install-nvidia-toolkit" = "install-docker") => ({
      script: renderHostScript(id),
      create: { DOCKER_PACKAGE: "docker-ce", DOCKER_VERSION: version },
    });
    assert.notEqual(stepTrigger(step("27.5.1")), stepTrigger(step("27.5.0")));
    assert.notEqual(stepTrigger(step("27.5.1")), stepTrigger(step("27.5.1", "install-nvidia-toolkit")));
    assert.equal(stepTrigger(step("27.5.1")), stepTrigger(step("27.5.1")));
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
