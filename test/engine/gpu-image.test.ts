// GpuImage under the real engine: the inference image (images/inference, on the local stand-in
// bases) built by a standalone buildkitd through @pulumi/docker-build, pushed with credentials to a
// registry that requires them, and pinned by the digest the registry reports.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBuildkit, type Buildkit } from "../support/buildkit.ts";
import { REPO, engineStack, type EngineStack } from "../support/engine.ts";
import { buildBaseImages } from "../support/images.ts";
import { run, startAuthRegistry, type AuthRegistry } from "../support/services.ts";

const USERNAME = "fleet-ci";
const PASSWORD = "engine-registry-pass-7f3a9c";
const WRONG_PASSWORD = "not-the-password-41d2e8";

/** The manifest digest the registry reports, read by an independent client. */
async function registryDigest(reg: AuthRegistry, ref: string): Promise<string> {
  const { stdout } = await run("skopeo", [
    "inspect",
    "--tls-verify=false",
    "--creds",
    `${reg.username}:${reg.password}`,
    `docker://${ref}`,
  ]);
  return (JSON.parse(stdout) as { Digest: string }).Digest;
}

describe("GpuImage under the real engine", () => {
  let registry: AuthRegistry;
  let buildkit: Buildkit;
  const stacks: EngineStack[] = [];

  async function imageStack(stack: string, tag: string, password: string): Promise<EngineStack> {
    const env = await engineStack({
      program: "test/engine/programs/gpu-image",
      stack,
      config: {
        context: join(REPO, "images", "inference"),
        buildArgs: { BUILDER_BASE: `${registry.server}/l4t-sim:devel`, RUNTIME_BASE: `${registry.server}/l4t-sim:runtime` },
        repository: `${registry.server}/inference`,
        tag,
        registry: registry.server,
        username: USERNAME,
        builder: buildkit.builder,
      },
      secrets: { password },
      env: { BUILDX_CONFIG: buildkit.buildxConfig },
    });
    stacks.push(env);
    return env;
  }

  before(async () => {
    registry = await startAuthRegistry(USERNAME, PASSWORD);
    // buildkitd cannot see dockerd's images: the stand-in bases go into the registry first.
    const bases = await buildBaseImages();
    for (const [image, name] of [
      [bases.devel, "l4t-sim:devel"],
      [bases.runtime, "l4t-sim:runtime"],
    ] as const) {
      await run("skopeo", [
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        `${USERNAME}:${PASSWORD}`,
        `docker-daemon:${image}`,
        `docker://${registry.server}/${name}`,
      ]);
    }
    buildkit = await startBuildkit([registry.server]);
  });

  after(async () => {
    for (const s of stacks) await s.dispose().catch((e: unknown) => console.error(e));
    await buildkit?.stop();
    await registry?.stop();
  });

  let first: { digest: string; ref: string } | undefined;

  it("up builds and pushes; the output digest is the registry's", async () => {
    const env = await imageStack("image", "engine", PASSWORD);
    const start = performance.now();
    const result = await env.stack.up({ color: "never" });
    console.log(`image up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const digest = result.outputs["digest"]?.value as string;
    const ref = result.outputs["ref"]?.value as string;
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    assert.equal(ref, `${registry.server}/inference@${digest}`);
    assert.equal(await registryDigest(registry, `${registry.server}/inference:engine`), digest);
    // Pulling by digest gives the same manifest.
    assert.equal(await registryDigest(registry, ref), digest);
    first = { digest, ref };
  });

  it("a second up builds and pushes nothing", async () => {
    assert.ok(first, "the first up ran");
    const env = stacks[0];
    assert.ok(env);
    const start = performance.now();
    const result = await env.stack.up({ color: "never" });
    console.log(`no-op up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const changes = result.summary.resourceChanges ?? {};
    assert.deepEqual(Object.keys(changes), ["same"], JSON.stringify(changes));
    assert.equal(result.outputs["digest"]?.value, first.digest);
    assert.equal(result.outputs["ref"]?.value, first.ref);
  });

  it("a wrong registry password fails with an error that does not show the password", async () => {
    const env = await imageStack("wrong", "wrong", WRONG_PASSWORD);
    let output = "";
    const err = await env.stack.up({ color: "never", onOutput: (o) => (output += o) }).then(
      () => assert.fail("up should fail"),
      (e: unknown) => e as Error,
    );
    const text = `${err.message}\n${output}`;
    console.log(
      `wrong password: ${
        text
          .split("\n")
          .find((l) => /\berror:/.test(l))
          ?.trim() ?? "(no error line)"
      }`,
    );
    assert.match(text, /401 Unauthorized|unauthorized|authentication required|failed to authorize/i, text);
    assert.ok(!text.includes(WRONG_PASSWORD), "the wrong password is not shown");
    assert.ok(!text.includes(PASSWORD), "the real password is not shown");
  });
});
