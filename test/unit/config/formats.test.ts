import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  addressProblem,
  hostKeyProblem,
  imageReferenceProblem,
  isDigest,
  isPinnedByDigest,
  parseDuration,
  parseImage,
  parseSize,
  unpinnedImageProblem,
} from "../../../components/index.ts";
import { hostKey } from "../../support/fixtures.ts";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

describe("addressProblem", () => {
  const ok = ["192.168.1.20", "10.0.0.1", "::1", "fe80::1", "jetson-01", "jetson-01.lab.example", "localhost"];
  const bad = ["300.1.1.1", "1.2.3", "jetson_01", "-jetson", "a..b", "", "host name"];
  for (const a of ok) it(`accepts ${a}`, () => assert.equal(addressProblem(a), undefined));
  for (const a of bad) it(`rejects ${JSON.stringify(a)}`, () => assert.match(addressProblem(a) ?? "", /is not an IP address or host name/));
});

describe("hostKeyProblem", () => {
  it("accepts a real ed25519 key, with or without comment", () => {
    assert.equal(hostKeyProblem(hostKey.publicKey), undefined);
    assert.equal(hostKeyProblem(`${hostKey.publicKey} root@jetson-01`), undefined);
  });
  it("rejects a key whose data was altered", () => {
    const [type, data] = hostKey.publicKey.split(" ");
    assert.match(hostKeyProblem(`${type} ${data?.slice(0, 20)}`) ?? "", /does not decode/);
  });
  it("rejects a known_hosts line with the host name first", () => {
    assert.match(hostKeyProblem(`jetson-01 ${hostKey.publicKey}`) ?? "", /key type "jetson-01" is not an SSH host key type/);
  });
});

describe("parseImage", () => {
  const rows: [string, ReturnType<typeof parseImage>][] = [
    ["nginx", { domain: "docker.io", repository: "library/nginx" }],
    ["nginx:1.27", { domain: "docker.io", repository: "library/nginx", tag: "1.27" }],
    ["bluenviron/mediamtx:1.9.3", { domain: "docker.io", repository: "bluenviron/mediamtx", tag: "1.9.3" }],
    ["registry.lab:5000/fleet/inference:0.1.0", { domain: "registry.lab:5000", repository: "fleet/inference", tag: "0.1.0" }],
    [`127.0.0.1:5000/inference@${DIGEST}`, { domain: "127.0.0.1:5000", repository: "inference", digest: DIGEST }],
    [
      `nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime@${DIGEST}`,
      { domain: "nvcr.io", repository: "nvidia/l4t-tensorrt", tag: "r10.3.0-runtime", digest: DIGEST },
    ],
    ["UPPER/case", undefined],
    ["repo:", undefined],
    ["repo@sha256:short", undefined],
    // Docker refuses upper-case hex; this project pins sha256 only: neither is a reference here.
    [`repo@${DIGEST.toUpperCase().replace("SHA256", "sha256")}`, undefined],
    [`repo@sha512:${"0123456789abcdef".repeat(8)}`, undefined],
  ];
  for (const [ref, expected] of rows) it(ref, () => assert.deepEqual(parseImage(ref), expected));
  it("explains a malformed reference", () => assert.match(imageReferenceProblem("a b") ?? "", /is not a valid image reference/));
});

describe("unpinnedImageProblem", () => {
  const rows: [string, RegExp | undefined][] = [
    ["nginx:1.27", undefined],
    [`nginx@${DIGEST}`, undefined],
    [`nginx:latest@${DIGEST}`, undefined],
    ["nginx", /has no tag or digest/],
    ["nginx:latest", /uses the tag "latest"/],
  ];
  for (const [ref, expected] of rows) {
    it(ref, () =>
      expected ? assert.match(unpinnedImageProblem(ref) ?? "", expected) : assert.equal(unpinnedImageProblem(ref), undefined),
    );
  }
});

describe("isDigest and isPinnedByDigest", () => {
  const digests: [string, boolean][] = [
    [DIGEST, true],
    [DIGEST.toUpperCase().replace("SHA256", "sha256"), false],
    [DIGEST.slice(0, -1), false],
    [`${DIGEST}0`, false],
    [DIGEST.slice("sha256:".length), false],
  ];
  for (const [d, ok] of digests) it(`isDigest(${d.slice(0, 14)}…${d.length}) is ${ok}`, () => assert.equal(isDigest(d), ok));
  const refs: [string, boolean][] = [
    [`nginx@${DIGEST}`, true],
    [`nginx:1.27@${DIGEST}`, true],
    ["nginx:1.27", false],
    ["nginx", false],
    ["not a reference", false],
  ];
  for (const [ref, ok] of refs) it(`isPinnedByDigest(${ref.slice(0, 24)}) is ${ok}`, () => assert.equal(isPinnedByDigest(ref), ok));
});

describe("parseSize and parseDuration", () => {
  const sizes: [string, number | undefined][] = [
    ["2g", 2 * 1024 ** 3],
    ["512M", 512 * 1024 ** 2],
    ["1.5k", 1536],
    ["0.5b", 1],
    ["1024", 1024],
    ["2 g", undefined],
    ["g", undefined],
    ["-1m", undefined],
  ];
  for (const [size, bytes] of sizes) it(`parseSize(${JSON.stringify(size)}) = ${bytes}`, () => assert.equal(parseSize(size), bytes));
  const durations: [string, number | undefined][] = [
    ["10s", 10],
    ["1h1m1s", 3661],
    ["1.5m", 90],
    ["100ms", 0.1],
    ["10", undefined],
    ["10S", undefined],
    ["s", undefined],
  ];
  for (const [d, seconds] of durations)
    it(`parseDuration(${JSON.stringify(d)}) = ${seconds}`, () => assert.equal(parseDuration(d), seconds));
});
