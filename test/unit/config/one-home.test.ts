// One home per rule: image digests, sizes, durations and a service's environment are each judged
// or rendered in one place (config/formats.ts, services/spec.ts) that every target calls. Each
// table runs every caller over the same inputs, so a caller that grows its own copy and drifts
// fails here; a source scan refuses a second copy of the patterns themselves.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import {
  ServiceSpec,
  composeService,
  containerArgs,
  containerEnvironment,
  digestPinned,
  digestProblem,
  digestRef,
  durationSeconds,
  goDuration,
  isDigest,
  isPinnedByDigest,
  parseDuration,
  parseImage,
  parseSize,
  probeSeconds,
  quantity,
  serviceEnvironment,
  sizeBytes,
  sizeMegabytes,
  undigestedImageProblem,
  unpinnedImageProblem,
  withDigest,
} from "../../../components/index.ts";
import { pinnedImageProblem } from "../../../policy/rules.ts";

const REPO = join(import.meta.dirname, "..", "..", "..");
const HEX = "0123456789abcdef".repeat(4);

describe("one home: image digests (config/formats.ts)", () => {
  // [reference, pinned by a sha256 digest, a valid reference at all]
  const refs: [string, boolean, boolean][] = [
    [`registry.lab:5000/fleet/inference@sha256:${HEX}`, true, true],
    [`bluenviron/mediamtx:1.9.3@sha256:${HEX}`, true, true],
    [`registry.lab:5000/fleet/inference@sha256:${HEX.toUpperCase()}`, false, false],
    [`registry.lab:5000/fleet/inference@sha512:${HEX}${HEX}`, false, false],
    [`registry.lab:5000/fleet/inference@sha256:${HEX.slice(2)}`, false, false],
    ["bluenviron/mediamtx:1.9.3", false, true],
    ["bluenviron/mediamtx", false, true],
  ];
  for (const [ref, pinned, valid] of refs) {
    it(`every judge agrees on ${ref.replace(HEX.toUpperCase(), "<HEX>").replace(HEX, "<hex>")}: ${pinned ? "pinned" : valid ? "not pinned" : "invalid"}`, () => {
      assert.equal(parseImage(ref) !== undefined, valid, "parseImage");
      assert.equal(isPinnedByDigest(ref), pinned, "isPinnedByDigest");
      assert.equal(digestProblem(ref) === undefined, pinned, "kubernetes digestProblem");
      assert.equal(pinnedImageProblem(ref, false) === undefined, pinned, "policy images-pinned without version tags");
      let spec: boolean;
      try {
        spec = digestPinned(ref) !== undefined;
      } catch {
        spec = false;
      }
      assert.equal(spec, pinned, "services digestPinned");
      if (valid) {
        assert.equal(undigestedImageProblem(ref) === undefined, pinned, "config undigestedImageProblem");
        if (pinned) assert.equal(unpinnedImageProblem(ref), undefined, "config unpinnedImageProblem");
      }
    });
  }

  const digests: [string, boolean][] = [
    [`sha256:${HEX}`, true],
    [`sha256:${HEX.toUpperCase()}`, false],
    [`sha256:${HEX.slice(1)}`, false],
    [`sha512:${HEX}${HEX}`, false],
    ["latest", false],
  ];
  for (const [digest, ok] of digests) {
    it(`every digest check agrees on ${digest.slice(0, 16)}…: ${ok ? "a digest" : "not one"}`, () => {
      assert.equal(isDigest(digest), ok, "isDigest");
      assert.equal(
        (() => {
          try {
            return withDigest("registry.lab:5000/web:2", digest) === `registry.lab:5000/web@${digest}`;
          } catch {
            return false;
          }
        })(),
        ok,
        "services withDigest",
      );
      assert.equal(
        (() => {
          try {
            return digestRef("registry.lab:5000/web", digest) === `registry.lab:5000/web@${digest}`;
          } catch {
            return false;
          }
        })(),
        ok,
        "GpuImage digestRef",
      );
    });
  }
});

/** Bytes of a Kubernetes quantity as `quantity` writes it. */
function quantityBytes(q: string): number {
  const m = /^([0-9]+)(Ki|Mi|Gi)?$/.exec(q);
  assert.ok(m, `"${q}" is not a binary quantity`);
  return Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as "Ki" | "Mi" | "Gi"] ?? 1);
}

