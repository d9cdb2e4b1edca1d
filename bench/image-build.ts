// Prints what GpuImage costs, measured in one run through the real engine (the engine tier's
// harness and program, test/engine/programs/gpu-image) on a fresh buildkitd and an empty,
// authenticated registry, with the stand-in L4T bases (images/base):
//   - cold build + push (linux/amd64), a no-op `up`, and an `up` after an app-only change, with the
//     blobs and bytes each one uploaded (from the registry's access log) and their ratios;
//   - the runtime image's size against the builder stage's (the multi-stage target: ≤ 25 %);
//   - the same cold build for linux/arm64 under qemu-user-static, its ratio to amd64, and the
//     arm64 image run under emulation answering a merge through its compiled library.
//
//   node bench/image-build.ts            (JETSON_FLEET_PULUMI_BIN: the toolchain's bin dir; found with
//                                          tools/toolchain.sh when unset; tools/machine.sh first)
import { appendFileSync, cpSync } from "node:fs";
import { join } from "node:path";
import { startBuildkit, type Buildkit } from "../test/support/buildkit.ts";
import { REPO, engineStack, type EngineStack } from "../test/support/engine.ts";
import {
  buildBaseImages,
  dockerBuild,
  pushBaseImages,
  inspectImage,
  removeImages,
  startContainer,
  waitUntil,
} from "../test/support/images.ts";
import { docker, freePort, run, scratchDir, startAuthRegistry, type AuthRegistry } from "../test/support/services.ts";

type Platform = "linux/amd64" | "linux/arm64";
const USERNAME = "bench";
const PASSWORD = "bench-registry-pass-5c1e";

if (!process.env["JETSON_FLEET_PULUMI_BIN"]) {
  const { stdout } = await run(join(REPO, "tools", "toolchain.sh"), [], { maxBuffer: 16 * 1024 * 1024 });
  process.env["JETSON_FLEET_PULUMI_BIN"] = stdout.trim().split("\n").pop() ?? "";
}

const line = (label: string, value: string): void => console.log(`${label.padEnd(46)} ${value}`);
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

/** One `up` of a stack: seconds, the digest it outputs, and the blobs it uploaded. */
async function up(stack: EngineStack, registry: AuthRegistry): Promise<{ seconds: number; digest: string; blobs: number; bytes: number }> {
  await registry.quiet();
  const before = registry.uploadedBlobs().length;
  const start = performance.now();
  const result = await stack.stack.up({ color: "never" });
  const seconds = (performance.now() - start) / 1000;
  await registry.quiet();
  const uploaded = registry.uploadedBlobs().slice(before);
  return {
    seconds,
    digest: result.outputs["digest"]?.value as string,
    blobs: uploaded.length,
    bytes: uploaded.reduce((sum, d) => sum + registry.blobSize(d), 0),
  };
}

const registry = await startAuthRegistry(USERNAME, PASSWORD);
const stacks: EngineStack[] = [];
const builders: Buildkit[] = [];

/** A stack building a fresh copy of images/inference for `platform` on its own, cold buildkitd. */
async function imageStack(
  name: string,
  platform: Platform,
  buildArgs: Record<string, string>,
): Promise<{ stack: EngineStack; context: string }> {
  const context = join(scratchDir(`bench-${name}`), "inference");
  cpSync(join(REPO, "images", "inference"), context, { recursive: true });
  const buildkit = await startBuildkit([registry.server]);
  builders.push(buildkit);
  const stack = await engineStack({
    program: "test/engine/programs/gpu-image",
    stack: name,
    config: {
      context,
      platforms: [platform],
      buildArgs,
      repository: `${registry.server}/inference-${name}`,
      tag: name,
      registry: registry.server,
      username: USERNAME,
      builder: buildkit.builder,
    },
    secrets: { password: PASSWORD },
    env: { BUILDX_CONFIG: buildkit.buildxConfig },
  });
  stacks.push(stack);
  return { stack, context };
}

