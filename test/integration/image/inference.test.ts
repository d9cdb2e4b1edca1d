// The inference image (images/inference/) built on the local stand-ins for the L4T TensorRT bases
// (images/base/build.sh) and run on the real Docker engine: the merge API through the compiled
// library, health that degrades instead of crashing, Prometheus metrics, and what the runtime stage
// must not carry (compilers, headers, sources, root).
import assert from "node:assert/strict";
import { chmodSync, cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildBaseImages, dockerBuild, IMAGES_DIR, inspectImage, removeImages, startContainer, waitUntil } from "../../support/images.ts";
import type { BaseImages, Container } from "../../support/images.ts";
import { onnxModel, sha256Hex } from "../../support/onnx.ts";
import { docker, freePort, run, DOCKER, scratchDir } from "../../support/services.ts";

const CONTEXT = join(IMAGES_DIR, "inference");
const TAG = `jetson-fleet/inference:test-${process.pid}`;
const BUILDER_TAG = `jetson-fleet/inference-builder:test-${process.pid}`;
const APP_CHANGE_TAG = `jetson-fleet/inference:test-${process.pid}-app`;
const BROKEN_TAG = `jetson-fleet/inference-builder:test-${process.pid}-broken`;
const NO_GPU = "no GPU: neither /dev/nvhost-* nor /dev/nvidia0 is present";
const NO_ENGINE = "no TensorRT engine at /models/model.engine";

interface Service {
  readonly url: string;
  readonly container: Container;
}