describe("one home: sizes and durations (config/formats.ts)", () => {
  const sizes: [string, number | undefined][] = [
    ["2g", 2 * 1024 ** 3],
    ["2G", 2 * 1024 ** 3],
    ["512m", 512 * 1024 ** 2],
    ["1.5g", 1.5 * 1024 ** 3],
    ["64k", 65536],
    ["10b", 10],
    ["1048576", 1048576],
    ["2 GB", undefined],
    ["2gb", undefined],
    ["", undefined],
  ];
  for (const [size, bytes] of sizes) {
    it(`every reader of ${JSON.stringify(size)} agrees: ${bytes ?? "not a size"}`, () => {
      assert.equal(parseSize(size), bytes, "parseSize");
      if (bytes === undefined) {
        assert.throws(() => sizeBytes(size), "services sizeBytes");
        assert.throws(() => quantity(size), "kubernetes quantity");
        return;
      }
      assert.equal(sizeBytes(size), bytes, "services sizeBytes");
      assert.equal(sizeMegabytes(size), Math.ceil(bytes / 1024 ** 2), "containers sizeMegabytes");
      assert.equal(quantityBytes(quantity(size)), bytes, "kubernetes quantity");
    });
  }

  const durations: [string, number | undefined][] = [
    ["30s", 30],
    ["1m30s", 90],
    ["500ms", 0.5],
    ["1.5s", 1.5],
    ["2h5s", 7205],
    ["250us", 0.00025],
    ["30", undefined],
    ["1d", undefined],
  ];
  for (const [duration, seconds] of durations) {
    it(`every reader of ${JSON.stringify(duration)} agrees: ${seconds ?? "not a duration"}`, () => {
      assert.equal(parseDuration(duration), seconds, "parseDuration");
      if (seconds === undefined) {
        assert.throws(() => durationSeconds(duration), "services durationSeconds");
        assert.throws(() => probeSeconds(duration), "kubernetes probeSeconds");
        assert.throws(() => goDuration(duration), "containers goDuration");
        return;
      }
      assert.equal(durationSeconds(duration), seconds, "services durationSeconds");
      assert.equal(probeSeconds(duration), Math.max(1, Math.ceil(seconds)), "kubernetes probeSeconds");
    });
  }
});

describe("one home: a service's environment (services/spec.ts serviceEnvironment)", () => {
  const IMAGE = `registry.lab:5000/fleet/web@sha256:${HEX}`;
  const rows: [Record<string, string | number | boolean>, string[]][] = [
    [{}, []],
    [{ PORT: 8080, DEBUG: false, MODE: "live" }, []],
    [{ b: "2", A: "1", A1: "x", A_B: "y" }, ["A1"]],
    [{ API_TOKEN: "t0ken", NVIDIA_VISIBLE_DEVICES: "all" }, ["API_TOKEN", "UNSET"]],
  ];
  for (const [environment, secretKeys] of rows) {
    it(`compose, containers and Kubernetes write ${JSON.stringify(environment)} (secret: ${secretKeys.join(",") || "none"}) alike`, () => {
      const spec = ServiceSpec.parse({ name: "web", image: IMAGE, environment });
      const env = serviceEnvironment(spec, secretKeys);
      assert.deepEqual(
        env.map((e) => e.name),
        Object.keys(environment).sort(),
        "sorted by name",
      );
      for (const e of env) assert.equal(e.value, String(environment[e.name]), e.name);
      const pairs = env.map((e) => [e.name, e.value]);
      assert.deepEqual(
        Object.entries((composeService(spec, IMAGE)["environment"] as Record<string, string> | undefined) ?? {}),
        pairs,
        "compose",
      );
      const envs = containerArgs(spec, { image: IMAGE, secretEnvironment: secretKeys }).envs;
      const plainEnvs = Array.isArray(envs) ? envs : undefined;
      if (env.some((e) => e.secret)) assert.equal(plainEnvs, undefined, "containers: a secret value makes envs a secret");
      else assert.deepEqual(plainEnvs, pairs.map(([k, v]) => `${k}=${v}`).sort(), "containers");
      assert.deepEqual(
        containerEnvironment(spec, secretKeys),
        env.map((e) =>
          e.secret
            ? { name: e.name, valueFrom: { secretKeyRef: { name: "web-environment", key: e.name } } }
            : { name: e.name, value: e.value },
        ),
        "kubernetes",
      );
    });
  }
});

/** Every TypeScript source under `dir`, without dependencies. */
function sources(dir: string): string[] {
  return (readdirSync(join(REPO, dir), { recursive: true }) as string[])
    .filter((f) => f.endsWith(".ts") && !f.split("/").includes("node_modules"))
    .map((f) => join(dir, f));
}

describe("one home: no second copy of the patterns", () => {
  // A digest, size or duration pattern anywhere but config/formats.ts is a second judge.
  const PATTERNS: [string, RegExp][] = [
    ["a sha256 digest pattern", /sha256:\[|\[(a-f0-9|0-9a-f|0-9a-fA-F|a-fA-F0-9)\]\{(64|32,)\}|\[\[:xdigit:\]\]/],
    ["a Docker size pattern", /\[bkmg\]/i],
    ["a Docker duration pattern", /ns\|us\|ms/],
  ];
  const HOME = join("components", "config", "formats.ts");
  it("only config/formats.ts declares them, across components/ and policy/", () => {
    const found: string[] = [];
    for (const file of [...sources("components"), ...sources("policy")]) {
      if (file === HOME) continue;
      readFileSync(join(REPO, file), "utf8")
        .split("\n")
        .forEach((line, i) => {
          for (const [what, re] of PATTERNS) if (re.test(line)) found.push(`${relative(REPO, join(REPO, file))}:${i + 1}: ${what}`);
        });
    }
    assert.deepEqual(found, []);
  });
  it("the home itself holds each of them (the scan looks for the right thing)", () => {
    const text = readFileSync(join(REPO, HOME), "utf8");
    for (const [what, re] of PATTERNS) assert.match(text, re, what);
  });
});
