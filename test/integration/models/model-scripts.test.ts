// The models' scripts for real: model-artifact.sh pushes a generated ONNX model to a registry on
// this machine as an OCI artifact (uploading only what the registry lacks) and verifies it, with
// the registry's credentials kept out of every argument; model-fetch.sh and engine-build.sh run on
// a simulated Jetson over real SSH exactly as host steps do (the launcher, the sudo password and
// the parameters on stdin): the fetch stores the model by content and replaces a damaged copy; the
// build runs the stand-in trtexec in the stand-in L4T runtime image, keeps a failed or timed-out
// build from touching the previous engine, and prunes to KEEP engines, never one a container mounts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { hostCommand, hostStdin, type StepParams } from "../../../components/host/scripts.ts";
import { engineKey } from "../../../components/models/engine.ts";
import { renderModelScript, type ModelScript } from "../../../components/models/scripts.ts";
import { buildBaseImages } from "../../support/images.ts";
import { ssh, type SimHost } from "../../support/jetson-sim.ts";
import { malformedOnnx, onnxModel, sha256Hex } from "../../support/onnx.ts";
import { HOST_REGISTRY, startServiceHosts, type ServiceHosts } from "../../support/service-hosts.ts";
import { scratchDir, startAuthRegistry, type AuthRegistry } from "../../support/services.ts";

const PROJECT = "jf16-models";
const MIB = 1024 ** 2;
const ENGINES = `/var/lib/jetson-fleet/engines/${PROJECT}`;
const STORE = `/var/lib/jetson-fleet/models/${PROJECT}`;

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** model-artifact.sh as a local command runs it: the rendered script, its parameters as its environment. */
function artifact(params: Record<string, string>, path = process.env["PATH"] ?? ""): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", renderModelScript("model-artifact")], {
      env: { PATH: path, HOME: process.env["HOME"] ?? "/root", ...params },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? 255, stdout, stderr }));
  });
}

/**
 * A registry that takes bearer tokens only, in front of `upstream`: a request without a token for
 * its scope gets 401 `Bearer realm=".../token",service="jf16",scope="repository:<repo>:pull[,push]"`;
 * the realm gives a token for any scope to `username:password` (Basic), and nothing to anyone else.
 * `requests` logs "METHOD path" of each request, the token requests included.
 */
