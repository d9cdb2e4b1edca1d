// The containers mode's blue/green updates under Pulumi mocks: the per-host proxy (config step,
// image, container), the blue-green services' hashed container names, switch steps and
// resource options, and that recreate services and stacks without a proxy are left as they were.
import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import {
  ContainerDeployment,
  RECONNECT_CHECK,
  Service,
  ServiceSpec,
  CONTAINER_GENERATION_COMMAND,
  containerArgs,
  containerInputsHash,
  hostCommand,
  hostStdin,
  proxyContainerName,
  renderServiceScript,
  stepTrigger,
  type ServiceHost,
} from "../../../components/index.ts";
import { PROXY_CONFIG_DIR, proxyRoutes, renderProxyConfig } from "../../../components/services/proxy.ts";
import { readHostStdin } from "../../support/host-stdin.ts";
import { clientKey } from "../../support/fixtures.ts";
import { ResourceRecorder, unwrap, useMockStack, type RecordedResource } from "../../support/mocks.ts";

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const WEB = `registry.lab:5000/fleet/web@${digest("a")}`;
const WEB_NEXT = `registry.lab:5000/fleet/web@${digest("b")}`;
const API = `registry.lab:5000/fleet/api@${digest("c")}`;
const WORKER = `registry.lab:5000/fleet/worker@${digest("d")}`;
const MEDIAMTX = `bluenviron/mediamtx@${digest("e")}`;
const PROXY_IMAGE = `registry.lab:5000/fleet/proxy@${digest("f")}`;
const IMAGES = { web: WEB, api: API, worker: WORKER, mediamtx: MEDIAMTX };
const PROJECT = "jetson-fleet-unit";
const NETWORK = `${PROJECT}_containers`;

const healthcheck = {
  test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8080/healthz"],
  interval: "10s",
  timeout: "3s",
  retries: 3,
  startPeriod: "5s",
};
const SERVICES = [
  ServiceSpec.parse({ name: "mediamtx", image: "bluenviron/mediamtx:1.9.3", network: "host", ports: [{ target: 8554 }] }),
  // Blue-green: a bridge service with a TCP port and a health check.
  ServiceSpec.parse({
    name: "web",
    image: "registry.lab:5000/fleet/web:1",
    ports: [{ target: 8080, published: 18080 }],
    environment: { MODE: "blue" },
    volumes: [{ source: "/opt/fleet/web", target: "/srv", readOnly: true }],
    healthcheck,
  }),
  // Blue-green too, with a secret environment value and a port on one host address.
  ServiceSpec.parse({
    name: "api",
    image: "registry.lab:5000/fleet/api:1",
    ports: [{ target: 9000, published: 19000, hostIp: "127.0.0.1" }],
    environment: { API_TOKEN: "t0ken" },
    healthcheck,
  }),
  // Recreate (no port for the proxy), started once web is healthy.
  ServiceSpec.parse({ name: "worker", image: "registry.lab:5000/fleet/worker:1", dependsOn: { web: "healthy" }, healthcheck }),
];
const SECRET_ENV = { api: ["API_TOKEN"] };
// 5 s start period + 3 × (10 s + 3 s), plus the 30 s margin.
const HEALTH_TIMEOUT = 5 + 3 * 13 + 30;

function hosts(n: number): ServiceHost[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `orin-0${i + 1}`,
    connection: pulumi.secret({ host: `192.168.50.1${i + 1}`, port: 22, user: "fleet", privateKey: clientKey.privateKey }),
    elevation: "sudo-password" as const,
    sudoPassword: pulumi.secret("hunter2"),
    dockerHost: `ssh://fleet@192.168.50.1${i + 1}:22`,
  }));
}