try {
  // --- amd64: cold, no-op, app-only change -------------------------------------------------------
  const amd64Args = await pushBaseImages(registry, "linux/amd64");
  const amd64 = await imageStack("amd64", "linux/amd64", amd64Args);
  const cold = await up(amd64.stack, registry);
  line("cold build + push (linux/amd64)", `${cold.seconds.toFixed(1)} s, ${cold.blobs} blobs, ${mb(cold.bytes)} uploaded`);
  const noop = await up(amd64.stack, registry);
  line("no-op up (unchanged context)", `${noop.seconds.toFixed(1)} s, ${noop.blobs} blobs, ${noop.bytes} bytes uploaded`);
  appendFileSync(join(amd64.context, "service", "server.py"), "\n# bench: an app-only change\n");
  const app = await up(amd64.stack, registry);
  line("up after an app-only change", `${app.seconds.toFixed(1)} s, ${app.blobs} blobs, ${app.bytes} bytes uploaded`);
  line("  app-only up / cold up", (app.seconds / cold.seconds).toFixed(2));
  // A no-op up is the engine's own cost (plugins, context hash, registry checks): without it the
  // ratio is the build and push alone.
  line("  (app-only − no-op) / (cold − no-op)", ((app.seconds - noop.seconds) / (cold.seconds - noop.seconds)).toFixed(3));
  line("  digest changed", String(app.digest !== cold.digest));

  // --- runtime image vs builder stage ------------------------------------------------------------
  const bases = await buildBaseImages();
  const sizeArgs = { BUILDER_BASE: bases.devel, RUNTIME_BASE: bases.runtime };
  const context = join(REPO, "images", "inference");
  await dockerBuild(context, { tag: "jetson-fleet/bench-inference:builder", target: "builder", buildArgs: sizeArgs });
  await dockerBuild(context, { tag: "jetson-fleet/bench-inference:runtime", target: "runtime", buildArgs: sizeArgs });
  const builderSize = (await inspectImage("jetson-fleet/bench-inference:builder")).Size;
  const runtimeSize = (await inspectImage("jetson-fleet/bench-inference:runtime")).Size;
  line(
    "runtime image / builder stage (uncompressed)",
    `${mb(runtimeSize)} / ${mb(builderSize)} = ${(runtimeSize / builderSize).toFixed(2)}`,
  );
  line("  runtime image minus its base", `${((runtimeSize - (await inspectImage(bases.runtime)).Size) / 1e3).toFixed(1)} kB`);
  await removeImages("jetson-fleet/bench-inference:builder", "jetson-fleet/bench-inference:runtime");

  // --- arm64 under qemu --------------------------------------------------------------------------
  const armArgs = await pushBaseImages(registry, "linux/arm64");
  const arm64 = await imageStack("arm64", "linux/arm64", armArgs);
  const armCold = await up(arm64.stack, registry);
  line("cold build + push (linux/arm64, qemu)", `${armCold.seconds.toFixed(1)} s, ${armCold.blobs} blobs, ${mb(armCold.bytes)} uploaded`);
  line("  arm64 / amd64 (cold)", (armCold.seconds / cold.seconds).toFixed(2));

  // The pushed arm64 image, run under emulation: it reports aarch64 and merges through its library.
  const ref = `${registry.server}/inference-arm64@${armCold.digest}`;
  await docker("login", "-u", USERNAME, "-p", PASSWORD, registry.server);
  const port = await freePort();
  const container = await startContainer(["--platform", "linux/arm64", "-p", `127.0.0.1:${port}:8080`, ref]);
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitUntil("the arm64 image answering /health", async () => (await fetch(`${url}/health`)).ok, 120_000);
    const machine = (await docker("exec", container.id, "uname", "-m")).stdout.trim();
    const merged = await fetch(`${url}/merge`, {
      method: "POST",
      body: JSON.stringify({
        iou: 0.5,
        tiles: [
          { x: 0, y: 0, detections: [{ box: [500, 100, 600, 200], score: 0.9, class: 0 }] },
          { x: 512, y: 0, detections: [{ box: [0, 100, 88, 200], score: 0.7, class: 0 }] },
        ],
      }),
    });
    line("arm64 image under qemu", `uname -m ${machine}; POST /merge ${merged.status} ${JSON.stringify(await merged.json())}`);
  } finally {
    await container.stop();
    await docker("logout", registry.server).catch(() => undefined);
    await removeImages(ref);
  }
} finally {
  for (const s of stacks) await s.dispose().catch((e: unknown) => console.error(e));
  for (const b of builders) await b.stop();
  await registry.stop();
}
