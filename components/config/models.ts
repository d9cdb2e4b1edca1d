// The stack's models (`models[]`) and a service's reference to them (`services[].models`): ONNX
// files delivered to every host by content, and the TensorRT engine settings each host builds
// with. Rules across sections (names referenced, the registry the hosts fetch from, mount
// points) are in `refinements.ts`.
import { z } from "zod";
import { DNS_LABEL, DURATION, SHA256_HEX, SIZE, isDigest, isRepository, parseImage, parseSize } from "./formats.ts";
import { checked, refuse, refuseRepeats } from "./refinements.ts";

/** Where trtexec is in NVIDIA's L4T TensorRT images (and in the project's stand-in base). */
export const DEFAULT_ENGINE_BUILDER = "/usr/src/tensorrt/bin/trtexec";
/** How long one engine build may take on a host before the step fails. */
export const DEFAULT_ENGINE_TIMEOUT = "30m";
/** Engines kept per host, service and model: the current one and the one before it, for a rollback. */
export const DEFAULT_ENGINES_KEPT = 2;
/** trtexec flags the deploy sets itself from the engine settings; `flags` may not repeat them. */
export const MANAGED_TRTEXEC_FLAGS = [
  "--onnx",
  "--saveEngine",
  "--loadEngine",
  "--fp16",
  "--int8",
  "--best",
  "--minShapes",
  "--optShapes",
  "--maxShapes",
  "--memPoolSize",
  "--workspace",
  "--skipInference",
] as const;

