// Models and engines as hosts hold them: trtexec arguments from the settings, the engine key and
// what changes it, where things live on a host, the mounts a service gets, and the check of a
// `file` model against the repository.
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  EngineSettings,
  ModelSpec,
  ServiceSpec,
  StackConfigError,
  checkModelFiles,
  engineDirectory,
  engineKey,
  engineKeyText,
  engineTimeoutSeconds,
  engineVolumes,
  modelBlobPath,
  modelFileProblems,
  modelLocation,
  modelTag,
  trtexecArgs,
  withEngineVolumes,
  type EngineKeyInputs,
} from "../../../components/index.ts";

const SHA = "9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab";
const IMAGE = `127.0.0.1:5000/inference@sha256:${"4f".repeat(32)}`;

describe("trtexecArgs: the settings as trtexec flags, in a fixed order", () => {
  const rows: { name: string; settings: unknown; expected: string[] }[] = [
    { name: "the defaults: fp16, inference skipped", settings: {}, expected: ["--fp16", "--skipInference"] },
    { name: "fp32 has no precision flag", settings: { precision: "fp32" }, expected: ["--skipInference"] },
    {
      name: "int8, a workspace in MiB, extra flags last",
      settings: { precision: "int8", workspace: "1g", flags: ["--useDLACore=0", "--allowGPUFallback"] },
      expected: ["--int8", "--memPoolSize=workspace:1024M", "--skipInference", "--useDLACore=0", "--allowGPUFallback"],
    },
    {
      name: "a profile of two inputs, in min's order",
      settings: {
        shapes: {
          min: { images: "1x3x640x640", scale: "1x2" },
          opt: { scale: "4x2", images: "4x3x640x640" },
          max: { images: "8x3x640x640", scale: "8x2" },
        },
      },
      expected: [
        "--fp16",
        "--minShapes=images:1x3x640x640,scale:1x2",
        "--optShapes=images:4x3x640x640,scale:4x2",
        "--maxShapes=images:8x3x640x640,scale:8x2",
        "--skipInference",
      ],
    },
  ];
  for (const row of rows) it(row.name, () => assert.deepEqual(trtexecArgs(EngineSettings.parse(row.settings)), row.expected));
});

describe("engineKey: everything the engine depends on", () => {
  const base: EngineKeyInputs = {
    modelSha256: SHA,
    image: IMAGE,
    l4tRelease: "36.4.3",
    gpu: "nvidia,p3767-0000,nvidia,tegra234",
    args: ["--fp16", "--skipInference"],
  };

  it("hashes one line per input after the format's version", () => {
    assert.equal(
      engineKeyText(base),
      `jetson-fleet-engine/1\nmodel=${SHA}\nimage=sha256:${"4f".repeat(32)}\nl4t=36.4.3\ngpu=nvidia,p3767-0000,nvidia,tegra234\nargs=--fp16 --skipInference\n`,
    );
    assert.match(engineKey(base), /^[0-9a-f]{16}$/);
  });

  it("is the image's digest that counts, not the name it is pulled by", () => {
    assert.equal(engineKey({ ...base, image: `registry.lab:5000/fleet/inference:1.2.0@sha256:${"4f".repeat(32)}` }), engineKey(base));
  });

  it("an empty L4T release or GPU is none", () => {
    assert.equal(engineKey({ ...base, l4tRelease: "", gpu: "" }), engineKey({ ...base, l4tRelease: "none", gpu: "none" }));
  });

  const changes: [string, Partial<EngineKeyInputs>][] = [
    ["a new model", { modelSha256: "0".repeat(64) }],
    ["a new image", { image: `127.0.0.1:5000/inference@sha256:${"5e".repeat(32)}` }],
    ["another L4T release", { l4tRelease: "36.4.4" }],
    ["another GPU", { gpu: "nvidia,p3701-0005,nvidia,tegra234" }],
    ["another setting", { args: ["--int8", "--skipInference"] }],
  ];
  for (const [name, change] of changes) {
    it(`changes with ${name}`, () => assert.notEqual(engineKey({ ...base, ...change }), engineKey(base)));
  }

  it("refuses an image that is not pinned by digest", () => {
    assert.throws(() => engineKey({ ...base, image: "127.0.0.1:5000/inference:1.0.0" }), {
      message: 'image "127.0.0.1:5000/inference:1.0.0" is not pinned by digest; expected repository@sha256:<digest>',
    });
  });
});

