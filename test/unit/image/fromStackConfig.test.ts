import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { GpuImageArgsError, ImageSpec, gpuImageArgs, readBuildEnvironment } from "../../../components/index.ts";
import { unwrap } from "../../support/mocks.ts";

describe("readBuildEnvironment", () => {
  const cases: [string, Record<string, string>, number, { builderName: string; buildOnPreview: boolean } | string][] = [
    ["no images need no builder", {}, 0, { builderName: "", buildOnPreview: false }],
    ["a builder and no flag", { BUILDX_BUILDER: "fleet" }, 1, { builderName: "fleet", buildOnPreview: false }],
    [
      "preview builds on",
      { BUILDX_BUILDER: "fleet", JETSON_FLEET_BUILD_ON_PREVIEW: "true" },
      1,
      { builderName: "fleet", buildOnPreview: true },
    ],
    ["flags as 1/0/TRUE", { BUILDX_BUILDER: "b", JETSON_FLEET_BUILD_ON_PREVIEW: "TRUE" }, 2, { builderName: "b", buildOnPreview: true }],
    ["flag 0", { BUILDX_BUILDER: "b", JETSON_FLEET_BUILD_ON_PREVIEW: "0" }, 2, { builderName: "b", buildOnPreview: false }],
    [
      "images without a builder",
      {},
      2,
      "invalid build environment; nothing was changed:\nPulumi.dev.yaml: jetson-fleet:images: builds 2 image(s) but BUILDX_BUILDER is not set; " +
        "expected the name of a buildx builder (tools/buildkit.sh start prints one; its BUILDX_CONFIG must be exported too)",
    ],
    [
      "a malformed flag, even without images",
      { JETSON_FLEET_BUILD_ON_PREVIEW: "yes" },
      0,
      'invalid build environment; nothing was changed:\nJETSON_FLEET_BUILD_ON_PREVIEW is "yes"; expected true or false (or unset)',
    ],
  ];
  for (const [name, env, count, want] of cases) {
    it(name, () => {
      if (typeof want === "string")
        assert.throws(
          () => readBuildEnvironment(env, "Pulumi.dev.yaml", count),
          (e: unknown) => e instanceof GpuImageArgsError && e.message === want,
        );
      else assert.deepEqual(readBuildEnvironment(env, "Pulumi.dev.yaml", count), want);
    });
  }
});

describe("gpuImageArgs", () => {
  const build = { builderName: "fleet", buildOnPreview: true };

  it("maps an images[] entry: relative paths, base images as build args, repository under the registry, credentials", async () => {
    const spec = ImageSpec.parse({
      name: "inference",
      context: "images/inference",
      target: "runtime",
      buildArgs: { VERSION: "1.4.2" },
      baseImages: { RUNTIME_BASE: "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime" },
    });
    const { registry, ...args } = gpuImageArgs(spec, { server: "registry.lab:5000", username: "ci", password: "tok" }, build);
    assert.deepEqual(args, {
      context: "images/inference",
      dockerfile: "images/inference/Dockerfile",
      target: "runtime",
      platforms: ["linux/arm64"],
      buildArgs: { VERSION: "1.4.2", RUNTIME_BASE: "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime" },
      repository: "registry.lab:5000/inference",
      builderName: "fleet",
      buildOnPreview: true,
    });
    assert.equal(registry?.address, "registry.lab:5000");
    assert.equal(registry?.username, "ci");
    // The password goes on as a secret.
    const password = pulumi.output(registry?.password);
    assert.equal(await pulumi.isSecret(password), true);
    assert.equal(await unwrap(password), "tok");
  });

  it("keeps an explicit repository and Dockerfile; anonymous without a registry", () => {
    const spec = ImageSpec.parse({
      name: "web",
      context: "images/web/",
      dockerfile: "docker/Dockerfile.prod",
      platforms: ["linux/amd64"],
      repository: "registry.example.com/fleet/web",
    });
    assert.deepEqual(gpuImageArgs(spec, undefined, build), {
      context: "images/web/",
      dockerfile: "images/web/docker/Dockerfile.prod",
      platforms: ["linux/amd64"],
      repository: "registry.example.com/fleet/web",
      builderName: "fleet",
      buildOnPreview: true,
    });
  });

  it("refuses an image with neither repository nor registry", () => {
    assert.throws(() => gpuImageArgs(ImageSpec.parse({ name: "web", context: "images/web" }), undefined, build), {
      message: 'image "web" has no repository and no registry is configured; expected one of them',
    });
  });
});
