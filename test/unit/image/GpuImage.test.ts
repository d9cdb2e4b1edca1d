import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { GpuImage, defaultCacheRef, digestRef, imageArgs, taggedRef, validateRepository } from "../../../components/index.ts";
import { ResourceRecorder, unwrap, useMockStack } from "../../support/mocks.ts";

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("GpuImage helpers", () => {
  const repositories: [string, string | null][] = [
    ["inference", null],
    ["fleet/inference", null],
    ["registry.example.com/fleet/inference", null],
    ["127.0.0.1:5000/inference", null],
    ["localhost/jetson_fleet/infer-ence", null],
    [
      "127.0.0.1:5000/inference:1.0",
      'GpuImage repository "127.0.0.1:5000/inference:1.0" has a tag or digest; expected a repository alone (set the tag with "tag").',
    ],
    [
      `inference@${DIGEST}`,
      `GpuImage repository "inference@${DIGEST}" has a tag or digest; expected a repository alone (set the tag with "tag").`,
    ],
    [
      "Registry.example.com/Inference",
      'GpuImage repository "Registry.example.com/Inference" is not a valid repository; expected [host[:port]/]name, e.g. "registry.example.com/fleet/inference".',
    ],
    ["", 'GpuImage repository "" is not a valid repository; expected [host[:port]/]name, e.g. "registry.example.com/fleet/inference".'],
  ];
  for (const [repository, error] of repositories) {
    it(`validateRepository(${JSON.stringify(repository)}) ${error ? "rejects" : "accepts"}`, () => {
      if (error) assert.throws(() => validateRepository(repository), { message: error });
      else assert.equal(validateRepository(repository), repository);
    });
  }

  const refs: [string, string, string][] = [
    ["127.0.0.1:5000/inference", DIGEST, `127.0.0.1:5000/inference@${DIGEST}`],
    ["registry.example.com/fleet/inference", DIGEST, `registry.example.com/fleet/inference@${DIGEST}`],
  ];
  for (const [repository, digest, expected] of refs) {
    it(`digestRef(${repository}) is ${expected}`, () => assert.equal(digestRef(repository, digest), expected));
  }
  it("digestRef refuses what is not a sha256 digest", () => {
    assert.throws(() => digestRef("inference", "latest"), { message: '"latest" is not a sha256 digest' });
  });

  const tags: [string, string | null][] = [
    ["1.4.2", "fleet/inference:1.4.2"],
    ["latest", "fleet/inference:latest"],
    ["v1_rc-2", "fleet/inference:v1_rc-2"],
    ["-bad", null],
    ["a/b", null],
  ];
  for (const [tag, expected] of tags) {
    it(`taggedRef(fleet/inference, ${tag})`, () => {
      if (expected) assert.equal(taggedRef("fleet/inference", tag), expected);
      else
        assert.throws(() => taggedRef("fleet/inference", tag), {
          message: `GpuImage tag "${tag}" is not a valid tag; expected letters, digits, "_", "." or "-" (at most 128).`,
        });
    });
  }

  it("the default cache lives beside the image", () =>
    assert.equal(defaultCacheRef("r.example.com/inference"), "r.example.com/inference:buildcache"));

  it("refuses an empty platform list", () => {
    assert.throws(() => imageArgs({ context: "c", repository: "r", builderName: "b", platforms: [] }), {
      message: 'GpuImage platforms is empty; expected at least one platform, e.g. ["linux/arm64"].',
    });
  });
});

