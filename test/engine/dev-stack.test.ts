// The dev stack's lifecycle under the real engine: preview, up (the inference image built by the
// dev buildkitd and pushed to the dev registry), a no-op up, refresh without drift, destroy
// without leftovers.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startDevEnv } from "../support/buildkit.ts";
import { engineStack, type EngineStack } from "../support/engine.ts";
import { run } from "../support/services.ts";

describe("dev stack lifecycle", () => {
  let env: EngineStack;
  before(async () => {
    env = await engineStack({ stack: "dev", stackFile: "Pulumi.dev.yaml", env: await startDevEnv() });
  });
  after(() => env.dispose());

  it("previews the creates", async () => {
    const preview = await env.stack.preview({ color: "never", diff: true });
    // The stack, and the inference image: its component and build.
    assert.equal(preview.changeSummary["create"], 3, JSON.stringify(preview.changeSummary));
  });

  it("comes up with the outputs the config describes", async () => {
    const up = await env.stack.up({ color: "never" });
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(up.outputs["services"]?.value, ["inference", "mediamtx", "web-ui"]);
    assert.equal(up.outputs["deployTarget"]?.value, "compose");
    // The image is in the dev registry under the digest the stack reports, tagged with the stack's name.
    const ref = (up.outputs["imageRefs"]?.value as Record<string, string>)["inference"] ?? "";
    assert.match(ref, /^127\.0\.0\.1:5000\/inference@sha256:[a-f0-9]{64}$/);
    const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:5000/inference:dev"]);
    assert.equal(`127.0.0.1:5000/inference@${(JSON.parse(stdout) as { Digest: string }).Digest}`, ref);
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
