import assert from "node:assert/strict";
import { join } from "node:path";
import { beforeEach, describe, it } from "node:test";
import type * as pulumi from "@pulumi/pulumi";
import { StackConfigError } from "../../components/index.ts";
import { VALID_SECRET_PATHS, validConfig } from "../support/fixtures.ts";
import { ResourceRecorder, importFresh, unwrap, useMockStack } from "../support/mocks.ts";

const PROGRAM = join(import.meta.dirname, "..", "..", "index.ts");

interface ProgramExports {
  dockerHosts: pulumi.Output<Record<string, string>>;
  hostFacts: pulumi.Output<Record<string, unknown>>;
  hostVerification: pulumi.Output<Record<string, string>>;
  imageRefs: pulumi.Output<Record<string, string>>;
  services: string[];
  deployTarget: string;
}

const DIGEST = `sha256:${"cd".repeat(32)}`;

describe("index.ts", () => {
  beforeEach(() => {
    delete process.env["BUILDX_BUILDER"];
    delete process.env["JETSON_FLEET_BUILD_ON_PREVIEW"];
  });

  it("exports the fleet described by a valid stack", async () => {
    const recorder = useMockStack(
      { stack: "unit", config: validConfig(), secretPaths: VALID_SECRET_PATHS },
      new ResourceRecorder((args) =>
        args.type === "docker-build:index:Image"
          ? { digest: DIGEST }
          : args.name.endsWith("-facts")
            ? { stdout: '{"l4tRelease":"36.4.3"}' }
            : { stdout: "ok" },
      ),
    );
    process.env["BUILDX_BUILDER"] = "fleet-builder";
    process.env["JETSON_FLEET_BUILD_ON_PREVIEW"] = "true";
    const program = await importFresh<ProgramExports>(PROGRAM);
    assert.deepEqual(await unwrap(program.dockerHosts), {
      "jetson-01": "ssh://ubuntu@192.168.50.11:22",
      "jetson-02": "ssh://ubuntu@jetson-02.lab:2222",
    });
    assert.deepEqual(await unwrap(program.hostFacts), { "jetson-01": { l4tRelease: "36.4.3" }, "jetson-02": { l4tRelease: "36.4.3" } });
    assert.deepEqual(await unwrap(program.hostVerification), { "jetson-01": "ok", "jetson-02": "ok" });
    // One JetsonHost per host, each with its five steps.
    assert.deepEqual(
      recorder.ofType("jetson:host:JetsonHost").map((r) => r.name),
      ["jetson-01", "jetson-02"],
    );
    assert.equal(recorder.ofType("command:remote:Command").length, 10);
    // The stack's image, built by the environment's builder (and on preview, as PR checks ask).
    const [build] = recorder.ofType("docker-build:index:Image");
    assert.equal(build?.name, "inference-build");
    assert.deepEqual(build?.inputs["builder"], { name: "fleet-builder" });
    assert.equal(build?.inputs["buildOnPreview"], true);
    assert.deepEqual(build?.inputs["tags"], ["registry.lab:5000/inference:unit"]);
    assert.deepEqual(await unwrap(program.imageRefs), { inference: `registry.lab:5000/inference@${DIGEST}` });
    assert.deepEqual(await unwrap(program.services), ["inference", "mediamtx"]);
    assert.equal(await unwrap(program.deployTarget), "compose");
  });

  it("stops on bad config before registering any resource", async () => {
    const config = validConfig() as Record<string, unknown>;
    config["hots"] = [];
    const recorder = useMockStack({ stack: "unit", config, secretPaths: [] });
    await assert.rejects(importFresh(PROGRAM), (err: unknown) => {
      assert.ok(err instanceof StackConfigError);
      assert.equal(
        err.lines[2],
        'Pulumi.unit.yaml: jetson-fleet:hots: unknown key "hots"; did you mean "hosts"? Expected one of: production, hosts, runtime, registry, images, services, deploy',
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
