// The stack's `models[]` and `services[].models`: defaults, and every refusal with the stack file,
// the key and what is expected, before any resource exists.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_ENGINE_BUILDER, ModelSpec } from "../../../components/index.ts";
import { configProblems, validConfig } from "../../support/fixtures.ts";

// Tests write configs the types forbid, on purpose.
type Mutable = Record<string, any>;

const SHA = "3b1f6c2d9e0a4b5c6d7e8f901a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
const detector = (extra: Mutable = {}): Mutable => ({ name: "detector", source: { file: "models/detector.onnx" }, sha256: SHA, ...extra });

function problems(mutate: (c: Mutable) => void): readonly string[] {
  const config = validConfig() as Mutable;
  config.models = [detector()];
  config.services[0].models = [{ name: "detector", path: "/models/model.engine" }];
  mutate(config);
  return configProblems(config);
}

const F = "Pulumi.dev.yaml: jetson-fleet:";

describe("models: defaults", () => {
  it("builds fp16 with trtexec where L4T images have it, 30 minutes at most, keeping two engines", () => {
    assert.deepEqual(ModelSpec.parse(detector()).engine, {
      precision: "fp16",
      flags: [],
      builder: DEFAULT_ENGINE_BUILDER,
      timeout: "30m",
      keep: 2,
    });
  });

  it("accepts the stack with a model its inference service runs", () => {
    assert.deepEqual(
      problems(() => undefined),
      [],
    );
  });
});

describe("models: validation refuses, naming the key", () => {
  const rows: { name: string; mutate: (c: Mutable) => void; expected: string[] }[] = [
    {
      name: "both sources, and a short hash",
      mutate: (c) =>
        (c.models[0] = detector({ source: { file: "a.onnx", artifact: "registry.lab:5000/m@sha256:" + "a".repeat(64) }, sha256: "abc" })),
      expected: [
        `${F}models[0].sha256: "abc" is not a SHA-256; expected 64 lower-case hex digits, as sha256sum prints them`,
        `${F}models[0].source: expected exactly one of "file" (a path in the repository) and "artifact" (an OCI artifact pinned by digest)`,
      ],
    },
    {
      name: "an artifact by tag, and one in another registry",
      mutate: (c) => {
        c.models[0] = detector({ source: { artifact: "registry.lab:5000/models/detector:v1" } });
        c.models.push(detector({ name: "other", source: { artifact: `elsewhere.lab/models/other@sha256:${"b".repeat(64)}` } }));
      },
      expected: [
        `${F}models[0].source.artifact: "registry.lab:5000/models/detector:v1" is not an artifact pinned by digest; expected registry/repository@sha256:<64 hex digits>`,
        `${F}models[1].source.artifact: "elsewhere.lab/models/other@sha256:${"b".repeat(64)}" is not in the stack's registry registry.lab:5000, the one hosts fetch from with the stack's credentials; expected registry.lab:5000/<repository>@sha256:<digest>`,
      ],
    },
    {
      name: "no registry to fetch from",
      mutate: (c) => {
        delete c.registry;
        delete c.images;
        c.services[0] = { ...c.services[0], build: undefined, image: "registry.lab:5000/inference:1.0.0" };
      },
      expected: [
        `${F}models[0].source: needs the stack's registry, which hosts fetch models from; expected registry.server (and its credentials, if it takes any)`,
      ],
    },
    {
      name: "a duplicate name",
      mutate: (c) => c.models.push(detector()),
      expected: [`${F}models[1].name: duplicate model name "detector" (also models[0]); expected every model name once`],
    },
    {
      name: "engine settings: a managed flag, a malformed one, a tiny workspace, keep 0",
      mutate: (c) => (c.models[0].engine = { flags: ["--fp16", "useDLACore=0"], workspace: "512k", keep: 0 }),
      expected: [
        `${F}models[0].engine.flags[0]: --fp16 is set from the engine settings (precision, shapes, workspace) or by the build itself; expected it left out of flags`,
        `${F}models[0].engine.flags[1]: "useDLACore=0" is not a trtexec flag; expected --name or --name=value, e.g. --builderOptimizationLevel=3`,
        `${F}models[0].engine.keep: got number 0; expected at least 1`,
        `${F}models[0].engine.workspace: "512k" is below 1 MiB; expected a workspace of at least 1m, e.g. 1g`,
      ],
    },
    {
      name: "shapes: other inputs in opt than in min",
      mutate: (c) =>
        (c.models[0].engine = {
          shapes: { min: { images: "1x3x640x640" }, opt: { input: "4x3x640x640" }, max: { images: "2x3x640x640" } },
        }),
      expected: [`${F}models[0].engine.shapes.opt: names inputs input; expected the same inputs as min: images`],
    },
    {
      name: "shapes: max below opt",
      mutate: (c) =>
        (c.models[0].engine = {
          shapes: { min: { images: "1x3x640x640" }, opt: { images: "4x3x640x640" }, max: { images: "2x3x640x640" } },
        }),
      expected: [
        `${F}models[0].engine.shapes.opt.images: 1x3x640x640 ≤ 4x3x640x640 ≤ 2x3x640x640 does not hold in every dimension; expected min ≤ opt ≤ max`,
      ],
    },
    {
      name: "a service naming an unknown model twice, on runc, under another mount",
      mutate: (c) => {
        c.services[1].models = [
          { name: "tracker", path: "/models/tracker.engine" },
          { name: "tracker", path: "/models/tracker.engine" },
        ];
        c.services[1].volumes = [{ source: "/opt/fleet/models", target: "/models", readOnly: true }];
      },
      expected: [
        `${F}services[1].models[0].name: model "tracker" is not defined under models; expected one of: detector`,
        `${F}services[1].models[0].path: "/models/tracker.engine" is at or inside services[1].volumes[0] (/models); expected the engine mounted outside the service's other mounts, e.g. /models/model.engine with no volume at /models`,
        `${F}services[1].models[1].name: model "tracker" is listed twice (also services[1].models[0]); expected each model once per service`,
        `${F}services[1].models[1].name: model "tracker" is not defined under models; expected one of: detector`,
        `${F}services[1].models[1].path: "/models/tracker.engine" is also services[1].models[0].path; expected one path per model`,
        `${F}services[1].runtime: service "mediamtx" runs models, whose TensorRT engines are built and loaded on the GPU; expected runtime "nvidia"`,
      ],
    },
    {
      name: "a volume where the engine's record goes",
      mutate: (c) => (c.services[0].volumes = [{ source: "/opt/fleet/meta", target: "/models/model.engine.json" }]),
      expected: [
        `${F}services[0].models[0].path: "/models/model.engine" is at or inside services[0].volumes[0] (/models/model.engine.json); expected the engine mounted outside the service's other mounts, e.g. /models/model.engine with no volume at /models`,
      ],
    },
    {
      name: "a relative engine path",
      mutate: (c) => (c.services[0].models = [{ name: "detector", path: "models/model.engine" }]),
      expected: [`${F}services[0].models[0].path: "models/model.engine" is not an absolute file path; expected e.g. /models/model.engine`],
    },
  ];
  for (const row of rows) {
    it(row.name, () => assert.deepEqual(problems(row.mutate), row.expected));
  }
});
