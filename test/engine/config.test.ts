// A broken stack stops `pulumi preview` and `pulumi up` with the same single message the loader
// produces, before any resource is registered, and without a stack trace.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { engineStack, type EngineStack } from "../support/engine.ts";

const EXPECTED = [
  "Diagnostics:",
  "pulumi:pulumi:Stack (jetson-fleet-broken):",
  "error: invalid stack config (2 problems); nothing was changed:",
  'Pulumi.broken.yaml: jetson-fleet:deploy.target: got the text "swarm"; expected one of: "compose", "containers", "kubernetes"',
  'Pulumi.broken.yaml: jetson-fleet:hots: unknown key "hots"; did you mean "hosts"? Expected one of: production, hosts, runtime, registry, images, models, services, proxy, deploy',
];

/** The engine's Diagnostics block of a failed command, one trimmed line each. */
function diagnostics(err: Error): string[] {
  const text = err.message;
  const start = text.indexOf("Diagnostics:");
  assert.ok(start >= 0, text);
  return text
    .slice(start, text.indexOf("Resources:", start))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

describe("a broken stack under the real engine", () => {
  let env: EngineStack;
  before(async () => {
    env = await engineStack({ stack: "broken", stackFile: "Pulumi.dev.yaml", config: { hots: [], deploy: { target: "swarm" } } });
  });
  after(() => env.dispose());

  it("pulumi preview shows one message listing every problem, without a stack trace", async () => {
    const err = await env.stack.preview({ color: "never" }).then(
      () => assert.fail("preview should fail"),
      (e: unknown) => e as Error,
    );
    assert.deepEqual(diagnostics(err), EXPECTED);
    assert.doesNotMatch(err.message, /^\s+at .+:\d+:\d+\)?$/m, "no stack trace");
  });

  it("pulumi up fails the same way and registers nothing but the stack itself", async () => {
    const err = await env.stack.up({ color: "never" }).then(
      () => assert.fail("up should fail"),
      (e: unknown) => e as Error,
    );
    assert.deepEqual(diagnostics(err), EXPECTED);
    const state = await env.stack.exportStack();
    const types = ((state.deployment as { resources?: { type: string }[] }).resources ?? []).map((r) => r.type);
    assert.deepEqual(
      types.filter((t) => t !== "pulumi:pulumi:Stack"),
      [],
    );
  });
});
