// The Docker plugin under the real engine: a provider that asks for DOCKER_PLUGIN_VERSION runs
// (the plugin tools/toolchain.sh builds), and one that does not ask (the npm SDK then requests
// its own 5.2.0) fails at once: automatic plugin downloads are off, as they are everywhere here.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { engineStack, type EngineStack } from "../support/engine.ts";
import { docker } from "../support/services.ts";

describe("the Docker provider plugin", { timeout: 10 * 60_000 }, () => {
  const stacks: EngineStack[] = [];
  const stack = async (name: string, pinned: boolean) => {
    const env = await engineStack({ program: "test/engine/programs/docker-plugin", stack: name, config: { pinned } });
    stacks.push(env);
    return env;
  };
  after(async () => {
    for (const env of stacks) await env.dispose().catch(() => undefined);
  });

  it("runs a provider pinned to the installed plugin version", async () => {
    const env = await stack("plugin-pinned", true);
    const result = await env.stack.up({ color: "never" });
    assert.equal(result.outputs["networkName"]?.value, "jetson-fleet-plugin-plugin-pinned");
    assert.equal(
      (await docker("network", "inspect", "-f", "{{.Name}}", "jetson-fleet-plugin-plugin-pinned")).stdout.trim(),
      "jetson-fleet-plugin-plugin-pinned",
    );
  });

  it("fails before creating anything when a provider would need a plugin version that is not installed", async () => {
    const env = await stack("plugin-unpinned", false);
    await assert.rejects(env.stack.up({ color: "never" }), (err: unknown) => {
      assert.match(
        String(err),
        /pulumi:providers:docker local +error: no resource plugin 'pulumi-resource-docker' found in the workspace at version v5\.2\.0/,
      );
      return true;
    });
    assert.equal((await docker("network", "ls", "-q", "--filter", "name=jetson-fleet-plugin-plugin-unpinned")).stdout.trim(), "");
  });
});
