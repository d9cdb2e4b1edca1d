// Both deploy modes under Pulumi mocks: the exact resources, inputs and ordering each registers
// for the default stack on three hosts, and the `jetson:services:Service` contract.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import {
  ComposeDeployment,
  ComposeProject,
  ContainerDeployment,
  DOCKER_PLUGIN_VERSION,
  RECONNECT_CHECK,
  dockerSshAgentName,
  dockerSshOptions,
  SERVICE_TYPE,
  ServiceSpec,
  contentHash,
  hostCommand,
  hostStdin,
  pinServiceImages,
  renderComposeFile,
  renderServiceScript,
  stepTrigger,
  type Elevation,
  type ServiceHost,
} from "../../../components/index.ts";
import { readHostStdin } from "../../support/host-stdin.ts";
import { PROJECT, clientKey, hostKey } from "../../support/fixtures.ts";
import { ResourceRecorder, unwrap, useMockStack } from "../../support/mocks.ts";

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const INFERENCE = `registry.lab:5000/fleet/inference@${digest("1")}`;
const MEDIAMTX = `bluenviron/mediamtx@${digest("2")}`;
const UI = `registry.lab:5000/fleet/ui@${digest("3")}`;
const IMAGES = { inference: INFERENCE, mediamtx: MEDIAMTX, ui: UI };

const SERVICES = [
  ServiceSpec.parse({
    name: "inference",
    build: "inference",
    runtime: "nvidia",
    network: "host",
    ports: [{ target: 8080 }],
    environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video", API_TOKEN: "t0ken" },
    volumes: [
      { source: "/opt/fleet/models", target: "/models", readOnly: true },
      { source: "/opt/fleet/output", target: "/output" },
    ],
    shmSize: "2g",
    healthcheck: {
      test: ["CMD", "python3", "/opt/inference/app/healthcheck.py"],
      interval: "30s",
      timeout: "5s",
      retries: 3,
      startPeriod: "1m",
    },
    resources: { cpus: 4, memory: "6g", gpus: "all" },
    dependsOn: { mediamtx: "started" },
    user: "10001:10001",
  }),
  ServiceSpec.parse({ name: "mediamtx", image: "bluenviron/mediamtx:1.9.3", network: "host", ports: [{ target: 8554 }, { target: 8889 }] }),
  ServiceSpec.parse({
    name: "ui",
    image: "registry.lab:5000/fleet/ui:2.1",
    ports: [{ target: 80, published: 8088 }],
    dependsOn: { inference: "healthy" },
  }),
];
const SECRET_ENV = { inference: ["API_TOKEN"] };
/** The inference service's update plan: no proxy can switch a host-network service. */
const HOST_NETWORK_PLAN = { strategy: "recreate", reason: "uses host networking: two versions cannot listen on one host port at once" };

/** Host i's connection: the first host's key pinned, the others' not. */
const connectionOf = (i: number) => ({
  host: `192.168.50.1${i + 1}`,
  port: 22,
  user: "fleet",
  privateKey: clientKey.privateKey,
  ...(i === 0 ? { hostKey: hostKey.publicKey } : {}),
  perDialTimeout: 20,
});

function hosts(n: number): ServiceHost[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `orin-0${i + 1}`,
    connection: pulumi.secret(connectionOf(i)),
    elevation: "sudo-password" as const,
    sudoPassword: pulumi.secret("hunter2"),
    dockerHost: `ssh://fleet@192.168.50.1${i + 1}:22`,
  }));
}

interface Captured {
  readonly type: string;
  readonly name: string;
  readonly opts: pulumi.CustomResourceOptions;
  readonly resource?: pulumi.Resource;
}
/** Records every resource's options (mocks do not see them) through a transformation the children inherit. */
function captureOptions(): { captured: Captured[]; transformations: pulumi.ResourceTransformation[] } {
  const captured: Captured[] = [];
  return {
    captured,
    transformations: [
      (a) => {
        captured.push({ type: a.type, name: a.name, opts: a.opts });
        return undefined;
      },
    ],
  };
}
const optsOf = (captured: Captured[], name: string, type: string) =>
  captured.find((c) => c.name === name && c.type === type)?.opts ?? assert.fail(`no ${type} ${name}`);
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const secretOf = (value: unknown) => ({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value });

