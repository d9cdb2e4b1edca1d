import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addressProblem, hostKeyProblem, imageReferenceProblem, parseImage, unpinnedImageProblem } from "../../../components/index.ts";
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
