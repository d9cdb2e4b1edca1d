// GpuImage under the real engine: the inference image (a copy of images/inference, on the local
// stand-in bases) built by a standalone buildkitd through @pulumi/docker-build, pushed with
// credentials to a registry that requires them, and pinned by the digest the registry reports.
// The registry's access log tells which blobs each `up` uploaded.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBuildkit, type Buildkit } from "../support/buildkit.ts";
import { REPO, engineStack, type EngineStack } from "../support/engine.ts";
import { pushBaseImages, type BaseImageArgs } from "../support/images.ts";
import { secretLeaks } from "../support/secrets.ts";
import { run, scratchDir, startAuthRegistry, type AuthRegistry } from "../support/services.ts";

const USERNAME = "fleet-ci";
const PASSWORD = "engine-registry-pass-7f3a9c";
const WRONG_PASSWORD = "not-the-password-41d2e8";
/** The build secret the secret test's RUN step mounts. */
const BUILD_SECRET = "build-secret-3e9b1f07c2";

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

interface Manifest {
  readonly mediaType?: string;
  readonly layers?: { digest: string; size: number }[];
  readonly manifests?: { digest: string; platform?: { os: string; architecture: string } }[];
}

/** The layer digests of an image (the linux/amd64 image of an index). */
async function imageLayers(reg: AuthRegistry, ref: string): Promise<string[]> {
  const raw = async (r: string): Promise<Manifest> =>
    JSON.parse(
      (await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", `${reg.username}:${reg.password}`, `docker://${r}`]))
        .stdout,
    ) as Manifest;
  let manifest = await raw(ref);
  if (manifest.manifests) {
    const image = manifest.manifests.find((m) => m.platform?.os === "linux" && m.platform.architecture === "amd64");
    assert.ok(image, `no linux/amd64 image in ${ref}`);
    manifest = await raw(`${ref.split("@")[0]}@${image.digest}`);
  }
  return (manifest.layers ?? []).map((l) => l.digest);
}

describe("GpuImage under the real engine", () => {
  let registry: AuthRegistry;
  let buildkit: Buildkit;
  /** The stand-in bases, in the registry. */
  let bases: BaseImageArgs;
  /** A copy of images/inference the tests change. */
  let context: string;
  const stacks: EngineStack[] = [];
  /** Everything the engine printed, for the secret search. */
  let engineOutput = "";
  async function up(env: EngineStack) {
    const result = await env.stack.up({ color: "never" });
    engineOutput += result.stdout + result.stderr;
    return result;
  }

  async function imageStack(
    stack: string,
    tag: string,
    password: string,
    options: { context?: string; buildOnPreview?: boolean; buildSecret?: string } = {},
  ): Promise<EngineStack> {
    const env = await engineStack({
      program: "test/engine/programs/gpu-image",
      stack,
      config: {
        context: options.context ?? context,
        buildOnPreview: options.buildOnPreview ?? false,
        buildArgs: bases,
        repository: `${registry.server}/inference`,
        tag,
        registry: registry.server,
        username: USERNAME,
        builder: buildkit.builder,
      },
      secrets: { password, ...(options.buildSecret !== undefined ? { buildSecret: options.buildSecret } : {}) },
      env: { BUILDX_CONFIG: buildkit.buildxConfig },
    });
    stacks.push(env);
    return env;
  }

  before(async () => {
    context = join(scratchDir("context"), "inference");
    cpSync(join(REPO, "images", "inference"), context, { recursive: true });
    registry = await startAuthRegistry(USERNAME, PASSWORD);
    bases = await pushBaseImages(registry);
    buildkit = await startBuildkit([registry.server]);
  });

  after(async () => {
    for (const s of stacks) await s.dispose().catch((e: unknown) => console.error(e));
    await buildkit?.stop();
    await registry?.stop();
  });

  let first: { digest: string; ref: string; layers: string[] } | undefined;

  it("up builds and pushes; the output digest is the registry's", async () => {
    const env = await imageStack("image", "engine", PASSWORD);
    const start = performance.now();
    const result = await up(env);
    console.log(`image up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const digest = result.outputs["digest"]?.value as string;
    const ref = result.outputs["ref"]?.value as string;
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    assert.equal(ref, `${registry.server}/inference@${digest}`);
    assert.equal(await registryDigest(registry, `${registry.server}/inference:engine`), digest);
    // Pulling by digest gives the same manifest.
    assert.equal(await registryDigest(registry, ref), digest);
    first = { digest, ref, layers: await imageLayers(registry, ref) };
  });

  it("a second up builds and pushes nothing", async () => {
    assert.ok(first, "the first up ran");
    const env = stacks[0];
    assert.ok(env);
    await registry.quiet();
    const uploadsBefore = registry.uploadedBlobs().length;
    const start = performance.now();
    const result = await up(env);
    console.log(`no-op up: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    await registry.quiet();
    assert.deepEqual(registry.uploadedBlobs().slice(uploadsBefore), [], "no blob uploaded");
    const changes = result.summary.resourceChanges ?? {};
    assert.deepEqual(Object.keys(changes), ["same"], JSON.stringify(changes));
    assert.equal(result.outputs["digest"]?.value, first.digest);
    assert.equal(result.outputs["ref"]?.value, first.ref);
  });

  it("an app-only source change rebuilds and uploads only the app layer", async () => {
    assert.ok(first, "the first up ran");
    const env = stacks[0];
    assert.ok(env);
    appendFileSync(join(context, "service", "server.py"), "\n# an app-only change: the engine test's second revision\n");
    await registry.quiet();
    const uploadsBefore = registry.uploadedBlobs().length;
    const result = await up(env);
    const digest = result.outputs["digest"]?.value as string;
    assert.notEqual(digest, first.digest);
    assert.equal(await registryDigest(registry, `${registry.server}/inference:engine`), digest);

    // The new image shares every layer but the last (COPY service/) with the first build.
    const layers = await imageLayers(registry, `${registry.server}/inference@${digest}`);
    assert.equal(layers.length, first.layers.length);
    assert.deepEqual(layers.slice(0, -1), first.layers.slice(0, -1));
    const appLayer = layers.at(-1) ?? "";
    assert.notEqual(appLayer, first.layers.at(-1));

    // Of the image's layers only that one went over the wire; the rest of the uploads are the new
    // image config and the cache's own records, none of them an old layer.
    await registry.quiet();
    const uploaded = registry.uploadedBlobs().slice(uploadsBefore);
    // (The image push and the cache export may both send it when they race: the same blob.)
    assert.deepEqual([...new Set(uploaded.filter((d) => layers.includes(d)))], [appLayer], `uploaded: ${uploaded.join(", ")}`);
    assert.deepEqual(
      uploaded.filter((d) => first?.layers.includes(d)),
      [],
    );
    const bytes = uploaded.reduce((sum, d) => sum + registry.blobSize(d), 0);
    console.log(`app-only change: ${uploaded.length} blobs, ${bytes} bytes uploaded (app layer ${registry.blobSize(appLayer)} bytes)`);
  });

  it("preview with buildOnPreview fails on a Dockerfile that does not build; without it, it passes", async () => {
    const broken = join(scratchDir("broken"), "inference");
    cpSync(context, broken, { recursive: true });
    const dockerfile = join(broken, "Dockerfile");
    writeFileSync(
      dockerfile,
      readFileSync(dockerfile, "utf8").replace("COPY service/ ./", "COPY service/ ./\nRUN python3 -c 'import tilemerge_missing'"),
    );

    // The gap users report: a plain preview does not build, so it cannot see the problem.
    const plain = await imageStack("broken-plain", "broken", PASSWORD, { context: broken });
    const ok = await plain.stack.preview({ color: "never", onOutput: (o) => (engineOutput += o) });
    assert.equal(ok.changeSummary["create"], 3, JSON.stringify(ok.changeSummary));

    const checked = await imageStack("broken-checked", "broken", PASSWORD, { context: broken, buildOnPreview: true });
    let output = "";
    const err = await checked.stack.preview({ color: "never", onOutput: (o) => ((output += o), (engineOutput += o)) }).then(
      () => assert.fail("preview should fail"),
      (e: unknown) => e as Error,
    );
    const text = `${err.message}\n${output}`;
    assert.match(text, /python3 -c 'import tilemerge_missing'\\?" did not complete successfully: exit code: 1/, text);
    // Nothing was pushed: a preview never pushes.
    await assert.rejects(registryDigest(registry, `${registry.server}/inference:broken`));
  });

  it("a build secret reaches its RUN step and no layer, history or state", async () => {
    const secret = BUILD_SECRET;
    const secretContext = join(scratchDir("secret"), "inference");
    mkdirSync(secretContext, { recursive: true });
    // The step records the secret's hash (proof it was mounted), never the secret.
    writeFileSync(
      join(secretContext, "Dockerfile"),
      [
        "ARG RUNTIME_BASE",
        "FROM ${RUNTIME_BASE} AS runtime",
        "RUN --mount=type=secret,id=token,required=true sha256sum /run/secrets/token | cut -c1-64 > /token.sha256",
        "",
      ].join("\n"),
    );
    const env = await imageStack("secret", "secret", PASSWORD, { context: secretContext, buildSecret: secret });
    const result = await up(env);
    const ref = `${registry.server}/inference@${result.outputs["digest"]?.value as string}`;

    const blobs = join(scratchDir("secret-blobs"), "image");
    await run("skopeo", [
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      "--src-creds",
      `${USERNAME}:${PASSWORD}`,
      `docker://${ref}`,
      `dir:${blobs}`,
    ]);
    const contents = readdirSync(blobs).map((f) => {
      const raw = readFileSync(join(blobs, f));
      return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    });
    const hash = createHash("sha256").update(secret).digest("hex");
    assert.ok(
      contents.some((c) => c.includes(hash)),
      "a layer holds the secret's hash: the step saw the secret",
    );
    assert.ok(!contents.some((c) => c.includes(secret)), "no layer, config or manifest holds the secret");
    // The backend's files as written (the Automation API's export would decrypt them).
    const state = readdirSync(env.stateDir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => readFileSync(join(e.parentPath, e.name), "utf8"));
    assert.ok(
      state.some((text) => text.includes(ref)),
      "the checkpoint with this build is among the files",
    );
    assert.ok(!state.some((text) => text.includes(secret)), "the state holds the secret only encrypted");
  });

  it("a wrong registry password fails with an error that does not show the password", async () => {
    const env = await imageStack("wrong", "wrong", WRONG_PASSWORD);
    let output = "";
    const err = await env.stack.up({ color: "never", onOutput: (o) => ((output += o), (engineOutput += o)) }).then(
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

  it("keeps the registry passwords and the build secret out of every stack's state, the engine's output and the logs", async () => {
    assert.ok(engineOutput.length > 0 && stacks.length > 0);
    const secrets = { "the registry password": PASSWORD, "the wrong registry password": WRONG_PASSWORD, "the build secret": BUILD_SECRET };
    for (const env of stacks) assert.deepEqual(await secretLeaks(secrets, { env, stack: env.stack.name, engineOutput }), []);
  });
});
