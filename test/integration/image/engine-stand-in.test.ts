// The stand-in trtexec in the L4T runtime stand-in base (images/base/trtexec-stand-in/) and the
// inference service loading what it builds, on the real Docker engine: trtexec's interface as the
// deploy's engine build uses it (options, output, exit codes, the engine file, time in proportion to
// the model), then the service's /health and HEALTHCHECK with an engine of its model, of another
// model, a malformed or unreadable one, and none.
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildBaseImages, dockerBuild, IMAGES_DIR, inspectImage, removeImages, startContainer, waitUntil } from "../../support/images.ts";
import type { BaseImages, Container } from "../../support/images.ts";
import { malformedOnnx, onnxModel, sha256Hex } from "../../support/onnx.ts";
import { docker, DOCKER, freePort, run, scratchDir } from "../../support/services.ts";

const TRTEXEC = "/usr/src/tensorrt/bin/trtexec";
const BANNER = "TensorRT.trtexec [TensorRT v100300]";
const MIB = 1024 ** 2;
const CONTEXT = join(IMAGES_DIR, "inference");
const TAG = `jetson-fleet/inference:engine-stand-in-${process.pid}`;
const NO_GPU = "no GPU: neither /dev/nvhost-* nor /dev/nvidia0 is present";
const ENGINE = "/models/model.engine";
/** The arguments the deploy passes for the contract's example settings (fp16, a profile, 1 GiB workspace, a flag). */
const DEPLOY_ARGS = [
  "--fp16",
  "--minShapes=images:1x3x640x640",
  "--optShapes=images:4x3x640x640",
  "--maxShapes=images:8x3x640x640",
  "--memPoolSize=workspace:1024M",
  "--skipInference",
  "--builderOptimizationLevel=3",
];
/** A trtexec log line: `[MM/DD/YYYY-HH:MM:SS] [S] text`. */
const line = (severity: string, text: string) =>
  new RegExp(`^\\[\\d\\d/\\d\\d/\\d{4}-\\d\\d:\\d\\d:\\d\\d\\] \\[${severity}\\] ${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m");

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** The stand-in engine's header: its first two lines. */
function engineHeader(file: string): Record<string, unknown> {
  const data = readFileSync(file);
  const first = data.indexOf(10);
  const second = data.indexOf(10, first + 1);
  assert.equal(data.subarray(0, first + 1).toString(), "JFSTANDIN-TRT-ENGINE/1\n");
  return JSON.parse(data.subarray(first + 1, second).toString()) as Record<string, unknown>;
}

describe("stand-in trtexec and the inference service's engine", { timeout: 30 * 60_000 }, () => {
  let bases: BaseImages;
  let dir: string;
  const models = {
    v1: onnxModel({ bytes: MIB, version: "v1" }),
    v4: onnxModel({ bytes: 4 * MIB, version: "v4" }),
    other: onnxModel({ version: "v2" }),
  };

  /** Runs the stand-in in `image` with the scratch directory at /work (default rate 0 s/MiB: instant). */
  async function trtexec(
    args: string[],
    env: Record<string, string> = { TRTEXEC_STAND_IN_SECONDS_PER_MIB: "0" },
    image = bases.runtime,
  ): Promise<Run> {
    const flags = ["run", "--rm", "--user", "0:0", "-v", `${dir}:/work`, ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`])];
    const start = performance.now();
    try {
      const { stdout, stderr } = await run(DOCKER, [...flags, "--entrypoint", TRTEXEC, image, ...args], { maxBuffer: 16 * MIB });
      return { code: 0, stdout, stderr, seconds: (performance.now() - start) / 1000 };
    } catch (e) {
      const err = e as Error & { code?: number; stdout?: string; stderr?: string };
      if (typeof err.code !== "number") throw e;
      return { code: err.code, stdout: err.stdout ?? "", stderr: err.stderr ?? "", seconds: (performance.now() - start) / 1000 };
    }
  }

  // A cold first run makes the Debian minbase image and both stand-in bases (minutes).
  before(
    async () => {
      bases = await buildBaseImages();
      console.log(`base images: ${bases.devel} ${bases.runtime} (${bases.seconds.toFixed(1)} s)`);
      dir = scratchDir("engine-stand-in");
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, "v1.onnx"), models.v1);
      writeFileSync(join(dir, "v4.onnx"), models.v4);
      writeFileSync(join(dir, "other.onnx"), models.other);
      writeFileSync(join(dir, "bad.onnx"), malformedOnnx(4096));
    },
    { timeout: 20 * 60_000 },
  );

  describe("trtexec in the runtime base", () => {
    it("is the repository's stand-in, at TensorRT's path and not on PATH, and the base says so", async () => {
      const { stdout } = await docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        bases.runtime,
        "-c",
        `sha256sum ${TRTEXEC}; stat -c %a ${TRTEXEC}; command -v trtexec; true`,
      );
      // A stale base (images/base/build.sh hashes its inputs into the tag) shows up here.
      const source = readFileSync(join(IMAGES_DIR, "base", "trtexec-stand-in", "trtexec"));
      assert.equal(stdout, `${sha256Hex(source)}  ${TRTEXEC}\n755\n`);
      const labels = (await inspectImage(bases.runtime)).Config.Labels ?? {};
      assert.match(
        labels["org.opencontainers.image.description"] ?? "",
        /^Stand-in for .*stand-in trtexec at \/usr\/src\/tensorrt\/bin\/trtexec/,
      );
    });

    it("builds an engine from a valid model with the deploy's arguments: RUNNING, PASSED, exit 0, the engine's header", async () => {
      const args = ["--onnx=/work/v1.onnx", "--saveEngine=/work/v1.engine", ...DEPLOY_ARGS];
      const res = await trtexec(args);
      assert.equal(res.code, 0, res.stdout + res.stderr);
      const lines = res.stdout.trimEnd().split("\n");
      assert.equal(lines[0], `&&&& RUNNING ${BANNER} # ${TRTEXEC} ${args.join(" ")}`);
      assert.equal(lines.at(-1), `&&&& PASSED ${BANNER} # ${TRTEXEC} ${args.join(" ")}`);
      assert.match(
        res.stdout,
        line(
          "I",
          "TensorRT stand-in (jetson-fleet, test only): no GPU, no TensorRT; reads the ONNX, simulates 0 s of build per MiB of it, writes a stand-in engine",
        ),
      );
      assert.match(res.stdout, line("I", "[TRT] ONNX IR version:  0.0.8"));
      assert.match(res.stdout, line("I", "[TRT] Producer version: v1"));
      assert.match(res.stdout, line("I", "Input build shape (profile 0): images=1x3x640x640+4x3x640x640+8x3x640x640"));
      assert.match(res.stdout, line("I", "Skipped inference phase since --skipInference is added."));
      assert.doesNotMatch(res.stdout + res.stderr, /\[E\]/);
      assert.deepEqual(engineHeader(join(dir, "v1.engine")), {
        onnxSha256: sha256Hex(models.v1),
        onnxBytes: MIB,
        precision: "fp16",
        shapes: { min: { images: "1x3x640x640" }, opt: { images: "4x3x640x640" }, max: { images: "8x3x640x640" } },
        workspaceMiB: 1024,
        tensorrt: "10.3.0",
        standIn: true,
      });
      const size = readFileSync(join(dir, "v1.engine")).length;
      assert.ok(size > MIB / 2 && size < MIB / 2 + 1024, `engine of ${size} bytes for a 1 MiB model`);
    });

    describe("reflects the options in the engine's header", () => {
      const cases: { name: string; args: string[]; header: Record<string, unknown> }[] = [
        { name: "fp32: no precision flag", args: [], header: { precision: "fp32", shapes: {}, workspaceMiB: null } },
        { name: "int8", args: ["--int8"], header: { precision: "int8", shapes: {}, workspaceMiB: null } },
        { name: "fp16 and int8", args: ["--fp16", "--int8"], header: { precision: "fp16+int8", shapes: {}, workspaceMiB: null } },
        { name: "best", args: ["--best"], header: { precision: "best", shapes: {}, workspaceMiB: null } },
        {
          name: "only optShapes: min and max default to it",
          args: ["--fp16", "--optShapes=images:2x3x640x640"],
          header: {
            precision: "fp16",
            shapes: { min: { images: "2x3x640x640" }, opt: { images: "2x3x640x640" }, max: { images: "2x3x640x640" } },
            workspaceMiB: null,
          },
        },
        {
          name: "a workspace in MiB without a unit",
          args: ["--memPoolSize=workspace:512"],
          header: { precision: "fp32", shapes: {}, workspaceMiB: 512 },
        },
        {
          name: "a workspace in G",
          args: ["--memPoolSize=workspace:2G,tacticSharedMem:1M"],
          header: { precision: "fp32", shapes: {}, workspaceMiB: 2048 },
        },
        {
          name: "the flags trtexec takes that change no header field",
          args: [
            "--verbose",
            "--noTF32",
            "--sparsity=enable",
            "--useDLACore=0",
            "--allowGPUFallback",
            "--timingCacheFile=/work/timing.cache",
            "--skipInference",
          ],
          header: { precision: "fp32", shapes: {}, workspaceMiB: null },
        },
      ];
      for (const [i, c] of cases.entries()) {
        it(c.name, async () => {
          const res = await trtexec(["--onnx=/work/other.onnx", `--saveEngine=/work/case-${i}.engine`, ...c.args]);
          assert.equal(res.code, 0, res.stdout + res.stderr);
          assert.deepEqual(engineHeader(join(dir, `case-${i}.engine`)), {
            onnxSha256: sha256Hex(models.other),
            onnxBytes: models.other.length,
            tensorrt: "10.3.0",
            standIn: true,
            ...c.header,
          });
        });
      }
    });

    describe("fails with exit 1, its [E] lines and FAILED, and writes no engine", () => {
      const cases: { name: string; args: string[]; env?: Record<string, string>; errors: string[] }[] = [
        {
          name: "an unknown option",
          args: ["--onnx=/work/v1.onnx", "--saveEngine=/work/f0.engine", "--workspace=1024"],
          errors: ["Unknown option: --workspace=1024"],
        },
        {
          name: "an option's value as a separate argument",
          args: ["--onnx", "/work/v1.onnx", "--saveEngine=/work/f1.engine"],
          errors: ["Unknown option: --onnx"],
        },
        {
          name: "a malformed ONNX",
          args: ["--onnx=/work/bad.onnx", "--saveEngine=/work/f2.engine", "--fp16"],
          errors: [
            "[TRT] ModelImporter.cpp:757: stand-in ONNX reader: invalid wire type 6 at byte 0",
            "[TRT] ModelImporter.cpp:829: Failed to parse ONNX model from file: /work/bad.onnx",
            "Failed to parse onnx file",
            "Parsing model failed",
            "Failed to create engine from model or file.",
            "Engine set up failed",
          ],
        },
        {
          name: "a missing ONNX file",
          args: ["--onnx=/work/missing.onnx", "--saveEngine=/work/f3.engine"],
          errors: [
            "Could not open file /work/missing.onnx: No such file or directory",
            "[TRT] ModelImporter.cpp:829: Failed to parse ONNX model from file: /work/missing.onnx",
          ],
        },
        {
          name: "shapes for an input the network does not have",
          args: ["--onnx=/work/v1.onnx", "--saveEngine=/work/f4.engine", "--optShapes=input:1x3x640x640"],
          errors: [
            'Cannot find input tensor with name "input" in the network inputs! Please make sure the input tensor names are correct.',
          ],
        },
        {
          name: "shapes that contradict the network's fixed dimensions",
          args: ["--onnx=/work/v1.onnx", "--saveEngine=/work/f7.engine", "--optShapes=images:1x3x320x320"],
          errors: [
            "Error[4]: [network.cpp::validate::3201] Error Code 4: API Usage Error (images: min shape 1x3x320x320 does not match the network's batchx3x640x640)",
            "Engine could not be created from network",
          ],
        },
        {
          name: "shapes out of order",
          args: [
            "--onnx=/work/v1.onnx",
            "--saveEngine=/work/f5.engine",
            "--minShapes=images:8x3x640x640",
            "--optShapes=images:1x3x640x640",
          ],
          errors: [
            "Invalid shapes for input images: expected min <= opt <= max in every dimension, got min=8x3x640x640 opt=1x3x640x640 max=1x3x640x640",
          ],
        },
        {
          name: "an invalid rate of simulated seconds",
          args: ["--onnx=/work/v1.onnx", "--saveEngine=/work/f6.engine"],
          env: { TRTEXEC_STAND_IN_SECONDS_PER_MIB: "fast" },
          errors: ["TRTEXEC_STAND_IN_SECONDS_PER_MIB=fast: expected a non-negative number of seconds"],
        },
      ];
      for (const c of cases) {
        it(c.name, async () => {
          const res = await trtexec(c.args, c.env);
          assert.equal(res.code, 1, res.stdout + res.stderr);
          assert.equal(res.stdout.split("\n")[0], `&&&& RUNNING ${BANNER} # ${TRTEXEC} ${c.args.join(" ")}`);
          for (const error of c.errors) assert.match(res.stderr, line("E", error));
          assert.equal(res.stderr.trimEnd().split("\n").at(-1), `&&&& FAILED ${BANNER} # ${TRTEXEC} ${c.args.join(" ")}`);
          assert.doesNotMatch(res.stdout, /&&&& PASSED/);
          const saved = c.args.find((a) => a.startsWith("--saveEngine=/work/"))?.slice("--saveEngine=/work/".length) ?? "";
          assert.equal(existsSync(join(dir, saved)), false);
        });
      }
    });

    it("takes time in proportion to the model's size and says what it simulated", async () => {
      // The default rate, 1 s/MiB: the sleeps make these lower bounds, whatever the machine's load.
      const one = await trtexec(["--onnx=/work/v1.onnx", "--saveEngine=/work/t1.engine", "--fp16", "--skipInference"], {});
      const four = await trtexec(["--onnx=/work/v4.onnx", "--saveEngine=/work/t4.engine", "--fp16", "--skipInference"], {});
      assert.equal(one.code, 0, one.stderr);
      assert.equal(four.code, 0, four.stderr);
      console.log(`1 MiB: ${one.seconds.toFixed(1)} s, 4 MiB: ${four.seconds.toFixed(1)} s (docker run included)`);
      assert.match(one.stdout, line("I", "Stand-in: simulated build time 1.000 s (1.000 MiB of ONNX at 1 s/MiB)"));
      assert.match(four.stdout, line("I", "Stand-in: simulated build time 4.000 s (4.000 MiB of ONNX at 1 s/MiB)"));
      assert.match(four.stdout, line("I", "[TRT] Building engine: 100% (stand-in: 4.0 of 4.0 simulated seconds)"));
      const generation = (r: Run) => Number(/\[TRT\] Engine generation completed in ([\d.]+) seconds\./.exec(r.stdout)?.[1]);
      assert.ok(generation(one) >= 1 && generation(four) >= 4, `${generation(one)} s and ${generation(four)} s`);
      assert.ok(four.seconds > one.seconds && four.seconds >= 4, `${four.seconds} s against ${one.seconds} s`);
      // Another rate.
      const quarter = await trtexec(["--onnx=/work/v4.onnx", "--saveEngine=/work/t5.engine"], { TRTEXEC_STAND_IN_SECONDS_PER_MIB: "0.25" });
      assert.match(quarter.stdout, line("I", "Stand-in: simulated build time 1.000 s (4.000 MiB of ONNX at 0.25 s/MiB)"));
    });
  });

  describe("the inference service with a mounted engine", () => {
    const started: Container[] = [];
    let engineDir: string;
    const builtAt = "2026-12-01T12:00:00.000Z";
    const KEY = "0123456789abcdef";

    /** A build record as the host's build step writes it (engine.json, mounted at the engine's path + ".json"). */
    const record = (model: string, onnx: Buffer) => ({
      model,
      sha256: sha256Hex(onnx),
      key: KEY,
      image: TAG,
      l4tRelease: "none",
      gpu: "none",
      args: DEPLOY_ARGS,
      builtAt,
      seconds: 0,
    });

    /** Writes `engine` (with `mode`) and `rec` (unless undefined) as NAME.engine and NAME.engine.json; returns their read-only mounts. */
    function mounts(name: string, engine: Buffer, rec: unknown, mode = 0o644): string[] {
      const [enginePath, recordPath] = [join(engineDir, `${name}.engine`), join(engineDir, `${name}.engine.json`)];
      writeFileSync(enginePath, engine);
      chmodSync(enginePath, mode);
      const flags = ["-v", `${enginePath}:${ENGINE}:ro`];
      if (rec !== undefined) {
        writeFileSync(recordPath, JSON.stringify(rec), { mode: 0o644 });
        flags.push("-v", `${recordPath}:${ENGINE}.json:ro`);
      }
      return flags;
    }

    /** Runs the image with a published loopback port and waits for /health to answer, whatever its status. */
    async function serve(...args: string[]): Promise<{ url: string; container: Container }> {
      const port = await freePort();
      const container = await startContainer(["-p", `127.0.0.1:${port}:8080`, ...args, TAG]);
      started.push(container);
      const url = `http://127.0.0.1:${port}`;
      await waitUntil(`${TAG} answering on ${url}/health`, async () => [200, 503].includes((await fetch(`${url}/health`)).status));
      return { url, container };
    }

    const healthStatus = async (id: string) => (await docker("inspect", "-f", "{{.State.Health.Status}}", id)).stdout.trim();

    before(
      async () => {
        const image = await dockerBuild(CONTEXT, { tag: TAG, buildArgs: { BUILDER_BASE: bases.devel, RUNTIME_BASE: bases.runtime } });
        console.log(`inference image ${image.seconds.toFixed(1)} s`);
        // The engine is built as the deploy builds it: with the trtexec of the service's own image.
        const res = await trtexec(["--onnx=/work/v1.onnx", "--saveEngine=/work/service.engine", ...DEPLOY_ARGS], undefined, TAG);
        assert.equal(res.code, 0, res.stdout + res.stderr);
        engineDir = scratchDir("engine-stand-in-mounts");
      },
      { timeout: 20 * 60_000 },
    );

    after(async () => {
      for (const c of started) await c.stop();
      await removeImages(TAG);
    });

    const engine = () => readFileSync(join(dir, "service.engine"));

    it("loads an engine of its model at start and reports model and engine in /health", async () => {
      const svc = await serve(...mounts("own", engine(), record("detector", models.v1)));
      const res = await fetch(`${svc.url}/health`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        status: "degraded",
        reasons: [NO_GPU],
        gpu: { devices: [] },
        model: { name: "detector", sha256: sha256Hex(models.v1) },
        engine: {
          path: ENGINE,
          present: true,
          readOnly: true,
          loaded: true,
          key: KEY,
          precision: "fp16",
          tensorrt: "10.3.0",
          standIn: true,
          builtAt,
        },
      });
      const { stderr } = await docker("logs", svc.container.id);
      assert.match(
        stderr,
        /status degraded; no GPU: .*; engine \/models\/model\.engine loaded: model detector, key 0123456789abcdef, fp16, TensorRT 10\.3\.0 \(stand-in\)$/m,
      );

      // With a GPU device (a stand-in: /dev/null) nothing is missing.
      const withGpu = await serve("--device", "/dev/null:/dev/nvidia0", ...mounts("own-gpu", engine(), record("detector", models.v1)));
      const body = (await (await fetch(`${withGpu.url}/health`)).json()) as Record<string, unknown>;
      assert.equal(body["status"], "ok");
      assert.equal(body["reasons"], undefined);
      assert.match(await (await fetch(`${withGpu.url}/metrics`)).text(), /^inference_degraded 0$/m);
    });

    it("answers 503 with status error for a record of another model, and turns unhealthy", async () => {
      const svc = await serve(
        "--health-interval",
        "1s",
        "--health-start-period",
        "0s",
        "--health-retries",
        "1",
        ...mounts("other", engine(), record("detector", models.other)),
      );
      const res = await fetch(`${svc.url}/health`);
      assert.equal(res.status, 503);
      const reason =
        `TensorRT engine at ${ENGINE} was built from the ONNX with SHA-256 ${sha256Hex(models.v1)}, ` +
        `not from model detector (SHA-256 ${sha256Hex(models.other)} in ${ENGINE}.json)`;
      assert.deepEqual(await res.json(), {
        status: "error",
        reasons: [NO_GPU, reason],
        gpu: { devices: [] },
        model: { name: "detector", sha256: sha256Hex(models.other) },
        engine: { path: ENGINE, present: true, readOnly: true, loaded: false },
      });
      await waitUntil("the container turning unhealthy", async () => (await healthStatus(svc.container.id)) === "unhealthy");
      const { stdout } = await docker("inspect", "-f", "{{json .State.Health.Log}}", svc.container.id);
      const log = JSON.parse(stdout) as { ExitCode: number; Output: string }[];
      assert.equal(log.at(-1)?.ExitCode, 1);
      assert.equal(log.at(-1)?.Output.trim(), `healthcheck: HTTP 503, status error: ${NO_GPU}; ${reason}`);
      assert.match(await (await fetch(`${svc.url}/metrics`)).text(), /^inference_degraded 1$/m);
    });

    describe("answers 503 with the reason for an engine that does not load", () => {
      const rec = () => record("detector", models.v1);
      const cases: { name: string; engine: () => Buffer; record?: () => unknown; mode?: number; reason: string; model?: boolean }[] = [
        {
          name: "a malformed engine",
          engine: () => Buffer.from("not a real TensorRT engine\n"),
          record: rec,
          reason: `TensorRT engine at ${ENGINE}: not an engine this service can load (no JFSTANDIN-TRT-ENGINE/1 header, and no TensorRT Python module to deserialize it)`,
          model: true,
        },
        {
          name: "a stand-in engine with a broken header",
          engine: () => Buffer.from('JFSTANDIN-TRT-ENGINE/1\n{"onnxSha256": 1}\n'),
          record: rec,
          reason: `TensorRT engine at ${ENGINE}: malformed stand-in engine header (expected a JSON line with "onnxSha256")`,
          model: true,
        },
        {
          name: "an engine the service's user cannot read",
          engine,
          record: rec,
          mode: 0o600,
          reason: `TensorRT engine at ${ENGINE} is not readable: Permission denied`,
          model: true,
        },
        {
          name: "an engine without its build record",
          engine,
          reason: `no build record at ${ENGINE}.json for the TensorRT engine at ${ENGINE}`,
        },
        {
          name: "a build record without the engine key",
          engine,
          record: () => ({ ...rec(), key: undefined }),
          reason: `build record ${ENGINE}.json: "key": expected the engine key, a non-empty string`,
        },
      ];
      for (const [i, c] of cases.entries()) {
        it(c.name, async () => {
          const svc = await serve(...mounts(`bad-${i}`, c.engine(), c.record?.(), c.mode));
          const res = await fetch(`${svc.url}/health`);
          assert.equal(res.status, 503);
          assert.deepEqual(await res.json(), {
            status: "error",
            reasons: [NO_GPU, c.reason],
            gpu: { devices: [] },
            ...(c.model ? { model: { name: "detector", sha256: sha256Hex(models.v1) } } : {}),
            engine: { path: ENGINE, present: true, readOnly: true, loaded: false },
          });
          const check = await docker("exec", svc.container.id, "python3", "/opt/inference/app/healthcheck.py").then(
            () => 0,
            (e: { code?: number }) => e.code,
          );
          assert.equal(check, 1, "the HEALTHCHECK's exit code");
        });
      }
    });

    it("stays degraded, 200 and healthy without an engine", async () => {
      const svc = await serve("--health-interval", "1s", "--health-start-period", "0s");
      const res = await fetch(`${svc.url}/health`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        status: "degraded",
        reasons: [NO_GPU, `no TensorRT engine at ${ENGINE}`],
        gpu: { devices: [] },
        engine: { path: ENGINE, present: false },
      });
      await waitUntil("the container turning healthy", async () => (await healthStatus(svc.container.id)) === "healthy");
    });
  });
});
