import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { StackConfigError } from "../../components/index.ts";
import { VALID_SECRET_PATHS, rawValues, validConfig } from "../support/fixtures.ts";
import { ResourceRecorder, importFresh, settle, unwrap, useMockStack } from "../support/mocks.ts";

const PROGRAM = join(import.meta.dirname, "..", "..", "index.ts");

interface ProgramExports {
  dockerHosts: pulumi.Output<Record<string, string>>;
  hostFacts: pulumi.Output<Record<string, unknown>>;
  hostVerification: pulumi.Output<Record<string, string>>;
  imageRefs: pulumi.Output<Record<string, string>>;
  services: string[];
  serviceImages: pulumi.Output<Record<string, string>>;
  serviceResults: pulumi.Output<Record<string, string>>;
  deployTarget: string;
}

/** Where `secret` is in `value` outside any Pulumi secret, as paths (`spec.template.env[0].value`). */
function plainPaths(value: unknown, secret: string, path = ""): string[] {
  if (typeof value === "string") return value.includes(secret) ? [path || "(the value)"] : [];
  if (value === null || typeof value !== "object") return [];
  const node = value as Record<string, unknown>;
  if (node[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig) return [];
  return Object.entries(node).flatMap(([k, v]) => plainPaths(v, secret, path ? `${path}.${k}` : k));
}

const DIGEST = `sha256:${"d".repeat(64)}`;
const MEDIAMTX = `bluenviron/mediamtx@sha256:${"e".repeat(64)}`;

/**
 * Mocks the valid fleet (with `overrides`) and a builder: MediaMTX pinned by digest, since the
 * unit tier asks no registry to resolve a tag; hosts report facts, builds report DIGEST.
 */
function mockFleet(overrides: Record<string, unknown>, secretPaths: Iterable<string> = VALID_SECRET_PATHS): ResourceRecorder {
  const config = {
    ...validConfig(),
    services: validConfig().services?.map((s) => (s.name === "mediamtx" ? { ...s, image: MEDIAMTX } : s)),
    ...overrides,
  };
  process.env["BUILDX_BUILDER"] = "jetson-fleet-unit";
  return useMockStack(
    { stack: "unit", config, secretPaths },
    new ResourceRecorder((args) =>
      args.name.endsWith("-facts")
        ? { stdout: '{"l4tRelease":"36.4.3"}' }
        : args.type === "docker-build:index:Image"
          ? { digest: DIGEST }
          : { stdout: "ok" },
    ),
  );
}

describe("index.ts", () => {
  beforeEach(() => {
    delete process.env["BUILDX_BUILDER"];
    delete process.env["JETSON_FLEET_BUILD_ON_PREVIEW"];
  });

  it("exports the fleet described by a valid stack", async () => {
    const recorder = mockFleet({});
    process.env["JETSON_FLEET_BUILD_ON_PREVIEW"] = "true";
    const program = await importFresh<ProgramExports>(PROGRAM);
    assert.deepEqual(await unwrap(program.dockerHosts), {
      "jetson-01": "ssh://ubuntu@192.168.50.11:22",
      "jetson-02": "ssh://ubuntu@jetson-02.lab:2222",
    });
    assert.deepEqual(await unwrap(program.hostFacts), { "jetson-01": { l4tRelease: "36.4.3" }, "jetson-02": { l4tRelease: "36.4.3" } });
    assert.deepEqual(await unwrap(program.hostVerification), { "jetson-01": "ok", "jetson-02": "ok" });
    // One JetsonHost per host.
    assert.deepEqual(
      recorder.ofType("jetson:host:JetsonHost").map((r) => r.name),
      ["jetson-01", "jetson-02"],
    );
    assert.deepEqual(await unwrap(program.serviceResults), { "jetson-01": "ok", "jetson-02": "ok" });
    // Seven steps per host (the stack names a compose tool and a registry with credentials), then
    // the compose mode's apply step per host.
    assert.deepEqual(
      recorder
        .ofType("command:remote:Command")
        .map((c) => c.name)
        .filter((n) => n.endsWith("-apply"))
        .sort(),
      ["services-jetson-01-apply", "services-jetson-02-apply"],
    );
    assert.equal(recorder.ofType("command:remote:Command").length, 16);
    assert.deepEqual(
      recorder
        .ofType("command:remote:Command")
        .map((c) => c.name)
        .filter((n) => n.endsWith("-install-compose") || n.endsWith("-registry-login"))
        .sort(),
      ["jetson-01-install-compose", "jetson-01-registry-login", "jetson-02-install-compose", "jetson-02-registry-login"],
    );
    assert.deepEqual(await unwrap(program.serviceImages), {
      inference: `registry.lab:5000/inference@${DIGEST}`,
      mediamtx: MEDIAMTX,
    });
    assert.deepEqual(
      recorder
        .ofType("jetson:services:Service")
        .map((r) => r.name)
        .sort(),
      ["services-jetson-01-inference", "services-jetson-01-mediamtx", "services-jetson-02-inference", "services-jetson-02-mediamtx"],
    );
    // The stack's image, built by the environment's builder (and on preview, as PR checks ask).
    const [build] = recorder.ofType("docker-build:index:Image");
    assert.equal(build?.name, "inference-build");
    assert.deepEqual(build?.inputs["builder"], { name: "jetson-fleet-unit" });
    assert.equal(build?.inputs["buildOnPreview"], true);
    assert.deepEqual(build?.inputs["tags"], ["registry.lab:5000/inference:unit"]);
    assert.deepEqual(await unwrap(program.imageRefs), { inference: `registry.lab:5000/inference@${DIGEST}` });
    assert.deepEqual(await unwrap(program.services), ["inference", "mediamtx"]);
    assert.equal(await unwrap(program.deployTarget), "compose");
  });

  // Containers: per host the docker-access step and a handover step per service, no compose apply.
  for (const [target, containers, services, commands] of [
    ["containers", 4, 4, 14 + 2 + 4],
    ["kubernetes", 0, 2, 14],
  ] as const) {
    it(`deploys with deploy.target ${target}`, async () => {
      const recorder = mockFleet({
        deploy: { target, ...(target === "kubernetes" ? { kubernetes: { renderYamlToDirectory: "rendered" } } : {}) },
      });
      const program = await importFresh<ProgramExports>(PROGRAM);
      await unwrap(pulumi.all([program.serviceResults, program.serviceImages, program.hostVerification]));
      await settle();
      assert.equal(recorder.ofType("docker:index/container:Container").length, containers);
      assert.equal(recorder.ofType("jetson:services:Service").length, services);
      assert.equal(recorder.ofType("command:remote:Command").length, commands, "no compose apply steps");
      if (target === "kubernetes") {
        // One DaemonSet per service, on the Jetsons by default.
        const daemonSets = recorder.ofType("kubernetes:apps/v1:DaemonSet");
        assert.equal(daemonSets.length, 2);
        const spec = daemonSets[0]?.inputs["spec"] as { template: { spec: { nodeSelector: Record<string, string> } } };
        assert.deepEqual(spec.template.spec.nodeSelector, { "kubernetes.io/arch": "arm64" });
      }
    });
  }

  // Where the program finds which values are secret must not matter: run from a directory without
  // the stack file (an Automation API program, `--config-file`), the engine's word that `services`
  // holds a secret still keeps a secret environment value out of every input in plain text.
  for (const target of ["compose", "containers", "kubernetes"] as const) {
    it(`keeps a secret environment value secret in every input (deploy.target ${target}, stack file elsewhere)`, async () => {
      const token = "env-secret-7f3a9c2e";
      const services = validConfig().services?.map((s) =>
        s.name === "mediamtx" ? { ...s, image: MEDIAMTX } : { ...s, environment: { API_TOKEN: token, LOG_LEVEL: "info" } },
      );
      const deploy = { target, ...(target === "kubernetes" ? { kubernetes: { renderYamlToDirectory: "rendered" } } : {}) };
      const recorder = mockFleet({ services, deploy });
      const config = { ...validConfig(), services, deploy };
      pulumi.runtime.setAllConfig(rawValues(config), ["jetson-fleet:hosts", "jetson-fleet:registry", "jetson-fleet:services"]);
      process.chdir(mkdtempSync(join(tmpdir(), "jetson-fleet-elsewhere-")));
      const program = await importFresh<ProgramExports>(PROGRAM);
      await unwrap(pulumi.all([program.serviceResults, program.hostVerification]));
      await settle();
      const holders = recorder.resources.filter((r) => JSON.stringify(r.inputs).includes(token)).map((r) => `${r.type} ${r.name}`);
      assert.ok(holders.length > 0, "some resource gets the value");
      assert.deepEqual(
        recorder.resources.flatMap((r) => plainPaths(r.inputs, token).map((p) => `${r.type} ${r.name}: ${p}`)),
        [],
        `holders: ${holders.join(", ")}`,
      );
    });
  }

  it("keeps a host address the stack encrypts secret in every input and output", async () => {
    const address = validConfig().hosts?.[0]?.address as string;
    const recorder = mockFleet({}, [...VALID_SECRET_PATHS, "hosts[0].address"]);
    const program = await importFresh<ProgramExports & { serviceEndpoints: Record<string, unknown> }>(PROGRAM);
    await unwrap(pulumi.all([program.serviceResults, program.hostVerification]));
    await settle();
    assert.ok(
      recorder.resources.some((r) => JSON.stringify(r.inputs).includes(address)),
      "the steps connect to it",
    );
    assert.deepEqual(
      recorder.resources.flatMap((r) => plainPaths(r.inputs, address).map((p) => `${r.type} ${r.name}: ${p}`)),
      [],
    );
    assert.equal(await pulumi.isSecret(program.dockerHosts), true);
    assert.equal(await pulumi.isSecret(pulumi.output(program.serviceEndpoints["jetson-01"])), true);
    assert.equal(await pulumi.isSecret(pulumi.output(program.serviceEndpoints["jetson-02"])), false);
  });

  it("stops on bad config before registering any resource", async () => {
    const config = validConfig() as Record<string, unknown>;
    config["hots"] = [];
    const recorder = useMockStack({ stack: "unit", config, secretPaths: [] });
    await assert.rejects(importFresh(PROGRAM), (err: unknown) => {
      assert.ok(err instanceof StackConfigError);
      assert.equal(
        err.lines[2],
        'Pulumi.unit.yaml: jetson-fleet:hots: unknown key "hots"; did you mean "hosts"? Expected one of: production, hosts, runtime, registry, images, models, services, proxy, deploy',
      );
      assert.equal(err.lines.length, 4, err.message);
      return true;
    });
    assert.deepEqual(recorder.resources, []);
  });

  it("stops before registering any resource when images have no builder", async () => {
    const recorder = useMockStack({ stack: "unit", config: validConfig(), secretPaths: VALID_SECRET_PATHS });
    await assert.rejects(
      importFresh(PROGRAM),
      /Pulumi\.unit\.yaml: jetson-fleet:images: builds 1 image\(s\) but BUILDX_BUILDER is not set/,
    );
    assert.deepEqual(recorder.resources, []);
  });
});
