// The engine build's script (components/kubernetes/scripts/engine-init.sh) run here, without
// Docker or a cluster: its engine key equals engineKey() for the same inputs, in sh and in bash;
// then its steps in a temporary tree, against a registry served from this process on loopback
// (anonymous, basic and bearer auth; python3 and curl as the client) and the stand-in trtexec:
// a build, a reuse, new settings and the prune, and each failure with its exit code and message.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { ModelSpec, dockerConfigJson, engineKey, engineKeyText, trtexecArgs } from "../../../components/index.ts";
import { malformedOnnx, onnxModel, sha256Hex } from "../../support/onnx.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SCRIPT = join(ROOT, "components", "kubernetes", "scripts", "engine-init.sh");
const STAND_IN = join(ROOT, "images", "base", "trtexec-stand-in", "trtexec");
const IMAGE = `registry.lab:5000/fleet/inference@sha256:${"4f".repeat(32)}`;
const DIGEST = `sha256:${"4f".repeat(32)}`;
const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}
async function sh(shell: string, args: string[], env: Record<string, string>): Promise<Result> {
  try {
    const { stdout, stderr } = await run(shell, args, { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C", ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === "number" ? err.code : -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

const ORIN_NX_RELEASE =
  "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n";
const ORIN_NX_COMPATIBLE = "nvidia,p3768-0000+p3767-0000\0nvidia,p3767-0000\0nvidia,tegra234\0";
const ORIN_NX_GPU = "nvidia,p3768-0000+p3767-0000,nvidia,p3767-0000,nvidia,tegra234";
const SHELLS = ["sh", "bash"];

describe("engine-init.sh: the engine key, as engineKey() computes it", () => {
  const dir = mkdtempSync(join(tmpdir(), "engine-key-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cases: [string, string | undefined, string | undefined, Record<string, unknown>, string, string][] = [
    ["Orin NX on JetPack 6.2, fp16 with a workspace", ORIN_NX_RELEASE, ORIN_NX_COMPATIBLE, { workspace: "1g" }, "36.4.3", ORIN_NX_GPU],
    [
      "AGX Orin on R36.3, shapes",
      "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May  6 17:34:21 UTC 2024\n",
      "nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0",
      { shapes: { min: { images: "1x3x640x640" }, opt: { images: "4x3x640x640" }, max: { images: "8x3x640x640" } } },
      "36.3.0",
      "nvidia,p3737-0000+p3701-0005,nvidia,p3701-0005,nvidia,tegra234",
    ],
    [
      "JetPack 5 (R35.5), int8 and flags",
      "# R35 (release), REVISION: 5.0, GCID: 35550185\n",
      ORIN_NX_COMPATIBLE,
      { precision: "int8", flags: ["--useDLACore=0", "--allowGPUFallback"] },
      "35.5.0",
      ORIN_NX_GPU,
    ],
    ["a simulated host: no L4T, no device tree, fp32", undefined, undefined, { precision: "fp32" }, "none", "none"],
    [
      "L4T without a device tree, a flag with a blank",
      ORIN_NX_RELEASE,
      undefined,
      { flags: ["--timingCacheFile=/cache/timing cache.bin"] },
      "36.4.3",
      "none",
    ],
    [
      "another ARM board: a device tree without L4T, two inputs",
      undefined,
      "raspberrypi,4-model-b\0brcm,bcm2711\0",
      {
        shapes: {
          min: { images: "1x3x640x640", mask: "1x1x640x640" },
          opt: { images: "2x3x640x640", mask: "2x1x640x640" },
          max: { images: "4x3x640x640", mask: "4x1x640x640" },
        },
      },
      "none",
      "raspberrypi,4-model-b,brcm,bcm2711",
    ],
    ["a release file of another form and an empty compatible", "Linux for Tegra, unknown\n", "", {}, "none", "none"],
  ];
  cases.forEach(([what, release, compatible, engine, l4t, gpu], i) => {
    for (const shell of SHELLS) {
      it(`${shell}: ${what}`, async () => {
        const releaseFile = join(dir, `release-${i}`);
        const compatibleFile = join(dir, `compatible-${i}`);
        if (release !== undefined) writeFileSync(releaseFile, release);
        if (compatible !== undefined) writeFileSync(compatibleFile, compatible);
        const model = ModelSpec.parse({ name: "detector", source: { file: "m.onnx" }, sha256: sha256Hex(`model ${i}`), engine });
        const args = trtexecArgs(model.engine);
        const inputs = { modelSha256: model.sha256, image: IMAGE, l4tRelease: l4t, gpu, args };
        const program =
          '. "$0"; l4t=$(l4t_release "$1"); gpu=$(gpu_identity "$2"); sha=$3; digest=$4; shift 4; ' +
          'printf "%s|%s\\n" "$l4t" "$gpu"; engine_key_text "$sha" "$digest" "$l4t" "$gpu" "$@"; engine_key "$sha" "$digest" "$l4t" "$gpu" "$@"';
        const r = await sh(shell, ["-c", program, SCRIPT, releaseFile, compatibleFile, model.sha256, DIGEST, ...args], {
          ENGINE_INIT_LIBRARY: "1",
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `${l4t}|${gpu}\n${engineKeyText(inputs)}${engineKey(inputs)}\n`);
      });
    }
  });
});

/** A registry's blob endpoint on loopback: anonymous, basic (fleet/pull-pass) or bearer auth (a token for the login). */
interface FakeRegistry {
  readonly server: string;
  readonly requests: string[];
  mode: "anonymous" | "basic" | "bearer";
  readonly blobs: Map<string, Buffer>;
  close(): Promise<void>;
}
const LOGIN = { username: "fleet", password: "pull-pass" };
const BASIC = `Basic ${Buffer.from(`${LOGIN.username}:${LOGIN.password}`).toString("base64")}`;
const TOKEN = "test-token-8a1f";

async function fakeRegistry(): Promise<FakeRegistry> {
  const requests: string[] = [];
  const blobs = new Map<string, Buffer>();
  const state: { mode: FakeRegistry["mode"] } = { mode: "anonymous" };
  let server = "";
  const http: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const auth = req.headers.authorization;
    if (url.pathname === "/token") {
      const scope = url.searchParams.get("scope");
      if (auth !== BASIC || url.searchParams.get("service") !== "test-registry" || scope !== "repository:models/detector:pull") {
        res.writeHead(401).end("{}");
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
      return;
    }
    const storage = /^\/storage\/([0-9a-f]{64})$/.exec(url.pathname);
    if (storage) {
      const blob = blobs.get(storage[1] ?? "");
      res.writeHead(blob ? 200 : 404).end(blob ?? "");
      return;
    }
    const m = /^\/v2\/models\/detector\/blobs\/sha256:([0-9a-f]{64})$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
      return;
    }
    if (state.mode === "basic" && auth !== BASIC) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="test"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (state.mode === "bearer" && auth !== `Bearer ${TOKEN}`) {
      res
        .writeHead(401, {
          "www-authenticate": `Bearer realm="http://${server}/token",service="test-registry",scope="repository:models/detector:pull"`,
        })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const blob = blobs.get(m[1] ?? "");
    if (!blob) {
      res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return;
    }
    // With a token, the content is elsewhere (a storage backend), as registries on S3 do.
    if (state.mode === "bearer") res.writeHead(307, { location: `http://${server}/storage/${m[1]}` }).end();
    else res.writeHead(200, { "content-type": "application/octet-stream" }).end(blob);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  server = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    server,
    requests,
    blobs,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  };
}

describe("engine-init.sh: facts and build, run here", () => {
  let registry: FakeRegistry;
  let dir: string;
  const model = onnxModel({ bytes: 8192, version: "k8s-v1" });
  const hex = sha256Hex(model);
  const broken = malformedOnnx(2048);
  const brokenHex = sha256Hex(broken);
  const settings = (engine: Record<string, unknown>) =>
    ModelSpec.parse({
      name: "detector",
      source: { file: "m.onnx" },
      sha256: hex,
      engine: { shapes: { min: { images: "1x3x640x640" }, opt: { images: "2x3x640x640" }, max: { images: "4x3x640x640" } }, ...engine },
    }).engine;

  before(async () => {
    registry = await fakeRegistry();
    registry.blobs.set(hex, model);
    registry.blobs.set(brokenHex, broken);
    dir = mkdtempSync(join(tmpdir(), "engine-init-"));
    mkdirSync(join(dir, "host", "etc"), { recursive: true });
    mkdirSync(join(dir, "host", "firmware", "devicetree", "base"), { recursive: true });
    mkdirSync(join(dir, "facts"));
    mkdirSync(join(dir, "links", "0"), { recursive: true });
    writeFileSync(join(dir, "host", "etc", "nv_tegra_release"), ORIN_NX_RELEASE);
    writeFileSync(join(dir, "host", "firmware", "devicetree", "base", "compatible"), ORIN_NX_COMPATIBLE);
    writeFileSync(join(dir, "config.json"), dockerConfigJson(registry.server, LOGIN.username, LOGIN.password));
    writeFileSync(join(dir, "slow-builder"), "#!/bin/sh\necho '&&&& RUNNING slow builder'\nexec sleep 30\n", { mode: 0o755 });
  });
  after(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const engines = () => join(dir, "engines", "vision", "inference", "detector");
  const keys = () =>
    existsSync(engines())
      ? readdirSync(engines())
          .filter((n) => /^[0-9a-f]{16}$/.test(n))
          .sort()
      : [];
  const buildsLog = () =>
    readFileSync(join(dir, "engines", "vision", "builds.log"), "utf8")
      .trim()
      .split("\n");
  const keyOf = (args: string[], sha = hex) => engineKey({ modelSha256: sha, image: IMAGE, l4tRelease: "36.4.3", gpu: ORIN_NX_GPU, args });
  function build(args: string[], env: Record<string, string> = {}, shell = "sh"): Promise<Result> {
    return sh(shell, [SCRIPT, "build", ...args], {
      ENGINE_NAMESPACE: "vision",
      ENGINE_SERVICE: "inference",
      ENGINE_MODEL: "detector",
      ENGINE_MODEL_SHA256: hex,
      ENGINE_IMAGE: IMAGE,
      ENGINE_BUILDER: STAND_IN,
      ENGINE_TIMEOUT_SECONDS: "60",
      ENGINE_KEEP: "2",
      ENGINE_LINK: join(dir, "links", "0", "detector.engine"),
      ENGINE_MODEL_URL: `http://${registry.server}/v2/models/detector/blobs/sha256:${env["ENGINE_MODEL_SHA256"] ?? hex}`,
      ENGINE_REGISTRY: registry.server,
      ENGINE_REGISTRY_AUTH: join(dir, "config.json"),
      ENGINE_NODE_NAME: "orin-nx-01",
      ENGINE_FACTS: join(dir, "facts"),
      ENGINE_ROOT: join(dir, "engines"),
      ENGINE_MODEL_STORE_ROOT: join(dir, "models"),
      TRTEXEC_STAND_IN_SECONDS_PER_MIB: "0",
      ...env,
    });
  }

  it("facts: the node's L4T release and GPU, from its /etc and /sys/firmware", async () => {
    const r = await sh("sh", [SCRIPT, "facts"], {
      ENGINE_FACTS: join(dir, "facts"),
      ENGINE_HOST_ETC: join(dir, "host", "etc"),
      ENGINE_HOST_FIRMWARE: join(dir, "host", "firmware"),
      ENGINE_NODE_NAME: "orin-nx-01",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(dir, "facts", "l4t"), "utf8"), "36.4.3\n");
    assert.equal(readFileSync(join(dir, "facts", "gpu"), "utf8"), `${ORIN_NX_GPU}\n`);
    assert.equal(r.stderr, `engine-init: node orin-nx-01: L4T 36.4.3, GPU ${ORIN_NX_GPU}\n`);
  });

  it("build: fetches the model (basic auth, python3), builds the engine under its key, records it and links it", async () => {
    registry.mode = "basic";
    const args = trtexecArgs(settings({ workspace: "1g" }));
    const key = keyOf(args);
    const r = await build(args, { ENGINE_HTTP: "python3" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`engine-init: model detector: engine ${key} built in [0-9]+ s on node orin-nx-01\n$`));
    assert.match(r.stdout, /^&&&& RUNNING TensorRT\.trtexec/m);
    assert.match(r.stdout, /^&&&& PASSED/m);
    assert.deepEqual(keys(), [key]);
    const keyDir = join(engines(), key);
    assert.equal(readFileSync(join(keyDir, "model.engine"), "utf8").split("\n")[0], "JFSTANDIN-TRT-ENGINE/1");
    const record = JSON.parse(readFileSync(join(keyDir, "engine.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(
      { ...record, builtAt: "", seconds: 0 },
      {
        model: "detector",
        sha256: hex,
        key,
        image: IMAGE,
        l4tRelease: "36.4.3",
        gpu: ORIN_NX_GPU,
        args,
        builtAt: "",
        seconds: 0,
      },
    );
    assert.match(String(record["builtAt"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(readFileSync(join(dir, "models", "vision", "sha256", hex)), model);
    assert.deepEqual(readdirSync(join(dir, "models", "vision", "tmp")), []);
    assert.equal(readlinkSync(join(dir, "links", "0", "detector.engine")), join(keyDir, "model.engine"));
    assert.equal(readlinkSync(join(dir, "links", "0", "detector.engine.json")), join(keyDir, "engine.json"));
    const log = buildsLog();
    assert.equal(log.length, 1);
    assert.match(
      log[0] ?? "",
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ host=orin-nx-01 service=inference model=detector key=${key} result=built seconds=\\d+$`,
      ),
    );
    assert.deepEqual(registry.requests.splice(0), [
      `GET /v2/models/detector/blobs/sha256:${hex}`,
      `GET /v2/models/detector/blobs/sha256:${hex}`,
    ]);
  });

  it("build again: the engine is reused, nothing is fetched or built (bash too)", async () => {
    const args = trtexecArgs(settings({ workspace: "1g" }));
    const r = await build(args, {}, "bash");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      `engine-init: model detector: engine ${keyOf(args)} reused (L4T 36.4.3, GPU ${ORIN_NX_GPU}) on node orin-nx-01\n`,
    );
    assert.equal(r.stdout, "");
    assert.deepEqual(registry.requests.splice(0), []);
    assert.equal(buildsLog().length, 1);
  });

  for (const [mode, client, workspace] of [
    ["bearer", "python3", "21m"],
    ["bearer", "curl", "22m"],
    ["basic", "curl", "23m"],
    ["anonymous", "curl", "24m"],
  ] as const) {
    it(`fetch with ${client}, ${mode} auth: the model is checked and stored`, async () => {
      rmSync(join(dir, "models"), { recursive: true, force: true });
      registry.mode = mode;
      // New settings each time: a new key, so the model is needed.
      const args = trtexecArgs(settings({ workspace }));
      const r = await build(args, { ENGINE_HTTP: client, ENGINE_KEEP: "5" });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(readFileSync(join(dir, "models", "vision", "sha256", hex)), model);
      const blob = `GET /v2/models/detector/blobs/sha256:${hex}`;
      const expected =
        mode === "bearer"
          ? [blob, "GET /token?service=test-registry&scope=repository%3Amodels%2Fdetector%3Apull", blob, `GET /storage/${hex}`]
          : mode === "basic"
            ? [blob, blob]
            : [blob];
      // curl and python3 escape the scope's ":" and "/" in either case.
      assert.deepEqual(
        registry.requests.splice(0).map((r) => decodeURIComponent(r)),
        expected.map((r) => decodeURIComponent(r)),
      );
    });
  }

  it("the prune keeps the ENGINE_KEEP newest engines, the new one among them", async () => {
    assert.equal(keys().length, 5);
    const args = trtexecArgs(settings({ workspace: "31m" }));
    const r = await build(args, { ENGINE_KEEP: "2" });
    assert.equal(r.code, 0, r.stderr);
    const kept = keys();
    assert.equal(kept.length, 2);
    assert.ok(kept.includes(keyOf(args)), kept.join(", "));
    assert.equal((r.stderr.match(/removed engine [0-9a-f]{16} of model detector \(models\[\]\.engine\.keep: 2\)/g) ?? []).length, 4);
    registry.requests.splice(0);
  });

  it("a failed build exits 3 with the model, the key and the builder's last output; no key directory is left", async () => {
    registry.mode = "anonymous";
    const args = trtexecArgs(settings({}));
    const key = keyOf(args, brokenHex);
    const before = keys();
    const r = await build(args, { ENGINE_MODEL_SHA256: brokenHex });
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `engine-init: model detector, key ${key}: the engine build failed \\(exit 1\\) on node orin-nx-01 in ${IMAGE.replace(/[.]/g, "\\.")}; the builder's last output:\n(.*\n)*.*Failed to parse ONNX model from file: .*\n(.*\n)*&&&& FAILED`,
      ),
    );
    assert.deepEqual(keys(), before);
    assert.deepEqual(
      readdirSync(engines()).filter((n) => n.startsWith(".") && n !== ".lock"),
      [],
    );
    assert.match(
      buildsLog().at(-1) ?? "",
      new RegExp(`host=orin-nx-01 service=inference model=detector key=${key} result=failed seconds=\\d+$`),
    );
    registry.requests.splice(0);
  });

  it("a build that takes longer than ENGINE_TIMEOUT_SECONDS exits 4", async () => {
    const args = trtexecArgs(settings({ workspace: "41m" }));
    const r = await build(args, { ENGINE_BUILDER: join(dir, "slow-builder"), ENGINE_TIMEOUT_SECONDS: "1" });
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `engine-init: model detector, key ${keyOf(args)}: the engine build did not finish within 1 s \\(models\\[\\]\\.engine\\.timeout\\) on node orin-nx-01; the builder's last output:\n&&&& RUNNING slow builder\n$`,
      ),
    );
    assert.ok(!keys().includes(keyOf(args)));
  });

  const fetchFailures: [string, Record<string, string>, FakeRegistry["mode"], RegExp][] = [
    [
      "content that is not the model's",
      { ENGINE_MODEL_SHA256: "0".repeat(64), ENGINE_MODEL_URL: "" },
      "anonymous",
      /the content's SHA-256 is [0-9a-f]{64}; expected 0{64} \(models\[\]\.sha256\)/,
    ],
    [
      "a registry that wants a login the pod does not have",
      { ENGINE_REGISTRY_AUTH: "" },
      "basic",
      /the registry asks for a login and the pod has none/,
    ],
    ["a blob the registry does not have", { ENGINE_MODEL_SHA256: "e".repeat(64) }, "anonymous", /HTTP 404.*BLOB_UNKNOWN/],
  ];
  for (const [what, env, mode, message] of fetchFailures) {
    for (const client of ["python3", "curl"]) {
      it(`${client}: ${what} exits 2 and stores nothing`, async () => {
        rmSync(join(dir, "models"), { recursive: true, force: true });
        registry.mode = mode;
        const sha = env["ENGINE_MODEL_SHA256"] ?? hex;
        const url = `http://${registry.server}/v2/models/detector/blobs/sha256:${env["ENGINE_MODEL_URL"] === "" ? hex : sha}`;
        const r = await build(trtexecArgs(settings({ workspace: "51m" })), { ...env, ENGINE_MODEL_URL: url, ENGINE_HTTP: client });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`engine-init: model detector \\(sha256:${sha}\\): the fetch failed: `));
        assert.match(r.stderr, message);
        assert.match(r.stderr, /; nothing was changed\n$/);
        assert.deepEqual(readdirSync(join(dir, "models", "vision", "sha256")), []);
        assert.deepEqual(readdirSync(join(dir, "models", "vision", "tmp")), []);
        registry.requests.splice(0);
      });
    }
  }

  it("wrong parameters exit 1, naming the variable", async () => {
    const cases: [Record<string, string>, string][] = [
      [{ ENGINE_MODEL: "Detector" }, "engine-init: ENGINE_MODEL=Detector: expected a DNS label\n"],
      [
        { ENGINE_IMAGE: "registry.lab:5000/fleet/inference:1.0" },
        "engine-init: ENGINE_IMAGE=registry.lab:5000/fleet/inference:1.0: expected repository@sha256:<digest>\n",
      ],
      [{ ENGINE_KEEP: "0" }, "engine-init: ENGINE_KEEP=0: expected a whole number, at least 1\n"],
      [
        { ENGINE_FACTS: join(dir, "nowhere") },
        `engine-init: ENGINE_FACTS=${join(dir, "nowhere")}: the node's facts are missing; expected init container node-facts to have written l4t and gpu\n`,
      ],
    ];
    for (const [env, message] of cases) {
      const r = await build(["--fp16", "--skipInference"], env);
      assert.deepEqual([r.code, r.stderr], [1, message]);
    }
    const r = await build(["--onnx=/x.onnx"]);
    assert.deepEqual(
      [r.code, r.stderr],
      [1, "engine-init: the arguments hold --onnx=/x.onnx; the build sets --onnx and --saveEngine itself\n"],
    );
    const step = await sh("sh", [SCRIPT, "--fp16"], {});
    assert.deepEqual([step.code, step.stderr], [1, "engine-init: expected the step as the first argument: facts or build; got '--fp16'\n"]);
  });
});