describe("where models and engines live on a host, and what a service mounts", () => {
  it("keeps each stack's models by content and its engines by service, model and key", () => {
    assert.equal(modelBlobPath("jetson-fleet-dev", SHA), `/var/lib/jetson-fleet/models/jetson-fleet-dev/sha256/${SHA}`);
    assert.equal(
      engineDirectory("jetson-fleet-dev", "inference", "detector", "0123456789abcdef"),
      "/var/lib/jetson-fleet/engines/jetson-fleet-dev/inference/detector/0123456789abcdef",
    );
  });

  it("mounts the engine at its path and its record beside it, read-only, after the service's own volumes", () => {
    const directory = "/var/lib/jetson-fleet/engines/p/inference/detector/0123456789abcdef";
    const mounts = [{ model: "detector", path: "/models/model.engine", directory }];
    assert.deepEqual(engineVolumes(mounts), [
      { type: "bind", source: `${directory}/model.engine`, target: "/models/model.engine", readOnly: true },
      { type: "bind", source: `${directory}/engine.json`, target: "/models/model.engine.json", readOnly: true },
    ]);
    const service = ServiceSpec.parse({
      name: "inference",
      image: IMAGE,
      runtime: "nvidia",
      volumes: [{ source: "/opt/fleet/videos", target: "/videos" }],
    });
    assert.deepEqual(
      withEngineVolumes(service, mounts).volumes.map((v) => v.target),
      ["/videos", "/models/model.engine", "/models/model.engine.json"],
    );
    assert.equal(withEngineVolumes(service, undefined), service);
  });

  it("fetches from the stack's registry, over HTTP only on loopback", () => {
    const file = ModelSpec.parse({ name: "detector", source: { file: "models/detector.onnx" }, sha256: SHA });
    assert.deepEqual(modelLocation(file, "127.0.0.1:5000"), {
      registryUrl: "http://127.0.0.1:5000",
      registry: "127.0.0.1:5000",
      repository: "models/detector",
    });
    assert.deepEqual(modelLocation({ ...file, repository: "registry.lab:5000/fleet/models/detector" }, "registry.lab:5000"), {
      registryUrl: "https://registry.lab:5000",
      registry: "registry.lab:5000",
      repository: "fleet/models/detector",
    });
    const artifact = ModelSpec.parse({
      name: "detector",
      source: { artifact: `registry.lab:5000/ml/detector@sha256:${"a".repeat(64)}` },
      sha256: SHA,
    });
    assert.deepEqual(modelLocation(artifact, "registry.lab:5000"), {
      registryUrl: "https://registry.lab:5000",
      registry: "registry.lab:5000",
      repository: "ml/detector",
    });
    assert.throws(() => modelLocation(file, undefined), {
      message: 'model "detector" has no registry to be fetched from; expected registry.server in the stack config',
    });
    assert.equal(modelTag(file), "detector-9c56cc51b374");
  });

  it("gives the build its timeout in whole seconds", () => {
    assert.equal(engineTimeoutSeconds({ timeout: "30m" }), 1800);
    assert.equal(engineTimeoutSeconds({ timeout: "1.5s" }), 2);
  });
});

describe("a file model is checked against the repository before anything is pushed", () => {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-models-"));
  mkdirSync(join(dir, "models"));
  writeFileSync(join(dir, "models", "detector.onnx"), "not really onnx, but content\n");
  const model = (file: string, sha256: string) => ModelSpec.parse({ name: "detector", source: { file }, sha256 });

  it("names a missing file, a directory, and another content with the hash the file has", () => {
    const actual = modelFileProblems([model("models/detector.onnx", SHA)], dir)[0]?.message.match(/hashes to ([0-9a-f]{64})/)?.[1];
    assert.match(actual ?? "", /^[0-9a-f]{64}$/);
    assert.deepEqual(
      modelFileProblems([model("models/missing.onnx", SHA), model("models", SHA), model("models/detector.onnx", SHA)], dir),
      [
        { path: "models[0].source.file", message: '"models/missing.onnx" does not exist; expected an ONNX file in the repository' },
        { path: "models[1].source.file", message: '"models" is not a file; expected an ONNX file' },
        {
          path: "models[2].sha256",
          message: `is ${SHA}, but models/detector.onnx hashes to ${actual}; expected the file's SHA-256 (sha256sum models/detector.onnx), or the file this hash names`,
        },
      ],
    );
    assert.deepEqual(modelFileProblems([model("models/detector.onnx", actual ?? "")], dir), []);
  });

  it("throws a StackConfigError naming the stack file and key", () => {
    assert.throws(
      () => checkModelFiles([model("models/missing.onnx", SHA)], { project: "jetson-fleet", stack: "dev" }, dir),
      (err: unknown) =>
        err instanceof StackConfigError &&
        err.message ===
          'invalid stack config (1 problem); nothing was changed:\nPulumi.dev.yaml: jetson-fleet:models[0].source.file: "models/missing.onnx" does not exist; expected an ONNX file in the repository',
    );
  });
});