interface Captured {
  readonly type: string;
  readonly name: string;
  readonly opts: pulumi.CustomResourceOptions;
}
const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:remote:Command";
const secretOf = (value: unknown) => ({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value });
const settle = () => new Promise((r) => setTimeout(r, 200));
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** The value of a (possibly secret) recorded input. */
const plain = (v: unknown): unknown =>
  typeof v === "object" && v !== null && pulumi.runtime.specialSigKey in v ? (v as unknown as { value: unknown }).value : v;

/**
 * The mocks' `-generation` step: a digest of its triggers, where the real one draws random digits
 * (so a test sees a new name exactly when the trigger, the container's inputs, changed).
 */
const generationOf = (inputsHash: string) => sha256(JSON.stringify([inputsHash])).slice(0, 12);

async function deploy(options: { n?: number; maxUnavailable?: number; proxy?: boolean; images?: Record<string, string> } = {}) {
  const rec = useMockStack(
    { stack: "unit", config: {} },
    new ResourceRecorder((a) =>
      a.type === "command:local:Command" ? { stdout: generationOf(String(plain((plain(a.inputs["triggers"]) as unknown[])[0]))) } : {},
    ),
  );
  const captured: Captured[] = [];
  const d = new ContainerDeployment(
    "services",
    {
      hosts: hosts(options.n ?? 1),
      services: SERVICES,
      images: options.images ?? IMAGES,
      secretEnvironment: SECRET_ENV,
      maxUnavailable: options.maxUnavailable ?? 1,
      sshAgent: () => "/unused",
      ...(options.proxy === false ? {} : { proxy: { image: PROXY_IMAGE, drainTimeoutSeconds: 20 } }),
    },
    {
      // Records every resource's options (mocks do not see them); the children inherit it.
      transformations: [
        (a) => {
          captured.push({ type: a.type, name: a.name, opts: a.opts });
          return undefined;
        },
      ],
    },
  );
  await settle();
  const optsOf = (name: string, type: string) =>
    captured.find((c) => c.name === name && c.type === type)?.opts ?? assert.fail(`no ${type} ${name}`);
  const byName = (type: string, name: string): RecordedResource =>
    rec.ofType(type).find((r) => r.name === name) ?? assert.fail(`no ${type} ${name}`);
  const depNames = async (name: string, type: string) =>
    Promise.all(((optsOf(name, type).dependsOn ?? []) as pulumi.Resource[]).map(async (r) => (await unwrap(r.urn)).split("::").pop()));
  return { rec, captured, d, optsOf, byName, depNames };
}

/** What `containerArgs` gives a blue-green service on the unit stack's network, and its name. */
async function expectedName(service: ServiceSpec, image: string, secretEnvironment?: readonly string[]): Promise<string> {
  const args = containerArgs(service, {
    image,
    project: PROJECT,
    network: NETWORK,
    behindProxy: true,
    ...(secretEnvironment ? { secretEnvironment } : {}),
  });
  const { name: _name, ...inputs } = await unwrap(pulumi.output(args));
  assert.equal(_name, service.name);
  assert.equal(await unwrap(containerInputsHash(args)), sha256(JSON.stringify(inputs)).slice(0, 12));
  return `${service.name}-${generationOf(sha256(JSON.stringify(inputs)).slice(0, 12))}`;
}

