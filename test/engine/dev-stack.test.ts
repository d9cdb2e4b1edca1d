// The dev stack's lifecycle under the real engine: preview, up, a no-op up, refresh without
// drift, destroy without leftovers.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { engineStack, type EngineStack } from "../support/engine.ts";

describe("dev stack lifecycle", () => {
  let env: EngineStack;
  before(async () => {
    env = await engineStack({ stack: "dev", stackFile: "Pulumi.dev.yaml" });
  });
  after(() => env.dispose());

  it("previews the creates", async () => {
    const preview = await env.stack.preview({ color: "never", diff: true });
    assert.equal(preview.changeSummary["create"], 1, JSON.stringify(preview.changeSummary));
  });

  it("comes up with the outputs the config describes", async () => {
    const up = await env.stack.up({ color: "never" });
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(up.outputs["services"]?.value, ["inference", "mediamtx", "web-ui"]);
    assert.equal(up.outputs["deployTarget"]?.value, "compose");
  });

  it("changes nothing on a second up", async () => {
    const up = await env.stack.up({ color: "never" });
    const changes = Object.entries(up.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
    assert.deepEqual(changes, []);
  });

  it("finds no drift on refresh", async () => {
    const refresh = await env.stack.refresh({ color: "never" });
    const changes = Object.entries(refresh.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
    assert.deepEqual(changes, []);
  });

  it("destroys everything", async () => {
    await env.stack.destroy({ color: "never" });
    const state = await env.stack.exportStack();
    assert.deepEqual((state.deployment as { resources?: unknown[] }).resources ?? [], []);
  });
});