describe("inference image", { timeout: 30 * 60_000 }, () => {
  let bases: BaseImages;
  let buildArgs: Record<string, string>;
  const started: Container[] = [];

  /** Runs the image with a published loopback port and waits for /health to answer. */
  async function serve(...args: string[]): Promise<Service> {
    const port = await freePort();
    const container = await startContainer(["-p", `127.0.0.1:${port}:8080`, ...args, TAG]);
    started.push(container);
    const url = `http://127.0.0.1:${port}`;
    await waitUntil(`${TAG} answering on ${url}/health`, async () => (await fetch(`${url}/health`)).ok);
    return { url, container };
  }

  let service: Service;

  // A cold first run makes the Debian minbase image, the sim image and both stand-ins (minutes).
  before(
    async () => {
      bases = await buildBaseImages();
      console.log(`base images: ${bases.devel} ${bases.runtime} (${bases.seconds.toFixed(1)} s)`);
      buildArgs = {
        BUILDER_BASE: bases.devel,
        RUNTIME_BASE: bases.runtime,
        VERSION: "1.4.2",
        REVISION: "0123456789abcdef0123456789abcdef01234567",
        SOURCE: "https://example.invalid/jetson-fleet",
      };
      const builder = await dockerBuild(CONTEXT, { tag: BUILDER_TAG, target: "builder", buildArgs });
      const image = await dockerBuild(CONTEXT, { tag: TAG, buildArgs });
      console.log(`builder stage ${builder.seconds.toFixed(1)} s, runtime image ${image.seconds.toFixed(1)} s`);
      service = await serve();
    },
    { timeout: 25 * 60_000 },
  );

  after(async () => {
    for (const c of started) await c.stop();
    await removeImages(TAG, BUILDER_TAG, APP_CHANGE_TAG, BROKEN_TAG);
  });

  it("builds libtilemerge.so and its passing unit tests in the builder stage", async () => {
    // The build ran them (a failure fails it: next test); the binary is still there to run again.
    const { stdout } = await run(DOCKER, ["run", "--rm", "--entrypoint", "sh", BUILDER_TAG, "-c", "ls /src/native; ./test_tilemerge"]);
    assert.match(stdout, /^libtilemerge\.so$/m);
    assert.match(stdout, /^13 tests, \d+ checks, 0 failed$/m);
  });

  it("fails the build when a merge unit test fails", async () => {
    const context = scratchDir("inference-broken");
    cpSync(CONTEXT, context, { recursive: true });
    const source = join(context, "native", "tilemerge.cpp");
    const code = readFileSync(source, "utf8");
    // Lowest score first: the merge would keep the weakest box of each overlapping group.
    const broken = code.replace("return a.score > b.score;", "return a.score < b.score;");
    assert.notEqual(broken, code);
    writeFileSync(source, broken);
    await assert.rejects(dockerBuild(context, { tag: BROKEN_TAG, target: "builder", buildArgs }), (e: Error) => {
      assert.match(e.message, /FAIL keeps the highest score of an overlapping pair/);
      assert.match(e.message, /make: \*\*\* \[Makefile:\d+: check\] Error 1/);
      return true;
    });
  });

  it("reports itself degraded, not crashed, with no GPU and no engine", async () => {
    const res = await fetch(`${service.url}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      status: "degraded",
      reasons: [NO_GPU, NO_ENGINE],
      gpu: { devices: [] },
      engine: { path: "/models/model.engine", present: false },
    });
  });

  it("clears the engine reason when an engine of its model is mounted read-only", async () => {
    // Built as a host builds it: with the image's own trtexec (the stand-in on the stand-in base).
    const dir = scratchDir("inference-engine");
    chmodSync(dir, 0o755);
    const onnx = onnxModel({ bytes: 64 * 1024, version: "v1" });
    writeFileSync(join(dir, "model.onnx"), onnx);
    const trtexec = [
      "--entrypoint",
      "/usr/src/tensorrt/bin/trtexec",
      TAG,
      "--onnx=/work/model.onnx",
      "--saveEngine=/work/model.engine",
      "--fp16",
    ];
    await docker("run", "--rm", "--user", "0:0", "-v", `${dir}:/work`, ...trtexec, "--skipInference");
    const record = { model: "detector", sha256: sha256Hex(onnx), key: "0123456789abcdef", builtAt: "2026-12-01T12:00:00.000Z" };
    writeFileSync(join(dir, "model.engine.json"), JSON.stringify(record), { mode: 0o644 });
    const mounts = [
      "-v",
      `${join(dir, "model.engine")}:/models/model.engine:ro`,
      "-v",
      `${join(dir, "model.engine.json")}:/models/model.engine.json:ro`,
    ];
    const model = { name: "detector", sha256: record.sha256 };
    const engine = {
      path: "/models/model.engine",
      present: true,
      readOnly: true,
      loaded: true,
      key: record.key,
      precision: "fp16",
      tensorrt: "10.3.0",
      standIn: true,
      builtAt: record.builtAt,
    };
    const withEngine = await serve(...mounts);
    assert.deepEqual(await (await fetch(`${withEngine.url}/health`)).json(), {
      status: "degraded",
      reasons: [NO_GPU],
      gpu: { devices: [] },
      model,
      engine,
    });

    // A device node at /dev/nvidia0 (a stand-in: /dev/null) and the engine: nothing is missing.
    const withBoth = await serve("--device", "/dev/null:/dev/nvidia0", ...mounts);
    assert.deepEqual(await (await fetch(`${withBoth.url}/health`)).json(), {
      status: "ok",
      gpu: { devices: ["/dev/nvidia0"] },
      model,
      engine,
    });
    assert.match(await (await fetch(`${withBoth.url}/metrics`)).text(), /^inference_degraded 0$/m);
  });

  it("merges two overlapping boxes across a tile border into the highest-scoring one", async () => {
    // Two 640x640 tiles overlapping by 128 px; tile 1 starts at x = 512. One object at frame x
    // 500..600: tile 0 sees it whole, tile 1 sees it cut by its left edge (local x 0..88, frame
    // 512..600, IoU 0.88). A box of another class at the same place and a box elsewhere stay.
    const res = await fetch(`${service.url}/merge`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        iou: 0.5,
        tiles: [
          {
            x: 0,
            y: 0,
            detections: [
              { box: [500, 100, 600, 200], score: 0.9, class: 0 },
              { box: [10, 10, 50, 50], score: 0.8, class: 2 },
            ],
          },
          {
            x: 512,
            y: 0,
            detections: [
              { box: [0, 100, 88, 200], score: 0.7, class: 0 },
              { box: [0, 100, 88, 200], score: 0.6, class: 1 },
            ],
          },
        ],
      }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      detections: [
        { box: [500, 100, 600, 200], score: 0.9, class: 0, tile: 0, merged: 1 },
        { box: [10, 10, 50, 50], score: 0.8, class: 2, tile: 0, merged: 0 },
        { box: [512, 100, 600, 200], score: 0.6, class: 1, tile: 1, merged: 0 },
      ],
    });
  });

  it("rejects a malformed merge request with 400 naming the key", async () => {
    const post = async (body: string) => {
      const res = await fetch(`${service.url}/merge`, { method: "POST", body });
      return [res.status, await res.json()];
    };
    assert.deepEqual(await post("{"), [
      400,
      { error: "body: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))" },
    ]);
    assert.deepEqual(await post(JSON.stringify({ tiles: [{ x: 0, y: 0, detections: [{ box: [5, 0, 1, 1], score: 1, class: 0 }] }] })), [
      400,
      { error: "tiles[0].detections[0].box: expected x1 < x2 and y1 < y2" },
    ]);
    assert.deepEqual(await post(JSON.stringify({ tiles: [], iou: 2 })), [400, { error: "iou: expected a number within [0, 1]" }]);
  });

  it("serves Prometheus metrics: requests by path, merge time, degraded, build info", async () => {
    // Its own container, so the counts are exact whatever the other tests did.
    const fresh = await serve();
    const merge = await fetch(`${fresh.url}/merge`, {
      method: "POST",
      body: JSON.stringify({ tiles: [{ x: 0, y: 0, detections: [{ box: [0, 0, 1, 1], score: 1, class: 0 }] }] }),
    });
    assert.equal(merge.status, 200);
    const res = await fetch(`${fresh.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const healthProbes = Number(/^inference_requests_total\{path="\/health",method="GET",code="200"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(healthProbes >= 1, text);
    for (const line of [
      'inference_requests_total{path="/merge",method="POST",code="200"} 1',
      "# TYPE inference_merge_seconds histogram",
      'inference_merge_seconds_bucket{le="+Inf"} 1',
      "inference_merge_seconds_count 1",
      'inference_merge_boxes_total{direction="in"} 1',
      "inference_degraded 1",
      `inference_build_info{version="1.4.2",revision="0123456789abcdef0123456789abcdef01234567"} 1`,
    ]) {
      assert.ok(text.split("\n").includes(line), `missing ${JSON.stringify(line)} in:\n${text}`);
    }
  });

  it("runs as a non-root user", async () => {
    assert.equal((await inspectImage(TAG)).Config.User, "10001:10001");
    const { stdout } = await docker("exec", service.container.id, "sh", "-c", "id -u; id -g; awk '/^Uid:/ {print $2}' /proc/1/status");
    assert.equal(stdout, "10001\n10001\n10001\n");
  });

  it("carries no compilers, headers or sources", async () => {
    // dash's `command -v` looks at its first name only, so each name is also asked on its own.
    const probe = `command -v g++ cc gcc c++; for c in g++ gcc cc c++ clang make cmake ld as; do command -v "$c"; done; find / -xdev \\( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' \\) -print; true`;
    const { stdout } = await docker("run", "--rm", "--entrypoint", "sh", TAG, "-c", probe);
    assert.equal(stdout, "");
    // The builder stage does have them: the probe finds what it looks for.
    const builder = await docker("run", "--rm", "--entrypoint", "sh", BUILDER_TAG, "-c", probe);
    assert.match(builder.stdout, /^\/usr\/bin\/g\+\+$/m);
    assert.match(builder.stdout, /^\/src\/native\/tilemerge\.h$/m);
  });

  it("has a HEALTHCHECK that turns healthy while degraded", async () => {
    assert.deepEqual((await inspectImage(TAG)).Config.Healthcheck?.Test, ["CMD", "python3", "/opt/inference/app/healthcheck.py"]);
    const probed = await serve("--health-interval", "1s", "--health-start-period", "0s");
    await waitUntil("the container turning healthy", async () => {
      const { stdout } = await docker("inspect", "-f", "{{.State.Health.Status}}", probed.container.id);
      return stdout.trim() === "healthy";
    });
  });

  it("stops cleanly on SIGTERM", async () => {
    const stopped = await serve();
    const start = performance.now();
    await docker("stop", "-t", "10", stopped.container.id);
    assert.ok(performance.now() - start < 5_000, "docker stop waited for the kill timeout");
    assert.equal((await docker("inspect", "-f", "{{.State.ExitCode}}", stopped.container.id)).stdout.trim(), "0");
  });

  it("carries OCI labels for version, revision, source and both bases", async () => {
    const labels = (await inspectImage(TAG)).Config.Labels ?? {};
    assert.equal(labels["org.opencontainers.image.version"], "1.4.2");
    assert.equal(labels["org.opencontainers.image.revision"], "0123456789abcdef0123456789abcdef01234567");
    assert.equal(labels["org.opencontainers.image.source"], "https://example.invalid/jetson-fleet");
    assert.equal(labels["org.opencontainers.image.base.name"], bases.runtime);
    assert.equal(labels["io.jetson-fleet.image.builder.base.name"], bases.devel);
    assert.equal(labels["org.opencontainers.image.licenses"], "Apache-2.0");
  });

  it("is smaller than its builder stage", async () => {
    const runtime = (await inspectImage(TAG)).Size;
    const builder = (await inspectImage(BUILDER_TAG)).Size;
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    console.log(`runtime image ${mb(runtime)}, builder stage ${mb(builder)}, ratio ${(runtime / builder).toFixed(2)}`);
    assert.ok(runtime < builder, `runtime ${runtime} bytes is not smaller than builder ${builder} bytes`);
  });

  it("rebuilds only the last layer after an app-only change", async () => {
    const context = scratchDir("inference-app-change");
    cpSync(CONTEXT, context, { recursive: true });
    // Unique content: an earlier run's change is in the build cache.
    writeFileSync(
      join(context, "service", "server.py"),
      `${readFileSync(join(context, "service", "server.py"), "utf8")}# changed by test run ${process.pid} at ${Date.now()}\n`,
    );
    const rebuild = await dockerBuild(context, { tag: APP_CHANGE_TAG, buildArgs });
    console.log(`app-only rebuild ${rebuild.seconds.toFixed(1)} s`);
    // Every step but the service's COPY came from the cache (FROM lines resolve the local bases). (Layer digests below it are not
    // compared: after a --no-cache build the cache holds several equivalent records of a RUN step,
    // whose layers differ in file times, and BuildKit may take any of them.)
    const steps = new Map([...rebuild.log.matchAll(/^#(\d+) \[(?:builder|runtime) \d+\/\d+\] (.+)$/gm)].map((m) => [m[1], m[2]]));
    const cached = new Set([...rebuild.log.matchAll(/^#(\d+) CACHED$/gm)].map((m) => m[1]));
    assert.ok(steps.size >= 8, rebuild.log);
    assert.deepEqual(
      [...steps].filter(([id, step]) => !cached.has(id) && !step?.startsWith("FROM ")).map(([, step]) => step),
      ["COPY service/ ./"],
    );
    const before = (await inspectImage(TAG)).RootFS.Layers;
    const changed = (await inspectImage(APP_CHANGE_TAG)).RootFS.Layers;
    assert.equal(changed.length, before.length);
    assert.notEqual(changed.at(-1), before.at(-1));
  });
});