/** Resolves when every output of the deployment's resources has settled. */
const settle = () => new Promise((r) => setTimeout(r, 200));

describe("ContainerDeployment", () => {
  async function deploy(n = 3, maxUnavailable: number | string = 1) {
    const rec = useMockStack({ stack: "unit", config: {} });
    const { captured, transformations } = captureOptions();
    const loaded: string[] = [];
    const d = new ContainerDeployment(
      "services",
      {
        hosts: hosts(n),
        services: SERVICES,
        images: IMAGES,
        secretEnvironment: SECRET_ENV,
        maxUnavailable,
        registry: { server: "registry.lab:5000", username: "fleet", password: pulumi.secret("s3cret-token") },
        sshAgent: (key) => {
          loaded.push(key);
          return "/unused";
        },
      },
      { transformations },
    );
    await settle();
    return { rec, captured, d, loaded };
  }

  it("reaches each host's engine through its ssh:// endpoint with the stack's key and pinned host key only, on plugin 5.1.0", async () => {
    const { rec, captured, loaded } = await deploy();
    const agent = dockerSshAgentName(clientKey.privateKey);
    assert.deepEqual(
      rec.ofType("pulumi:providers:docker").map((p) => [p.name, p.inputs["host"], p.inputs["sshOpts"], p.inputs["registryAuth"]]),
      [1, 2, 3].map((i) => [
        `services-orin-0${i}-docker`,
        `ssh://fleet@192.168.50.1${i}:22`,
        // Not a secret: the options name the agent by a hash of the public key.
        JSON.stringify(dockerSshOptions({ ...(i === 1 ? { hostKey: hostKey.publicKey } : {}), connectTimeout: 20 }, agent)),
        // The whole list is a secret: it holds the password.
        secretOf(JSON.stringify([{ address: "registry.lab:5000", username: "fleet", password: "s3cret-token" }])),
      ]),
    );
    assert.deepEqual(loaded, [clientKey.privateKey, clientKey.privateKey, clientKey.privateKey]);
    for (const p of captured.filter((c) => c.type === "pulumi:providers:docker"))
      assert.equal(p.opts.version, DOCKER_PLUGIN_VERSION, p.name);
    assert.equal(DOCKER_PLUGIN_VERSION, "5.1.0");
  });

  it("guards each container's update with the handover step on its host, after the pull and before the container", async () => {
    const { rec, captured, d } = await deploy(1);
    const handover = rec.ofType("command:remote:Command").find((c) => c.name === "services-orin-01-inference-handover");
    assert.ok(handover, "a handover step");
    assert.equal(handover.inputs["create"], hostCommand("container-handover", "create", "sudo-password"));
    assert.equal(handover.inputs["update"], RECONNECT_CHECK);
    const step = readHostStdin((handover.inputs["stdin"] as { value: string }).value, "sudo-password");
    assert.deepEqual(step, {
      password: "hunter2",
      script: renderServiceScript("container-handover"),
      create: {
        CONTAINER: "inference",
        PROJECT: "jetson-fleet-unit",
        SERVICE: "inference",
        HOST_NAME: "orin-01",
        GUARD_TIMEOUT: String(60 + 3 * 35 + 30 + 60),
        HEALTHCHECK: "1",
        BIND_SOURCES: "0:0 /opt/fleet/models\n10001:10001 /opt/fleet/output\n",
      },
      data: "",
    });
    // The pull, then the handover, then the container.
    const depNames = async (name: string, type: string) =>
      Promise.all(((optsOf(captured, name, type).dependsOn ?? []) as pulumi.Resource[]).map((r) => unwrap(r.urn)));
    const last = (urns: string[]) => urns[urns.length - 1]?.split("::").pop();
    assert.equal(last(await depNames("services-orin-01-inference-handover", "command:remote:Command")), "services-orin-01-inference-image");
    assert.equal(
      last(await depNames("services-orin-01-inference", "docker:index/container:Container")),
      "services-orin-01-inference-handover",
    );
    assert.deepEqual(
      rec
        .ofType("command:remote:Command")
        .map((c) => c.name)
        .sort(),
      ["inference", "mediamtx", "ui"].map((s) => `services-orin-01-${s}-handover`),
    );
    assert.ok(d.services["orin-01"]?.["inference"]?.container);
  });

  it("runs each service as a docker.Container with exactly the spec's settings, its image pulled by digest", async () => {
    const { rec } = await deploy();
    assert.deepEqual(
      rec
        .ofType("docker:index/remoteImage:RemoteImage")
        .map((r) => [r.name, r.inputs])
        .sort(),
      ["orin-01", "orin-02", "orin-03"]
        .flatMap((h) =>
          [
            ["mediamtx", MEDIAMTX],
            ["inference", INFERENCE],
            ["ui", UI],
          ].map(([s, ref]) => [`services-${h}-${s}-image`, { name: ref, keepLocally: true }]),
        )
        .sort(),
    );
    const inference = rec.ofType("docker:index/container:Container").find((c) => c.name === "services-orin-02-inference");
    assert.deepEqual(inference?.inputs, {
      name: "inference",
      image: INFERENCE,
      envs: secretOf(["API_TOKEN=t0ken", "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video", "NVIDIA_VISIBLE_DEVICES=all"]),
      runtime: "nvidia",
      networkMode: "host",
      ports: [],
      mounts: [
        { type: "bind", source: "/opt/fleet/models", target: "/models", readOnly: true },
        { type: "bind", source: "/opt/fleet/output", target: "/output", readOnly: false },
      ],
      devices: [],
      shmSize: 2048,
      ulimits: [],
      healthcheck: {
        tests: ["CMD", "python3", "/opt/inference/app/healthcheck.py"],
        interval: "30s",
        timeout: "5s",
        retries: 3,
        startPeriod: "1m0s",
      },
      wait: true,
      waitTimeout: 60 + 3 * 35 + 30,
      restart: "unless-stopped",
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "3" },
      cpus: "4.0",
      memory: 6144,
      memorySwap: 2 * 6144,
      deviceRequests: [{ driver: "nvidia", count: -1, capabilities: ["gpu"] }],
      labels: [{ label: "jetson-fleet.project", value: "jetson-fleet-unit" }],
      user: "10001:10001",
      readOnly: false,
      securityOpts: ["no-new-privileges:true"],
      mustRun: true,
    });
    const ui = rec.ofType("docker:index/container:Container").find((c) => c.name === "services-orin-03-ui");
    assert.deepEqual(ui?.inputs["ports"], [{ internal: 80, external: 8088, protocol: "tcp", ip: "0.0.0.0" }]);
    // Bridge services share the stack's own network on each host, as compose's project network.
    assert.equal(ui?.inputs["networkMode"], "jetson-fleet-unit_containers");
    assert.deepEqual(
      rec.ofType("docker:index/network:Network").map((n) => [n.name, n.inputs["name"]]),
      ["orin-01", "orin-02", "orin-03"].map((h) => [`services-${h}-network`, "jetson-fleet-unit_containers"]),
    );
  });

  it("deletes a container before creating its replacement (fixed names, host ports)", async () => {
    const { captured } = await deploy();
    const containers = captured.filter((c) => c.type === "docker:index/container:Container");
    assert.equal(containers.length, 9);
    for (const c of containers) assert.equal(c.opts.deleteBeforeReplace, true, c.name);
  });

  it("starts services after their dependencies and each host batch after the previous one", async () => {
    const { captured, d } = await deploy(3, 2);
    assert.deepEqual(d.batches, [["orin-01", "orin-02"], ["orin-03"]]);
    const s = d.services;
    // The containers carry the order (a component's dependsOn does not reach its children), by
    // resource name: the services they wait for, then their own handover step.
    const deps = async (name: string) =>
      Promise.all(
        ((optsOf(captured, name, "docker:index/container:Container").dependsOn ?? []) as pulumi.Resource[]).map(async (r) =>
          (await unwrap(r.urn)).split("::").pop(),
        ),
      );
    const own = (name: string) => `${name}-handover`;
    assert.deepEqual(await deps("services-orin-01-mediamtx"), [own("services-orin-01-mediamtx")]);
    assert.deepEqual(await deps("services-orin-01-inference"), ["services-orin-01-mediamtx", own("services-orin-01-inference")]);
    assert.deepEqual(await deps("services-orin-02-ui"), ["services-orin-02-inference", own("services-orin-02-ui")]);
    // The second batch waits for every service of the first.
    const firstBatch = ["orin-01", "orin-02"].flatMap((h) => ["mediamtx", "inference", "ui"].map((n) => `services-${h}-${n}`));
    assert.deepEqual(await deps("services-orin-03-mediamtx"), [...firstBatch, own("services-orin-03-mediamtx")]);
    assert.deepEqual(await deps("services-orin-03-inference"), [
      "services-orin-03-mediamtx",
      ...firstBatch,
      own("services-orin-03-inference"),
    ]);
    assert.ok(s["orin-03"]?.["inference"]);
  });

  it("registers each service on each host as jetson:services:Service with inputs { host, service, update }", async () => {
    const { rec } = await deploy(1);
    const services = rec.ofType(SERVICE_TYPE);
    assert.deepEqual(services.map((s) => s.name).sort(), [
      "services-orin-01-inference",
      "services-orin-01-mediamtx",
      "services-orin-01-ui",
    ]);
    const inference = services.find((s) => s.name.endsWith("inference"));
    const spec = SERVICES[0]!;
    // A secret environment value makes the whole service input a secret in the state (the engine
    // marks the top-level property); its shape is unchanged.
    assert.deepEqual(inference?.inputs, { host: "orin-01", service: secretOf({ ...spec, image: INFERENCE }), update: HOST_NETWORK_PLAN });
    assert.deepEqual(Object.keys(inference?.inputs ?? {}), ["host", "service", "update"]);
  });
});