async function startBearerRegistry(upstream: string, username: string, password: string) {
  const requests: string[] = [];
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const url = new URL(req.url ?? "/", "http://x");
        requests.push(`${req.method} ${url.pathname}`);
        if (url.pathname === "/token") {
          if (req.headers.authorization !== basic) return res.writeHead(401).end();
          const body = JSON.stringify({ token: `tok:${url.searchParams.getAll("scope").join(" ")}`, expires_in: 300 });
          return res.writeHead(200, { "Content-Type": "application/json" }).end(body);
        }
        const repo = /^\/v2\/(.+?)\/(blobs|manifests)\//.exec(url.pathname)?.[1] ?? "";
        const push = req.method !== "GET" && req.method !== "HEAD";
        const scope = `repository:${repo}:${push ? "pull,push" : "pull"}`;
        const token = req.headers.authorization?.replace(/^Bearer tok:/, "") ?? "";
        if (token !== scope && !(!push && token === `repository:${repo}:pull,push`)) {
          const realm = `http://${(server.address() as { port: number } | null) ? `127.0.0.1:${(server.address() as { port: number }).port}` : ""}/token`;
          return res.writeHead(401, { "WWW-Authenticate": `Bearer realm="${realm}",service="jf16",scope="${scope}"` }).end();
        }
        const headers: Record<string, string> = {};
        for (const h of ["content-type", "accept"]) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
        const up = await fetch(`http://${upstream}${req.url ?? ""}`, {
          method: req.method ?? "GET",
          headers,
          redirect: "manual",
          ...(push ? { body: Buffer.concat(chunks) } : {}),
        });
        const out: Record<string, string> = {};
        for (const h of ["content-type", "docker-content-digest", "location", "content-length"]) {
          const v = up.headers.get(h);
          if (v !== null) out[h] = v.replace(`http://${upstream}`, "");
        }
        const body = Buffer.from(await up.arrayBuffer());
        res.writeHead(up.status, out).end(req.method === "HEAD" ? undefined : body);
      })().catch((e: unknown) => res.writeHead(502).end(String(e)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    server: `127.0.0.1:${port}`,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("model scripts: artifact push, fetch and engine build on a simulated Jetson", { timeout: 40 * 60_000 }, () => {
  let env: ServiceHosts;
  let host: SimHost;
  let image: string;
  const dir = scratchDir("jf16-models");
  const detector = onnxModel({ bytes: 256 * 1024, version: "v1" });
  const detectorSha = sha256Hex(detector);
  const detectorFile = join(dir, "detector.onnx");
  writeFileSync(detectorFile, detector);
  // The manifest of the detector as model-artifact pushes it (its digest: the sha256 of these bytes).
  const manifestOf = (sha: string, size: number, title: string) =>
    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.jetson-fleet.model.v1",` +
    `"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
    `"layers":[{"mediaType":"application/vnd.jetson-fleet.model.onnx","digest":"sha256:${sha}","size":${size},"annotations":{"org.opencontainers.image.title":"${title}"}}]}`;
  const registryParams = (repository: string) => ({ REGISTRY_URL: `http://${env.registry.server}`, REPOSITORY: repository });

  /** A host step of `script` on the sim, as JetsonHost's steps run: the launcher, the password and the parameters on stdin. */
  const step = (script: ModelScript, action: "create" | "delete", params: StepParams): Promise<Result> =>
    ssh(env.fleet, host, hostCommand(script, action, "sudo-password"), {
      input: hostStdin("sudo-password", env.fleet.sudoPassword, {
        script: renderModelScript(script),
        create: params,
        delete: { ...params, ACTION: "delete" },
      }),
    });
  const fetchParams = (model: string, sha: string, repository = `models/${model}`) => ({
    PROJECT,
    HOST_NAME: host.name,
    MODEL: model,
    SHA256: sha,
    REGISTRY_URL: `http://${HOST_REGISTRY}`,
    REPOSITORY: repository,
  });
  /** Pushes `bytes` as model `model` and fetches it into the sim's store. */
  const provide = async (model: string, bytes: Buffer) => {
    const file = join(dir, `${model}-${sha256Hex(bytes).slice(0, 8)}.onnx`);
    writeFileSync(file, bytes);
    const sha = sha256Hex(bytes);
    const pushed = await artifact({
      ACTION: "push",
      FILE: file,
      SHA256: sha,
      MODEL: model,
      TAG: `${model}-${sha.slice(0, 12)}`,
      ...registryParams(`models/${model}`),
    });
    assert.equal(pushed.code, 0, pushed.stderr);
    const fetched = await step("model-fetch", "create", fetchParams(model, sha));
    assert.equal(fetched.code, 0, fetched.stderr);
    return sha;
  };
  const buildArgs = (args: readonly string[]) => args.join("\n");
  const keyOf = (sha: string, args: readonly string[]) => engineKey({ modelSha256: sha, image, l4tRelease: "36.4.3", gpu: "none", args });
  const buildParams = (model: string, sha: string, args: readonly string[], extra: Record<string, string> = {}) => ({
    PROJECT,
    HOST_NAME: host.name,
    SERVICE: "inference",
    MODEL: model,
    SHA256: sha,
    IMAGE: image,
    KEY: keyOf(sha, args),
    BUILDER: "/usr/src/tensorrt/bin/trtexec",
    BUILD_ARGS: buildArgs(args),
    TIMEOUT: "600",
    KEEP: "2",
    RUNTIME: "nvidia",
    L4T: "36.4.3",
    GPU: "none",
    ...extra,
  });
  const sh = (command: string) => env.sh(host, command);
  const keyDirs = async (model: string) =>
    (await sh(`ls -1 ${ENGINES}/inference/${model} 2>/dev/null || true`)).trim().split("\n").filter(Boolean).sort();
  const lastBuildLog = async () => (await sh(`tail -n 1 ${ENGINES}/builds.log`)).trim();

  before(
    async () => {
      // An address block and ports of this test's own, beside every other suite's sims.
      process.env["JETSON_SIM_ADDRESS_NET"] ??= "127.0.8";
      process.env["JETSON_SIM_PORT_BASE"] ??= "22700";
      env = await startServiceHosts(1, process.env["JETSON_SIM_PREFIX"] ?? "jf16-models");
      host = env.hosts[0]!;
      await sh(`rm -rf ${ENGINES} ${STORE}; docker rm -f jf16-engine-user >/dev/null 2>&1 || true`);
      // The stand-in L4T runtime base, with the stand-in trtexec at /usr/src/tensorrt/bin (images/base):
      // the service image's TensorRT, pushed where the hosts pull it, 127.0.0.1:5000/l4t-sim.
      const { runtime } = await buildBaseImages();
      image = await env.push(runtime, "l4t-sim", "runtime");
    },
    { timeout: 30 * 60_000 },
  );
  after(() => env?.stop());

  describe("model-artifact.sh", () => {
    let manifest = "";
    it("pushes the model once: the blob only when the registry lacks it, the same manifest each time", async () => {
      const params = {
        ACTION: "push",
        FILE: detectorFile,
        SHA256: detectorSha,
        MODEL: "detector",
        TAG: `detector-${detectorSha.slice(0, 12)}`,
        CONFIG_KEY: "models[0].source",
        ...registryParams("models/detector"),
      };
      manifest = `sha256:${sha256Hex(manifestOf(detectorSha, detector.length, "detector.onnx"))}`;
      const first = await artifact(params);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, `pushed model=detector repository=models/detector bytes=${detector.length} manifest=${manifest}\n`);
      assert.equal(env.registry.blobSize(`sha256:${detectorSha}`), detector.length);
      const again = await artifact(params);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, `pushed model=detector repository=models/detector bytes=0 manifest=${manifest}\n`);
      assert.equal(env.registry.uploadedBlobs().filter((d) => d === `sha256:${detectorSha}`).length, 1);
    });

    it("verifies an artifact holds the model, and names the model, the status and the config key when not", async () => {
      const params = {
        ACTION: "verify",
        MANIFEST_DIGEST: manifest,
        SHA256: detectorSha,
        MODEL: "detector",
        CONFIG_KEY: "models[0].source",
      };
      const ok = await artifact({ ...params, ...registryParams("models/detector") });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, `verified model=detector repository=models/detector manifest=${manifest}\n`);
      const other = "0".repeat(64);
      const wrong = await artifact({ ...params, SHA256: other, ...registryParams("models/detector") });
      assert.equal(wrong.code, 1);
      assert.equal(
        wrong.stderr,
        `model detector: manifest ${manifest} in models/detector (HTTP 200) has no layer sha256:${other}, the model's sha256; expected the artifact of this model (models[0].source)\n`,
      );
      const missing = await artifact({ ...params, ...registryParams("models/elsewhere") });
      assert.equal(missing.code, 1);
      assert.equal(
        missing.stderr,
        `model detector: the registry http://${env.registry.server} answered HTTP 404 to the request for manifest ${manifest} in models/elsewhere (models[0].source)\n`,
      );
    });

    it("refuses a file whose sha256 is not the configured one, pushing nothing", async () => {
      const other = "1".repeat(64);
      const r = await artifact({
        ACTION: "push",
        FILE: detectorFile,
        SHA256: other,
        MODEL: "detector",
        TAG: "t",
        CONFIG_KEY: "models[0].source",
        ...registryParams("models/detector"),
      });
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `model detector: ${detectorFile} has sha256 ${detectorSha}, not the configured ${other}; expected the sha256 of the file (models[0].source)\n`,
      );
    });

    describe("with a registry that asks for credentials", () => {
      let auth: AuthRegistry;
      before(async () => (auth = await startAuthRegistry("ci", `pa"ss\\word-${process.pid}`)));
      after(() => auth?.stop());

      it("sends them only when asked, never as an argument", async () => {
        // A curl that records its arguments, then runs the real one.
        const bin = join(dir, "bin");
        mkdirSync(bin, { recursive: true });
        const argv = join(dir, "curl-argv");
        writeFileSync(join(bin, "curl"), `#!/bin/bash\nprintf '%s\\n' "$*" >>${argv}\nexec /usr/bin/curl "$@"\n`);
        chmodSync(join(bin, "curl"), 0o755);
        const params = {
          ACTION: "push",
          FILE: detectorFile,
          SHA256: detectorSha,
          MODEL: "detector",
          TAG: "detector-auth",
          CONFIG_KEY: "models[0].source",
          REGISTRY_URL: `http://${auth.server}`,
          REPOSITORY: "models/detector",
        };
        const anonymous = await artifact(params);
        assert.equal(anonymous.code, 1);
        assert.equal(
          anonymous.stderr,
          `model detector: the registry http://${auth.server} answered HTTP 401 (the registry asks for credentials and none were given) to the check for blob sha256:${detectorSha} in models/detector (models[0].source)\n`,
        );
        const refused = await artifact({ ...params, REGISTRY_USERNAME: "ci", REGISTRY_PASSWORD: "wrong" });
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /answered HTTP 401 \(the registry refused the credentials\) to the check for blob/);
        const pushed = await artifact(
          { ...params, REGISTRY_USERNAME: auth.username, REGISTRY_PASSWORD: auth.password },
          `${bin}:${process.env["PATH"] ?? ""}`,
        );
        assert.equal(pushed.code, 0, pushed.stderr);
        assert.match(
          pushed.stdout,
          new RegExp(`^pushed model=detector repository=models/detector bytes=${detector.length} manifest=sha256:[0-9a-f]{64}\\n$`),
        );
        const recorded = readFileSync(argv, "utf8");
        // Anonymous first, then every request with the credentials (from a pipe): 8 requests, one 401.
        assert.equal(recorded.trim().split("\n").length, 8);
        assert.ok(!recorded.includes('pa"ss') && !pushed.stderr.includes('pa"ss') && !pushed.stdout.includes('pa"ss'), recorded);
      });
    });
    describe("with a registry that takes bearer tokens", () => {
      let bearer: Awaited<ReturnType<typeof startBearerRegistry>>;
      before(async () => (bearer = await startBearerRegistry(env.registry.server, "ci", "token-pass")));
      after(() => bearer?.stop());

      it("gets a token from the challenge's realm for each scope, with the credentials", async () => {
        const file = join(dir, "bearer.onnx");
        const model = onnxModel({ bytes: 8192, version: "bearer" });
        writeFileSync(file, model);
        const sha = sha256Hex(model);
        const params = {
          ACTION: "push",
          FILE: file,
          SHA256: sha,
          MODEL: "bearer",
          TAG: "bearer-1",
          CONFIG_KEY: "models[1].source",
          REGISTRY_URL: `http://${bearer.server}`,
          REPOSITORY: "models/bearer",
        };
        const refused = await artifact({ ...params, REGISTRY_USERNAME: "ci", REGISTRY_PASSWORD: "wrong" });
        assert.equal(refused.code, 1);
        assert.equal(
          refused.stderr,
          `model bearer: the registry http://${bearer.server} answered HTTP 401 (the token service http://${bearer.server}/token answered HTTP 401) to the check for blob sha256:${sha} in models/bearer (models[1].source)\n`,
        );
        bearer.requests.length = 0;
        const pushed = await artifact({ ...params, REGISTRY_USERNAME: "ci", REGISTRY_PASSWORD: "token-pass" });
        assert.equal(pushed.code, 0, pushed.stderr);
        assert.match(
          pushed.stdout,
          new RegExp(`^pushed model=bearer repository=models/bearer bytes=8192 manifest=sha256:[0-9a-f]{64}\\n$`),
        );
        // A pull token for the check, a push token when the upload asks for more; each used until refused.
        assert.deepEqual(bearer.requests.slice(0, 6), [
          `HEAD /v2/models/bearer/blobs/sha256:${sha}`,
          "GET /token",
          `HEAD /v2/models/bearer/blobs/sha256:${sha}`,
          "POST /v2/models/bearer/blobs/uploads/",
          "GET /token",
          "POST /v2/models/bearer/blobs/uploads/",
        ]);
        assert.equal(bearer.requests.filter((r) => r === "GET /token").length, 2);
        const digest = /manifest=(\S+)/.exec(pushed.stdout)?.[1] ?? "";
        const verified = await artifact({
          ...params,
          ACTION: "verify",
          MANIFEST_DIGEST: digest,
          REGISTRY_USERNAME: "ci",
          REGISTRY_PASSWORD: "token-pass",
        });
        assert.equal(verified.stdout, `verified model=bearer repository=models/bearer manifest=${digest}\n`);
      });
    });
  });

  describe("model-fetch.sh", () => {
    it("fetches the model into the store once, checked; a second run finds it present", async () => {
      const first = await step("model-fetch", "create", fetchParams("detector", detectorSha));
      assert.equal(first.code, 0, first.stderr);
      assert.match(
        first.stdout,
        new RegExp(`^fetched model=detector sha256=${detectorSha} bytes=${detector.length} seconds=\\d+\\.\\d\\d\\n$`),
      );
      assert.equal((await sh(`stat -c '%a %U %s' ${STORE}/sha256/${detectorSha}`)).trim(), `644 root ${detector.length}`);
      assert.equal((await sh(`sha256sum ${STORE}/sha256/${detectorSha} | cut -c1-64`)).trim(), detectorSha);
      const again = await step("model-fetch", "create", fetchParams("detector", detectorSha));
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, `present model=detector sha256=${detectorSha} bytes=0 seconds=0\n`);
    });

    it("replaces a damaged copy", async () => {
      await sh(`printf 'damaged' | dd of=${STORE}/sha256/${detectorSha} bs=1 seek=100 conv=notrunc status=none`);
      const r = await step("model-fetch", "create", fetchParams("detector", detectorSha));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^fetched model=detector sha256=${detectorSha} bytes=${detector.length} seconds=`));
      assert.match(
        r.stderr,
        new RegExp(
          `^host ${host.name}: model detector: the stored file ${STORE}/sha256/${detectorSha} has sha256 [0-9a-f]{64}; removing it`,
        ),
      );
      assert.equal((await sh(`sha256sum ${STORE}/sha256/${detectorSha} | cut -c1-64`)).trim(), detectorSha);
    });

    it("fails naming the registry's answer for content the registry does not have, keeping nothing", async () => {
      const absent = sha256Hex("no such model");
      const r = await step("model-fetch", "create", fetchParams("detector", absent));
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr,
        `host ${host.name}: model detector: the registry http://${HOST_REGISTRY} answered HTTP 404 to the request for blob sha256:${absent} in models/detector; nothing was kept\n`,
      );
      assert.equal((await sh(`ls -A ${STORE}/sha256`)).trim(), detectorSha);
      assert.equal((await sh(`ls -A ${STORE}/tmp | grep -v '\\.lock$' || true`)).trim(), "");
    });

    it("deletes the file with the last step that claimed it", async () => {
      const other = await provide("claimed", onnxModel({ bytes: 8192, version: "claimed" }));
      // A replacement: the new step is created (claims it too) before the old one is deleted.
      const second = await step("model-fetch", "create", fetchParams("claimed", other));
      assert.equal(second.stdout, `present model=claimed sha256=${other} bytes=0 seconds=0\n`);
      const old = await step("model-fetch", "delete", fetchParams("claimed", other));
      assert.equal(old.code, 0, old.stderr);
      assert.equal(old.stdout, `kept model=claimed sha256=${other} claims=1\n`);
      assert.equal((await sh(`test -f ${STORE}/sha256/${other} && echo there`)).trim(), "there");
      const last = await step("model-fetch", "delete", fetchParams("claimed", other));
      assert.equal(last.stdout, `removed model=claimed sha256=${other}\n`);
      assert.equal((await sh(`test -e ${STORE}/sha256/${other} || echo gone`)).trim(), "gone");
      // The detector's file is untouched.
      assert.equal((await sh(`sha256sum ${STORE}/sha256/${detectorSha} | cut -c1-64`)).trim(), detectorSha);
    });
  });

  describe("engine-build.sh", () => {
    const fp16 = ["--fp16", "--skipInference"];
    let firstKey = "";

    it("builds the engine in the service's image, then finds it unchanged", async () => {
      const params = buildParams("detector", detectorSha, fp16);
      firstKey = params.KEY;
      const r = await step("engine-build", "create", params);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^built service=inference model=detector key=${firstKey} seconds=\\d+\\n$`));
      const dirPath = `${ENGINES}/inference/detector/${firstKey}`;
      assert.equal((await sh(`head -n 1 ${dirPath}/model.engine`)).trim(), "JFSTANDIN-TRT-ENGINE/1");
      const header = JSON.parse((await sh(`sed -n 2p ${dirPath}/model.engine`)).trim()) as Record<string, unknown>;
      assert.equal(header["onnxSha256"], detectorSha);
      assert.equal(header["precision"], "fp16");
      const record = JSON.parse(await sh(`cat ${dirPath}/engine.json`)) as Record<string, unknown>;
      const seconds = Number(/seconds=(\d+)/.exec(r.stdout)?.[1]);
      assert.match(String(record["builtAt"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.deepEqual(record, {
        model: "detector",
        sha256: detectorSha,
        key: firstKey,
        image,
        l4tRelease: "36.4.3",
        gpu: "none",
        args: fp16,
        builtAt: record["builtAt"],
        seconds,
      });
      assert.match(
        await lastBuildLog(),
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ host=${host.name} service=inference model=detector key=${firstKey} result=built seconds=${seconds}$`,
        ),
      );
      assert.equal((await sh(`stat -c '%a' ${dirPath} ${dirPath}/model.engine ${dirPath}/engine.json`)).trim(), "755\n644\n644");

      const again = await step("engine-build", "create", params);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, `unchanged service=inference model=detector key=${firstKey}\n`);
      assert.deepEqual(await keyDirs("detector"), [firstKey]);
    });

    it("fails a malformed model with the builder's last lines, leaving the previous engine", async () => {
      const bad = await provide("detector", malformedOnnx(4096));
      const params = buildParams("detector", bad, fp16);
      const r = await step("engine-build", "create", params);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "");
      const [head, ...tail] = r.stderr
        .slice(r.stderr.indexOf(`host ${host.name}: model detector: the engine build failed`))
        .trim()
        .split("\n");
      assert.equal(
        head,
        `host ${host.name}: model detector: the engine build failed (exit 1) in ${image}; the previous engine and service inference are unchanged; the builder's last output:`,
      );
      assert.ok(tail.length > 0 && tail.length <= 20, tail.join("\n"));
      assert.ok(
        tail.some((l) => l.includes("Failed to parse ONNX model from file: /jetson-fleet/model.onnx")),
        tail.join("\n"),
      );
      assert.match(tail.at(-1) ?? "", /^&&&& FAILED TensorRT\.trtexec/);
      assert.deepEqual(await keyDirs("detector"), [firstKey]);
      assert.match(
        await lastBuildLog(),
        new RegExp(` host=${host.name} service=inference model=detector key=${params.KEY} result=failed seconds=\\d+$`),
      );
      assert.equal((await sh(`ls -A ${ENGINES}/inference/detector`)).trim(), firstKey);
    });

    it("stops a build at its timeout, showing progress meanwhile, and leaves no container", async () => {
      const big = await provide("big", onnxModel({ bytes: 16 * MIB, version: "big" }));
      const params = buildParams("big", big, fp16, { TIMEOUT: "12" });
      const r = await step("engine-build", "create", params);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`^host ${host.name}: model big: building the engine \\(key ${params.KEY}\\): 10 s, \\S`, "m"));
      assert.match(
        r.stderr,
        new RegExp(
          `^host ${host.name}: model big: the engine build did not finish within 12 s \\(models\\[\\]\\.engine\\.timeout\\) in ${image.replace(/[.]/g, "\\.")}; the build container was removed; the previous engine and service inference are unchanged; the builder's last output:$`,
          "m",
        ),
      );
      assert.equal((await sh("docker ps -aq --filter name=jetson-fleet-engine-")).trim(), "");
      assert.deepEqual(await keyDirs("big"), []);
      assert.equal((await sh(`ls -A ${ENGINES}/inference/big`)).trim(), "");
      assert.match(await lastBuildLog(), new RegExp(` model=big key=${params.KEY} result=failed seconds=1[2-4]$`));
    });

    it("keeps KEEP engines, the current one among them, and any a container mounts", async () => {
      const int8 = ["--int8", "--skipInference"];
      const fp32 = ["--skipInference"];
      const build = async (args: string[], keep = "2") => {
        const r = await step("engine-build", "create", buildParams("detector", detectorSha, args, { KEEP: keep }));
        assert.equal(r.code, 0, r.stderr);
        return keyOf(detectorSha, args);
      };
      // The first engine in use by a container (stopped: it may start again).
      await sh(
        `docker create --name jf16-engine-user -v ${ENGINES}/inference/detector/${firstKey}/model.engine:/models/model.engine:ro ${image} true >/dev/null`,
      );
      const int8Key = await build(int8);
      assert.deepEqual(await keyDirs("detector"), [firstKey, int8Key].sort());
      const fp32Key = await build(fp32);
      // KEEP=2: fp32 (current) and int8 (newest other); the first stays, mounted.
      assert.deepEqual(await keyDirs("detector"), [firstKey, int8Key, fp32Key].sort());
      await sh("docker rm -f jf16-engine-user >/dev/null");
      // Going back to an engine kept: unchanged, and it counts as the newest now.
      const back = await step("engine-build", "create", buildParams("detector", detectorSha, int8, { KEEP: "1" }));
      assert.equal(back.stdout, `unchanged service=inference model=detector key=${int8Key}\n`);
      assert.deepEqual(await keyDirs("detector"), [int8Key]);
      // The delete prunes only: the KEEP newest stay, its own key or not.
      await build(fp32);
      assert.deepEqual(await keyDirs("detector"), [int8Key, fp32Key].sort());
      const del = await step("engine-build", "delete", buildParams("detector", detectorSha, int8, { KEEP: "1" }));
      assert.equal(del.code, 0, del.stderr);
      assert.equal(del.stdout, "pruned service=inference model=detector keep=1\n");
      assert.deepEqual(await keyDirs("detector"), [fp32Key]);
      const results = (await sh(`cut -d' ' -f2- ${ENGINES}/builds.log | sed 's/ seconds=[0-9]*$//'`)).trim().split("\n");
      assert.deepEqual(
        results.filter((l) => l.includes("model=detector")),
        [firstKey, keyOf(sha256Hex(malformedOnnx(4096)), fp16), int8Key, fp32Key, fp32Key].map(
          (k, i) => `host=${host.name} service=inference model=detector key=${k} result=${i === 1 ? "failed" : "built"}`,
        ),
      );
    });

    it("builds again after a run killed mid-build: the next run removes the orphaned container and its files", async () => {
      const sized = await provide("sized", onnxModel({ bytes: 6 * MIB, version: "sized" }));
      const params = buildParams("sized", sized, fp16);
      const container = `jetson-fleet-engine-${PROJECT}-${params.KEY}`;
      const running = step("engine-build", "create", params);
      const started = async () => (await sh(`docker ps -q --filter name=${container}`)).trim() !== "";
      for (let i = 0; i < 150 && !(await started()); i++) await new Promise((r) => setTimeout(r, 200));
      assert.ok(await started(), "the build started");
      // The script dies at once (no trap runs); its builder's container runs on.
      await sh("kill -KILL $(pgrep -f '^jetson-fleet:engine-build ')");
      assert.notEqual((await running).code, 0);
      assert.ok(await started(), "the orphaned build still runs");
      assert.equal((await sh(`ls -A ${ENGINES}/inference/sized`)).trim(), `.${params.KEY}.tmp`);
      const r = await step("engine-build", "create", params);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^built service=inference model=sized key=${params.KEY} seconds=\\d+\\n$`));
      assert.equal((await sh(`ls -A ${ENGINES}/inference/sized`)).trim(), params.KEY);
      assert.equal((await sh("docker ps -aq --filter name=jetson-fleet-engine-")).trim(), "");
    });

    it("names the builder option when the image has nothing at BUILDER", async () => {
      const params = buildParams("detector", detectorSha, ["--best"], { BUILDER: "/opt/no/trtexec" });
      const r = await step("engine-build", "create", params);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `^host ${host.name}: model detector: the engine build failed \\(exit 127 \\(is /opt/no/trtexec, models\\[\\]\\.engine\\.builder, trtexec's path in the image\\?\\)\\) in `,
          "m",
        ),
      );
      assert.ok(!(await keyDirs("detector")).includes(params.KEY));
    });

    it("refuses a key that is not the key of its inputs, and a model not in the store", async () => {
      const params = buildParams("detector", detectorSha, fp16);
      const wrongKey = await step("engine-build", "create", { ...params, KEY: "0123456789abcdef" });
      assert.equal(wrongKey.code, 1);
      assert.equal(
        wrongKey.stderr,
        `host ${host.name}: model detector: KEY=0123456789abcdef is not the key of these inputs (${params.KEY}); expected the deploy and this script to hash the same text; nothing was changed\n`,
      );
      const absent = sha256Hex("absent");
      const missing = await step("engine-build", "create", buildParams("detector", absent, fp16));
      assert.equal(missing.code, 1);
      assert.equal(
        missing.stderr,
        `host ${host.name}: model detector: the model sha256:${absent} is not in the host's model store (${STORE}/sha256/${absent}); expected the model's fetch step to have put it there; nothing was changed\n`,
      );
      const otherGpu = await step("engine-build", "create", {
        ...params,
        GPU: "nvidia,tegra234",
        KEY: engineKey({ modelSha256: detectorSha, image, l4tRelease: "36.4.3", gpu: "nvidia,tegra234", args: fp16 }),
      });
      assert.equal(otherGpu.code, 1);
      assert.equal(
        otherGpu.stderr,
        `host ${host.name}: model detector: the host has L4T 36.4.3 and GPU none, but the engine key was computed for L4T 36.4.3 and GPU nvidia,tegra234; refresh the host's facts (pulumi refresh) and deploy again; nothing was changed\n`,
      );
    });
  });
});