describe("ContainerDeployment with a proxy (blue-green)", () => {
  it("runs a blue-green service without ports or health wait, on the network under its name as an alias, named by a generation drawn when its inputs change", async () => {
    const { byName, optsOf } = await deploy();
    const web = byName(CONTAINER, "services-orin-01-web");
    const name = await expectedName(SERVICES[1]!, WEB);
    assert.match(name, /^web-[0-9a-f]{12}$/);
    assert.deepEqual(web.inputs, {
      name,
      image: WEB,
      envs: ["MODE=blue"],
      runtime: "runc",
      // Created on bridge and moved to the stack's network by the provider, with the alias.
      networkMode: "bridge",
      networksAdvanced: [{ name: NETWORK, aliases: ["web"] }],
      // The proxy holds 18080.
      ports: [],
      mounts: [{ type: "bind", source: "/opt/fleet/web", target: "/srv", readOnly: true }],
      devices: [],
      ulimits: [],
      // The health check stays (the switch step waits on it); no wait, no waitTimeout.
      healthcheck: { tests: healthcheck.test, interval: "10s", timeout: "3s", retries: 3, startPeriod: "5s" },
      restart: "unless-stopped",
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "3" },
      labels: [{ label: "jetson-fleet.project", value: PROJECT }],
      readOnly: false,
      securityOpts: ["no-new-privileges:true"],
      mustRun: true,
    });
    // Created before the one it replaces is deleted: the explicit false overrides the provider's default.
    assert.equal(optsOf("services-orin-01-web", CONTAINER).deleteBeforeReplace, false);
  });

  it("names a container with a secret environment value in plain text: its generation is drawn, not derived from the secret", async () => {
    const { byName } = await deploy();
    const api = byName(CONTAINER, "services-orin-01-api");
    assert.deepEqual(api.inputs["name"], await expectedName(SERVICES[2]!, API, ["API_TOKEN"]));
    assert.deepEqual(api.inputs["envs"], secretOf(["API_TOKEN=t0ken"]));
  });

  it("names a container anew when its image changes, and the same when nothing does", async () => {
    const first = plain((await deploy()).byName(CONTAINER, "services-orin-01-web").inputs["name"]);
    const again = plain((await deploy()).byName(CONTAINER, "services-orin-01-web").inputs["name"]);
    const next = plain((await deploy({ images: { ...IMAGES, web: WEB_NEXT } })).byName(CONTAINER, "services-orin-01-web").inputs["name"]);
    assert.equal(again, first);
    assert.notEqual(next, first);
    assert.equal(next, await expectedName(SERVICES[1]!, WEB_NEXT));
    // The generation step: drawn anew exactly when the container's inputs change.
    const { byName } = await deploy();
    const generation = byName("command:local:Command", "services-orin-01-web-generation");
    assert.equal(generation.inputs["create"], CONTAINER_GENERATION_COMMAND);
    assert.deepEqual(generation.inputs["triggers"], [
      await unwrap(containerInputsHash(containerArgs(SERVICES[1]!, { image: WEB, project: PROJECT, network: NETWORK, behindProxy: true }))),
    ]);
  });

  it("draws 12 random hex digits for a generation", () => {
    const draws = [0, 1].map(() => execSync(CONTAINER_GENERATION_COMMAND, { encoding: "utf8", shell: "/bin/sh" }));
    for (const d of draws) assert.match(d, /^[0-9a-f]{12}$/);
    assert.notEqual(draws[0], draws[1]);
  });

  it("switches the proxy to each new blue-green container with proxy-switch.sh, triggered by the container's id only", async () => {
    const { rec, byName, depNames } = await deploy();
    const name = await expectedName(SERVICES[1]!, WEB);
    const step = byName(COMMAND, "services-orin-01-web-switch");
    assert.equal(step.inputs["create"], hostCommand("proxy-switch", "create", "sudo-password"));
    assert.equal(step.inputs["update"], RECONNECT_CHECK);
    assert.equal(step.inputs["delete"], hostCommand("proxy-switch", "delete", "sudo-password"));
    assert.equal(step.inputs["addPreviousOutputInEnv"], false);
    assert.deepEqual(step.inputs["triggers"], ["services-orin-01-web-id"]);
    const common = { PROJECT, HOST_NAME: "orin-01", PROXY_CONTAINER: `${PROJECT}-proxy`, SERVICE: "web", CONTAINER: name };
    const stdin = step.inputs["stdin"] as { value: string };
    assert.deepEqual(
      stdin,
      secretOf(
        hostStdin("sudo-password", "hunter2", {
          script: renderServiceScript("proxy-switch"),
          create: { ACTION: "switch", ...common, IMAGE: WEB, HEALTH_TIMEOUT: String(HEALTH_TIMEOUT) },
          delete: { ACTION: "delete", ...common },
        }),
      ),
    );
    assert.deepEqual(readHostStdin(stdin.value, "sudo-password"), {
      password: "hunter2",
      script: renderServiceScript("proxy-switch"),
      create: { ACTION: "switch", ...common, IMAGE: WEB, HEALTH_TIMEOUT: "74" },
      delete: { ACTION: "delete", ...common },
      data: "",
    });
    assert.deepEqual(await depNames("services-orin-01-web-switch", COMMAND), ["services-orin-01-web", "services-orin-01-proxy"]);
    // The secret service's switch names its (secret) container.
    const api = readHostStdin((byName(COMMAND, "services-orin-01-api-switch").inputs["stdin"] as { value: string }).value, "sudo-password");
    assert.equal(api.create["CONTAINER"], await expectedName(SERVICES[2]!, API, ["API_TOKEN"]));
    assert.equal(api.delete?.["CONTAINER"], api.create["CONTAINER"]);
    // Only the blue-green services switch.
    assert.deepEqual(
      rec
        .ofType(COMMAND)
        .map((c) => c.name)
        .filter((n) => n.endsWith("-switch"))
        .sort(),
      ["services-orin-01-api-switch", "services-orin-01-web-switch"],
    );
  });

  it("prepares a blue-green container's host without a guard: bind sources, the compose container gone", async () => {
    const { byName, depNames } = await deploy();
    const handover = byName(COMMAND, "services-orin-01-web-handover");
    const step = readHostStdin((handover.inputs["stdin"] as { value: string }).value, "sudo-password");
    assert.deepEqual(step.create, {
      CONTAINER: await expectedName(SERVICES[1]!, WEB),
      PROJECT,
      SERVICE: "web",
      HOST_NAME: "orin-01",
      GUARD_TIMEOUT: String(HEALTH_TIMEOUT + 60),
      HEALTHCHECK: "0",
      BIND_SOURCES: "0:0 /opt/fleet/web\n",
    });
    const deps = await depNames("services-orin-01-web", CONTAINER);
    assert.equal(deps[deps.length - 1], "services-orin-01-web-handover");
  });

  it("runs the proxy on each host: its config step, its image and its container with exactly the blue-green services' ports", async () => {
    const { rec, byName, optsOf, depNames, d } = await deploy({ n: 2 });
    const blueGreen = [SERVICES[1]!, SERVICES[2]!];
    for (const host of ["orin-01", "orin-02"]) {
      const config = byName(COMMAND, `services-${host}-proxy-config`);
      const step = {
        script: renderServiceScript("proxy-switch"),
        create: {
          ACTION: "config",
          PROJECT,
          HOST_NAME: host,
          PROXY_CONTAINER: `${PROJECT}-proxy`,
          PROXY_CONFIG: renderProxyConfig(proxyRoutes(blueGreen), { drainTimeoutSeconds: 20 }),
          BLUE_GREEN: blueGreen.map((s) => s.name).join(" "),
        },
      };
      assert.equal(config.inputs["create"], hostCommand("proxy-switch", "create", "sudo-password"));
      assert.equal(config.inputs["update"], RECONNECT_CHECK);
      assert.equal(config.inputs["delete"], undefined);
      assert.deepEqual(config.inputs["stdin"], secretOf(hostStdin("sudo-password", "hunter2", step)));
      assert.deepEqual(config.inputs["triggers"], [stepTrigger(step)]);
      assert.deepEqual(byName("docker:index/remoteImage:RemoteImage", `services-${host}-proxy-image`).inputs, {
        name: PROXY_IMAGE,
        keepLocally: true,
      });
      assert.deepEqual(byName(CONTAINER, `services-${host}-proxy`).inputs, {
        name: proxyContainerName(PROJECT),
        image: PROXY_IMAGE,
        runtime: "runc",
        networkMode: NETWORK,
        ports: [
          { internal: 18080, external: 18080, ip: "0.0.0.0", protocol: "tcp" },
          { internal: 19000, external: 19000, ip: "127.0.0.1", protocol: "tcp" },
        ],
        mounts: [{ type: "bind", source: `/var/lib/jetson-fleet/proxy/${PROJECT}`, target: PROXY_CONFIG_DIR, readOnly: true }],
        restart: "unless-stopped",
        logDriver: "json-file",
        logOpts: { "max-size": "10m", "max-file": "3" },
        labels: [{ label: "jetson-fleet.project", value: PROJECT }],
        securityOpts: ["no-new-privileges:true"],
        wait: true,
        // Requests in flight get 5 s when it stops (PROXY_STOP_SECONDS).
        stopTimeout: 5,
        destroyGraceSeconds: 5,
        mustRun: true,
      });
      assert.equal(optsOf(`services-${host}-proxy`, CONTAINER).deleteBeforeReplace, true);
      assert.deepEqual(await depNames(`services-${host}-proxy`, CONTAINER), [`services-${host}-proxy-config`]);
      assert.ok(d.proxies[host]);
    }
    assert.equal(PROXY_CONFIG_DIR, "/usr/local/etc/haproxy");
    assert.equal(rec.ofType(CONTAINER).filter((c) => c.name.endsWith("-proxy")).length, 2);
    // The second host's proxy waits for the first batch, which ends with its switches.
    assert.deepEqual(await depNames("services-orin-02-proxy-config", COMMAND), [
      "services-orin-01-mediamtx",
      "services-orin-01-web-switch",
      "services-orin-01-api-switch",
      "services-orin-01-worker",
    ]);
    assert.match((await unwrap(d.results))["orin-01"] ?? "", new RegExp(`^jetson-fleet-proxy=${PROXY_IMAGE.replace(/[.]/g, "\\.")}$`, "m"));
  });

  it("starts dependents and the next batch after the switch steps", async () => {
    const { depNames, d } = await deploy({ n: 2 });
    // The worker starts after web's switch (web is healthy and serving then); every service on a
    // host with a proxy also after the proxy.
    assert.deepEqual(await depNames("services-orin-01-worker", CONTAINER), [
      "services-orin-01-web-switch",
      "services-orin-01-proxy",
      "services-orin-01-worker-handover",
    ]);
    assert.deepEqual(await depNames("services-orin-01-mediamtx", CONTAINER), [
      "services-orin-01-proxy",
      "services-orin-01-mediamtx-handover",
    ]);
    const firstBatch = [
      "services-orin-01-mediamtx",
      "services-orin-01-web-switch",
      "services-orin-01-api-switch",
      "services-orin-01-worker",
    ];
    assert.deepEqual(await depNames("services-orin-02-web-image", "docker:index/remoteImage:RemoteImage"), [
      ...firstBatch,
      "services-orin-02-proxy",
    ]);
    assert.equal(d.services["orin-01"]?.["web"]?.ready, d.services["orin-01"]?.["web"]?.switch);
    assert.equal(d.services["orin-01"]?.["worker"]?.ready, d.services["orin-01"]?.["worker"]?.container);
    assert.deepEqual(await unwrap(d.results), {
      "orin-01": [`api=${API}`, `jetson-fleet-proxy=${PROXY_IMAGE}`, `mediamtx=${MEDIAMTX}`, `web=${WEB}`, `worker=${WORKER}`].join("\n"),
      "orin-02": [`api=${API}`, `jetson-fleet-proxy=${PROXY_IMAGE}`, `mediamtx=${MEDIAMTX}`, `web=${WEB}`, `worker=${WORKER}`].join("\n"),
    });
  });

  it("leaves the recreate services as they were: fixed names, their ports, the health wait, the guard, delete before replace", async () => {
    const { byName, optsOf, rec } = await deploy();
    const worker = byName(CONTAINER, "services-orin-01-worker");
    assert.equal(worker.inputs["name"], "worker");
    assert.equal(worker.inputs["networkMode"], NETWORK);
    assert.equal(worker.inputs["networksAdvanced"], undefined);
    assert.equal(worker.inputs["wait"], true);
    assert.equal(worker.inputs["waitTimeout"], HEALTH_TIMEOUT);
    assert.equal(optsOf("services-orin-01-worker", CONTAINER).deleteBeforeReplace, true);
    const guard = readHostStdin(
      (byName(COMMAND, "services-orin-01-worker-handover").inputs["stdin"] as { value: string }).value,
      "sudo-password",
    );
    assert.equal(guard.create["CONTAINER"], "worker");
    assert.equal(guard.create["HEALTHCHECK"], "1");
    const mediamtx = byName(CONTAINER, "services-orin-01-mediamtx");
    assert.equal(mediamtx.inputs["name"], "mediamtx");
    assert.equal(mediamtx.inputs["networkMode"], "host");
    const services = rec.ofType("jetson:services:Service");
    assert.deepEqual(Object.fromEntries(services.map((s) => [s.name, (s.inputs["update"] as { strategy: string }).strategy])), {
      "services-orin-01-mediamtx": "recreate",
      "services-orin-01-web": "blue-green",
      "services-orin-01-api": "blue-green",
      "services-orin-01-worker": "recreate",
    });
    assert.deepEqual(services.find((s) => s.name === "services-orin-01-web")?.inputs["update"], {
      strategy: "blue-green",
      reason: "publishes TCP port 18080 and has a health check",
    });
  });

  it("without a proxy creates no proxy resources and recreates every service as before", async () => {
    const { rec, captured, d } = await deploy({ n: 2, proxy: false });
    const names = rec.resources.map((r) => r.name);
    assert.deepEqual(
      names.filter((n) => /-proxy|-switch$/.test(n)),
      [],
    );
    assert.deepEqual(d.proxies, {});
    for (const c of captured.filter((c) => c.type === CONTAINER)) assert.equal(c.opts.deleteBeforeReplace, true, c.name);
    const web = rec.ofType(CONTAINER).find((c) => c.name === "services-orin-01-web");
    assert.equal(web?.inputs["name"], "web");
    assert.deepEqual(web?.inputs["ports"], [{ internal: 8080, external: 18080, protocol: "tcp", ip: "0.0.0.0" }]);
    assert.equal(web?.inputs["wait"], true);
    assert.equal(web?.inputs["networkMode"], NETWORK);
    assert.deepEqual(rec.ofType("jetson:services:Service").find((s) => s.name === "services-orin-01-web")?.inputs["update"], {
      strategy: "recreate",
      reason: "the stack has no proxy (jetson-fleet:proxy)",
    });
    assert.equal((await unwrap(d.results))["orin-01"], [`api=${API}`, `mediamtx=${MEDIAMTX}`, `web=${WEB}`, `worker=${WORKER}`].join("\n"));
  });

  it("refuses a blue-green containers-mode Service without the host's proxy", () => {
    useMockStack({ stack: "unit", config: {} });
    assert.throws(
      () =>
        new Service("lone", {
          host: "orin-01",
          service: SERVICES[1]!,
          image: WEB,
          mode: "containers",
          update: { strategy: "blue-green", reason: "update: blue-green is set" },
        }),
      { message: `service "web" on host orin-01: update is blue-green, which needs the host's proxy (ServiceArgs.proxy)` },
    );
    const [host] = hosts(1);
    assert.throws(
      () =>
        new Service("no-network", {
          host: "orin-01",
          service: SERVICES[1]!,
          image: WEB,
          mode: "containers",
          update: { strategy: "blue-green", reason: "update: blue-green is set" },
          proxy: { host: host!, project: PROJECT, container: new pulumi.ComponentResource("test:index:Proxy", "proxy") },
        }),
      { message: `service "web" on host orin-01: update is blue-green, which needs the stack's network (ServiceArgs.network)` },
    );
  });
});