describe("ComposeDeployment", () => {
  async function deploy(n = 3, maxUnavailable: number | string = 1, images: Record<string, pulumi.Input<string>> = IMAGES) {
    const rec = useMockStack({ stack: "unit", config: {} }, new ResourceRecorder(() => ({ stdout: "updated\n", stderr: "" })));
    const { captured, transformations } = captureOptions();
    const d = new ComposeDeployment(
      "services",
      { hosts: hosts(n), services: SERVICES, images, secretEnvironment: SECRET_ENV, maxUnavailable },
      { transformations },
    );
    await unwrap(d.results);
    return { rec, captured, d };
  }
  /** The step an apply command's stdin carries (the provider's value, or a secret's). */
  const stepOf = (c: { inputs: Record<string, unknown> }, elevation: Elevation = "sudo-password") => {
    const stdin = c.inputs["stdin"];
    const text = typeof stdin === "string" ? stdin : (stdin as { value: string }).value;
    return readHostStdin(text, elevation);
  };
  const applyEnv = (project: string, host: string) => ({
    PROJECT: project,
    HOST_NAME: host,
    HEALTH_TIMEOUT: String(60 + 3 * 35 + 30),
    // The inference service's mounts: models read-only (root's), output written by its user.
    BIND_SOURCES: "0:0 /opt/fleet/models\n10001:10001 /opt/fleet/output\n",
  });

  it("applies the rendered compose file on each host with compose-apply.sh, the file on stdin after the sudo password's line", async () => {
    const { rec } = await deploy();
    const file = renderComposeFile(SERVICES, IMAGES);
    const commands = rec.ofType("command:remote:Command");
    assert.deepEqual(
      commands.map((c) => c.name),
      ["services-orin-01-apply", "services-orin-02-apply", "services-orin-03-apply"],
    );
    commands.forEach((c, i) => {
      // The project follows the stack: jetson-fleet (the mocks' Pulumi project), stack "unit".
      const env = applyEnv("jetson-fleet-unit", `orin-0${i + 1}`);
      // The same short command line on every host, for each of the provider's commands; a wrapper
      // that takes the password's line itself, so the file's first line is the file's whether sudo asks or not.
      assert.equal(c.inputs["create"], hostCommand("compose-apply", "create", "sudo-password"));
      // A new connection or password changes no service: the update runs nothing on the host.
      assert.equal(c.inputs["update"], RECONNECT_CHECK);
      assert.equal(c.inputs["delete"], hostCommand("compose-apply", "delete", "sudo-password"));
      assert.doesNotMatch(
        JSON.stringify([c.inputs["create"], c.inputs["update"], c.inputs["delete"]]),
        /t0ken|hunter2|orin-0|jetson-fleet-unit/,
      );
      const step = {
        script: renderServiceScript("compose-apply"),
        create: env,
        // Destroy: down for this project only while the host still runs the file this step applied.
        delete: { PROJECT: "jetson-fleet-unit", HOST_NAME: `orin-0${i + 1}`, ACTION: "delete", FILE_SHA256: sha256(file) },
      };
      // The password's line, the step, then the file; a secret, as the file holds a secret environment value.
      assert.deepEqual(c.inputs["stdin"], secretOf(hostStdin("sudo-password", "hunter2", step, file)));
      assert.deepEqual(stepOf(c), { password: "hunter2", ...step, data: file });
      assert.deepEqual(c.inputs["triggers"], secretOf([contentHash(stepTrigger(step), file)]));
      // The command SDK adds its dial defaults to what a connection leaves out.
      assert.deepEqual(c.inputs["connection"], secretOf({ ...connectionOf(i), dialErrorLimit: 10 }));
      assert.equal(c.inputs["addPreviousOutputInEnv"], false);
    });
  });

  it("names the compose project after the stack unless given one, and refuses one compose would not", async () => {
    // Mocks alone, no stack file: nothing here reads config (and useMockStack adds an exit listener per stack).
    const rec = new ResourceRecorder(() => ({ stdout: "updated\n", stderr: "" }));
    pulumi.runtime.setMocks(rec, PROJECT, "staging", false);
    const d = new ComposeDeployment("services", { hosts: hosts(2), services: SERVICES, images: IMAGES });
    await unwrap(d.results);
    const projectOf = (c: { inputs: Record<string, unknown> }) => stepOf(c).create["PROJECT"];
    assert.equal(d.project, "jetson-fleet-staging");
    assert.deepEqual(rec.ofType("command:remote:Command").map(projectOf), ["jetson-fleet-staging", "jetson-fleet-staging"]);
    // Same stack, a name given.
    const given = new ComposeDeployment("given", { hosts: hosts(1), services: SERVICES, images: IMAGES, project: "fleet_a-2" });
    await unwrap(given.results);
    assert.equal(given.project, "fleet_a-2");
    assert.equal(given.projects["orin-01"]?.project, "fleet_a-2");
    assert.equal(
      projectOf(rec.ofType("command:remote:Command").find((c) => c.name === "given-orin-01-apply") ?? assert.fail()),
      "fleet_a-2",
    );
    for (const bad of ["Fleet", "-fleet", "fleet a", "../etc", ""]) {
      assert.throws(() => new ComposeDeployment("bad", { hosts: hosts(1), services: SERVICES, images: IMAGES, project: bad }), {
        name: "ServiceArgsError",
        message: `project ${JSON.stringify(bad)} is not a compose project name; expected lower-case letters, digits, "-" and "_", starting with a letter or digit (e.g. "jetson-fleet-dev")`,
      });
    }
    // Where no sudo password is needed, the step and the file go alone (no password line).
    const file = renderComposeFile(SERVICES, IMAGES);
    for (const elevation of ["sudo", "root"] as const) {
      const p = new ComposeProject(`as-${elevation}`, { host: { ...hosts(1)[0]!, elevation }, services: SERVICES, images: IMAGES });
      const read = readHostStdin((await unwrap(p.apply.stdin)) ?? "", elevation);
      assert.equal(read.password, undefined);
      assert.equal(read.data, file);
      assert.equal(read.create["PROJECT"], "jetson-fleet-staging");
      assert.equal(await unwrap(p.apply.create), hostCommand("compose-apply", "create", elevation));
      assert.equal(p.project, "jetson-fleet-staging");
    }
  });

  it("updates hosts batch after batch: each apply step waits for the previous batch's", async () => {
    const { captured, d } = await deploy(4, "50%");
    assert.deepEqual(d.batches, [
      ["orin-01", "orin-02"],
      ["orin-03", "orin-04"],
    ]);
    const p = d.projects;
    assert.deepEqual(optsOf(captured, "services-orin-01-apply", "command:remote:Command").dependsOn, []);
    assert.deepEqual(optsOf(captured, "services-orin-02-apply", "command:remote:Command").dependsOn, []);
    for (const h of ["orin-03", "orin-04"]) {
      assert.deepEqual(optsOf(captured, `services-${h}-apply`, "command:remote:Command").dependsOn, [
        p["orin-01"]?.apply,
        p["orin-02"]?.apply,
      ]);
    }
  });

  it("stands for each service on each host with a jetson:services:Service of inputs { host, service, update }", async () => {
    const { rec } = await deploy(2);
    const services = rec.ofType(SERVICE_TYPE);
    assert.deepEqual(
      services.map((s) => s.name).sort(),
      ["orin-01", "orin-02"].flatMap((h) => ["inference", "mediamtx", "ui"].map((s) => `services-${h}-${s}`)),
    );
    const ui = services.find((s) => s.name === "services-orin-02-ui");
    assert.deepEqual(ui?.inputs, {
      host: "orin-02",
      service: { ...SERVICES[2], image: UI },
      update: { strategy: "recreate", reason: "has no health check to tell when the new version is ready" },
    });
  });

  it("deploys nothing new when a tag moves to the same digest", async () => {
    const registry: Record<string, string> = {
      "bluenviron/mediamtx:1.9.3": MEDIAMTX,
      "bluenviron/mediamtx:1.9": MEDIAMTX,
      "registry.lab:5000/fleet/ui:2.1": UI,
    };
    const resolve = (ref: string) => Promise.resolve(registry[ref] ?? assert.fail(`unexpected lookup of ${ref}`));
    const triggersFor = async (mediamtxTag: string) => {
      const services = SERVICES.map((s) => (s.name === "mediamtx" ? { ...s, image: mediamtxTag } : s));
      const images = pinServiceImages(services, { inference: INFERENCE }, resolve);
      assert.equal(await unwrap(images["mediamtx"]!), MEDIAMTX);
      const { rec } = await deploy(1, 1, images);
      return rec.ofType("command:remote:Command")[0]?.inputs["triggers"];
    };
    assert.deepEqual(await triggersFor("bluenviron/mediamtx:1.9"), await triggersFor("bluenviron/mediamtx:1.9.3"));
  });
});

describe("pinServiceImages", () => {
  it("takes built images by digest, keeps digests, resolves tags, and refuses an unbuilt image", async () => {
    const lookups: string[] = [];
    const images = pinServiceImages(SERVICES, { inference: INFERENCE }, (ref) => {
      lookups.push(ref);
      return Promise.resolve(ref.startsWith("bluenviron") ? MEDIAMTX : UI);
    });
    assert.deepEqual(await unwrap(pulumi.all(images)), IMAGES);
    assert.deepEqual(lookups.sort(), ["bluenviron/mediamtx:1.9.3", "registry.lab:5000/fleet/ui:2.1"]);
    const pinned = pinServiceImages([{ ...SERVICES[1]!, image: `bluenviron/mediamtx:1.9.3@${digest("2")}` }], {}, () =>
      assert.fail("no lookup"),
    );
    assert.equal(await unwrap(pinned["mediamtx"]!), MEDIAMTX);
    assert.throws(() => pinServiceImages(SERVICES, {}, () => assert.fail("no lookup")), {
      message: 'service "inference" builds image "inference", which this stack does not build',
    });
  });
});