describe("GpuImage", () => {
  async function build(args: Partial<ConstructorParameters<typeof GpuImage>[1]> = {}) {
    const rec = useMockStack(
      { stack: "unit", config: {} },
      new ResourceRecorder((a) => (a.type === "docker-build:index:Image" ? { digest: DIGEST, ref: `x@${DIGEST}` } : {})),
    );
    const image = new GpuImage("inference", {
      context: "images/inference",
      repository: "registry.example.com/fleet/inference",
      builderName: "jetson-fleet",
      ...args,
    });
    const [ref, digest] = await Promise.all([unwrap(image.ref), unwrap(image.digest)]);
    return { rec, ref, digest };
  }

  it("builds for arm64 with registry cache, pushes, and outputs the digest reference", async () => {
    const { rec, ref, digest } = await build();
    assert.deepEqual(
      rec.resources.map((r) => [r.type, r.name]),
      [
        ["jetson:image:GpuImage", "inference"],
        ["docker-build:index:Image", "inference-build"],
      ],
    );
    assert.deepEqual(rec.ofType("docker-build:index:Image")[0]?.inputs, {
      builder: { name: "jetson-fleet" },
      context: { location: "images/inference" },
      dockerfile: { location: "images/inference/Dockerfile" },
      platforms: ["linux/arm64"],
      tags: ["registry.example.com/fleet/inference:unit"],
      push: false,
      exports: [{ registry: { push: true } }],
      buildOnPreview: false,
      network: "default",
      cacheFrom: [{ registry: { ref: "registry.example.com/fleet/inference:buildcache" } }],
      cacheTo: [{ registry: { ref: "registry.example.com/fleet/inference:buildcache", mode: "max" } }],
    });
    assert.equal(digest, DIGEST);
    assert.equal(ref, `registry.example.com/fleet/inference@${DIGEST}`);
  });

  it("passes target, platforms, build args, tag, credentials and preview builds through; no cache when asked", async () => {
    const { rec } = await build({
      dockerfile: "images/inference/Dockerfile.slim",
      target: "runtime",
      platforms: ["linux/amd64", "linux/arm64"],
      buildArgs: { RUNTIME_BASE: "base:runtime" },
      tag: "1.4.2",
      registry: { address: "registry.example.com", username: "ci", password: "s3cret" },
      cacheRef: false,
      buildOnPreview: true,
      secrets: { pip_token: "tok-123" },
    });
    assert.deepEqual(rec.ofType("docker-build:index:Image")[0]?.inputs, {
      builder: { name: "jetson-fleet" },
      context: { location: "images/inference" },
      dockerfile: { location: "images/inference/Dockerfile.slim" },
      target: "runtime",
      platforms: ["linux/amd64", "linux/arm64"],
      buildArgs: { RUNTIME_BASE: "base:runtime" },
      tags: ["registry.example.com/fleet/inference:1.4.2"],
      push: false,
      exports: [{ registry: { push: true } }],
      buildOnPreview: true,
      network: "default",
      // The password makes the whole list a secret (the engine's secret signature).
      registries: { [SECRET_SIG]: SECRET_VALUE, value: [{ address: "registry.example.com", username: "ci", password: "s3cret" }] },
      // Build secrets go to the provider as a secret, never as build arguments.
      secrets: { [SECRET_SIG]: SECRET_VALUE, value: { pip_token: "tok-123" } },
    });
  });

  // What the policy pack checks: repository, tag, registry address and where the password came from.
  const registered: [string, Partial<ConstructorParameters<typeof GpuImage>[1]>, Record<string, unknown>][] = [
    [
      "a plain-text password",
      { tag: "1.4.2", registry: { address: "registry.example.com", username: "ci", password: "s3cret" } },
      { tag: "1.4.2", registry: { address: "registry.example.com", username: "ci", passwordSource: "plaintext" } },
    ],
    [
      "a secret password",
      { registry: { address: "registry.example.com", password: pulumi.secret("s3cret") } },
      { tag: "unit", registry: { address: "registry.example.com", passwordSource: "secret" } },
    ],
    [
      "no password",
      { registry: { address: "registry.example.com" } },
      { tag: "unit", registry: { address: "registry.example.com", passwordSource: "none" } },
    ],
    ["no registry", {}, { tag: "unit" }],
  ];
  for (const [what, args, inputs] of registered) {
    it(`registers the inputs the policy pack checks, never the password: ${what}`, async () => {
      const { rec } = await build(args);
      assert.deepEqual(rec.ofType("jetson:image:GpuImage")[0]?.inputs, { repository: "registry.example.com/fleet/inference", ...inputs });
    });
  }

  it("keeps the registry password secret", async () => {
    const args = imageArgs({
      context: "c",
      repository: "r",
      builderName: "b",
      registry: { address: "r.example.com", username: "u", password: "p" },
    });
    const [registry] = args.registries as unknown as { password: pulumi.Output<string> }[];
    assert.ok(registry);
    assert.equal(await pulumi.isSecret(registry.password), true);
  });
});
