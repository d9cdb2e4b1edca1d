import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { StackConfigError } from "../../components/index.ts";
import { VALID_SECRET_PATHS, validConfig } from "../support/fixtures.ts";
import { importFresh, unwrap, useMockStack } from "../support/mocks.ts";

const PROGRAM = join(import.meta.dirname, "..", "..", "index.ts");

interface ProgramExports {
  hosts: string[];
  services: string[];
  deployTarget: string;
}

describe("index.ts", () => {
  it("exports the fleet described by a valid stack", async () => {
    useMockStack({ stack: "unit", config: validConfig(), secretPaths: VALID_SECRET_PATHS });
    const program = await importFresh<ProgramExports>(PROGRAM);
    assert.deepEqual(await unwrap(program.hosts), ["jetson-01", "jetson-02"]);
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
});