const DIMS = /^[1-9][0-9]*(x[1-9][0-9]*)*$/;
const INPUT_NAME = /^[A-Za-z0-9_.:/-]+$/;
const shape = z.record(
  z.string().regex(INPUT_NAME, {
    error: (iss) => `${JSON.stringify(iss.input)} is not an input tensor name; expected letters, digits and "_", ".", ":", "/", "-"`,
  }),
  z.string().regex(DIMS, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a shape; expected dimensions joined by "x", e.g. 1x3x640x640`,
  }),
);

const dims = (v: string) => v.split("x").map(Number);

/** How a host builds a model's TensorRT engine (trtexec, inside the service's own image). */
export const EngineSettings = z
  .strictObject({
    /** Precision the engine is built for: `fp32`, `fp16` (`--fp16`) or `int8` (`--int8`). @default "fp16" */
    precision: z.enum(["fp32", "fp16", "int8"]).default("fp16"),
    /**
     * The optimisation profile of a model with dynamic input shapes, by input tensor name
     * (`--minShapes`, `--optShapes`, `--maxShapes`); the batch size is the first dimension. All three
     * name the same inputs, with min ≤ opt ≤ max in every dimension.
     * @default none (the model's static shapes)
     * @example { min: { images: "1x3x640x640" }, opt: { images: "4x3x640x640" }, max: { images: "8x3x640x640" } }
     */
    shapes: z
      .strictObject({
        /** Smallest shape per input. @example { images: "1x3x640x640" } */
        min: shape,
        /** The shape TensorRT optimises for. @example { images: "4x3x640x640" } */
        opt: shape,
        /** Largest shape per input. @example { images: "8x3x640x640" } */
        max: shape,
      })
      .superRefine((s, ctx) => {
        const inputs = Object.keys(s.min).sort();
        for (const level of ["opt", "max"] as const) {
          const names = Object.keys(s[level]).sort();
          if (names.join(",") !== inputs.join(","))
            refuse(ctx, [level], `names inputs ${names.join(", ") || "(none)"}; expected the same inputs as min: ${inputs.join(", ")}`);
        }
        for (const input of inputs) {
          const [min, opt, max] = [s.min[input], s.opt[input], s.max[input]];
          if (min === undefined || opt === undefined || max === undefined || ![min, opt, max].every((v) => DIMS.test(v))) continue;
          const [a, b, c] = [dims(min), dims(opt), dims(max)];
          if (a.length !== b.length || a.length !== c.length) {
            refuse(ctx, ["max", input], `${min}, ${opt} and ${max} have different ranks; expected as many dimensions in min, opt and max`);
          } else if (a.some((v, i) => v > (b[i] ?? 0) || (b[i] ?? 0) > (c[i] ?? 0))) {
            refuse(ctx, ["opt", input], `${min} ≤ ${opt} ≤ ${max} does not hold in every dimension; expected min ≤ opt ≤ max`);
          }
        }
      })
      .optional(),
    /**
     * The builder's workspace memory pool (`--memPoolSize=workspace:<MiB>M`); the Jetson's GPU
     * shares its RAM with everything else.
     * @default none (TensorRT's default: the device's memory)
     * @example "1g"
     */
    workspace: z
      .string()
      .regex(SIZE, { error: (iss) => `${JSON.stringify(iss.input)} is not a size; expected e.g. 512m or 2g` })
      .superRefine(
        checked((v) =>
          (parseSize(v) ?? 1024 ** 2) < 1024 ** 2 ? `"${v}" is below 1 MiB; expected a workspace of at least 1m, e.g. 1g` : undefined,
        ),
      )
      .optional(),
    /**
     * Further trtexec flags, each `--name` or `--name=value`, after the ones the settings above give.
     * @default []
     * @example ["--builderOptimizationLevel=3", "--useDLACore=0", "--allowGPUFallback"]
     */
    flags: z
      .array(
        z.string().superRefine(
          checked((f) => {
            if (!/^--[A-Za-z][A-Za-z0-9]*(=.*)?$/.test(f))
              return `${JSON.stringify(f)} is not a trtexec flag; expected --name or --name=value, e.g. --builderOptimizationLevel=3`;
            const flag = f.split("=", 1)[0] ?? f;
            return (MANAGED_TRTEXEC_FLAGS as readonly string[]).includes(flag)
              ? `${flag} is set from the engine settings (precision, shapes, workspace) or by the build itself; expected it left out of flags`
              : undefined;
          }),
        ),
      )
      .superRefine((list, ctx) =>
        refuseRepeats(list, ctx, (v, first) => `"${v}" is listed twice (also flags[${first}]); expected each flag once`),
      )
      .default([]),
    /** trtexec's path inside the service's image. @default "/usr/src/tensorrt/bin/trtexec" */
    builder: z
      .string()
      .regex(/^\/[^\s]*$/, {
        error: (iss) => `${JSON.stringify(iss.input)} is not an absolute path; expected e.g. ${DEFAULT_ENGINE_BUILDER}`,
      })
      .default(DEFAULT_ENGINE_BUILDER),
    /** How long one build may take on a host before the step fails (the previous engine stays). @default "30m" */
    timeout: z
      .string()
      .regex(DURATION, { error: (iss) => `${JSON.stringify(iss.input)} is not a duration; expected e.g. 30m or 1h` })
      .default(DEFAULT_ENGINE_TIMEOUT),
    /** Engines kept on each host per service and model, the current one included; older ones are pruned (never one a container mounts). @default 2 */
    keep: z.number().int().min(1).default(DEFAULT_ENGINES_KEPT),
  })
  .default({ precision: "fp16", flags: [], builder: DEFAULT_ENGINE_BUILDER, timeout: DEFAULT_ENGINE_TIMEOUT, keep: DEFAULT_ENGINES_KEPT });
export type EngineSettings = z.infer<typeof EngineSettings>;

/** An ONNX model every host gets, and the engine its services build from it. */
export const ModelSpec = z
  .strictObject({
    /** Unique model name; services refer to it in `services[].models`. @example "detector" */
    name: z.string().regex(DNS_LABEL, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a valid model name; expected lower-case letters, digits and "-" (a DNS label)`,
    }),
    /**
     * Where the ONNX file comes from: `file`, a path in this repository (pushed to the stack's
     * registry as an OCI artifact, once per content), or `artifact`, an OCI artifact already in
     * the stack's registry, pinned by its manifest digest. Hosts fetch it from the registry.
     * @example { file: "models/detector.onnx" }
     * @example { artifact: "registry.lab:5000/models/detector@sha256:9f2c…" }
     */
    source: z
      .strictObject({
        /** A path relative to the project directory. @default none (set `artifact` instead) @example "models/detector.onnx" */
        file: z.string().min(1).optional(),
        /** `registry/repository@sha256:<manifest digest>`. @default none (set `file` instead) @example "registry.lab:5000/models/detector@sha256:9f2c…" */
        artifact: z
          .string()
          .superRefine(
            checked((v) => {
              const ref = parseImage(v);
              return ref?.digest !== undefined && isDigest(ref.digest) && ref.tag === undefined && ref.domain !== undefined
                ? undefined
                : `${JSON.stringify(v)} is not an artifact pinned by digest; expected registry/repository@sha256:<64 hex digits>`;
            }),
          )
          .optional(),
      })
      .superRefine((s, ctx) => {
        if ((s.file === undefined) === (s.artifact === undefined))
          refuse(ctx, [], 'expected exactly one of "file" (a path in the repository) and "artifact" (an OCI artifact pinned by digest)');
      }),
    /** The ONNX file's SHA-256, 64 lower-case hex digits (`sha256sum model.onnx`). @example "3b1f…" */
    sha256: z.string().regex(SHA256_HEX, {
      error: (iss) =>
        `${typeof iss.input === "string" && iss.input.length <= 80 ? JSON.stringify(iss.input) : "the value"} is not a SHA-256; expected 64 lower-case hex digits, as sha256sum prints them`,
    }),
    /**
     * The repository a `file` source is pushed to.
     * @default "<registry.server>/models/<name>"
     * @example "registry.lab:5000/fleet/models/detector"
     */
    repository: z
      .string()
      .superRefine(
        checked((v) =>
          isRepository(v) && parseImage(v)?.domain !== undefined
            ? undefined
            : `"${v}" is not a repository; expected registry/path without tag or digest, e.g. registry.lab:5000/models/detector`,
        ),
      )
      .optional(),
    /** How each host builds the engine. @default { precision: "fp16" } */
    engine: EngineSettings,
  })
  .superRefine((m, ctx) => {
    if (m.repository !== undefined && m.source.artifact !== undefined)
      refuse(ctx, ["repository"], "an artifact source names its repository itself; expected repository left out");
  });
export type ModelSpec = z.infer<typeof ModelSpec>;

/** A model a service runs: its engine, built on each host, mounted read-only at `path`. */
export const ServiceModel = z.strictObject({
  /** The model's name in `models`. @example "detector" */
  name: z.string().min(1),
  /**
   * Where the service finds the engine (read-only); its build record (model, SHA-256, key) is at
   * `<path>.json`.
   * @example "/models/model.engine"
   */
  path: z.string().regex(/^\/.*[^/]$/, {
    error: (iss) => `${JSON.stringify(iss.input)} is not an absolute file path; expected e.g. /models/model.engine`,
  }),
});
export type ServiceModel = z.infer<typeof ServiceModel>;
