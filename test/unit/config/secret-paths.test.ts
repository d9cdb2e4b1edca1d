// Which values a stack stores encrypted: found in its file wherever the project keeps it, and never
// fewer than the engine says.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { stackFilePath, stackSecretPaths } from "../../../components/index.ts";

describe("stackSecretPaths", () => {
  const table: [string, string[], string[], string[]][] = [
    ["the file alone", ["hosts[0].privateKey", "registry.password"], [], ["hosts[0].privateKey", "registry.password"]],
    [
      "the engine agrees with the file",
      ["hosts[0].privateKey", "registry.password"],
      ["hosts", "registry"],
      ["hosts[0].privateKey", "registry.password"],
    ],
    ["no file: each key the engine names is secret as a whole", [], ["hosts", "services"], ["hosts", "services"]],
    [
      "a key the file shows nothing under (config from elsewhere)",
      ["hosts[0].privateKey"],
      ["hosts", "services"],
      ["hosts[0].privateKey", "services"],
    ],
    ["a key that only shares a prefix is not covered", ["hostsExtra.key"], ["hosts"], ["hostsExtra.key", "hosts"]],
  ];
  for (const [what, fromFile, engine, expected] of table) {
    it(what, () => assert.deepEqual([...stackSecretPaths(fromFile, engine)], expected));
  }
});

describe("stackFilePath", () => {
  it("is Pulumi.<stack>.yaml in the project directory, or in its stackConfigDir", () => {
    const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-project-"));
    assert.equal(stackFilePath(dir, "dev"), join(dir, "Pulumi.dev.yaml"));
    writeFileSync(join(dir, "Pulumi.yaml"), "name: fleet\nruntime: nodejs\n");
    assert.equal(stackFilePath(dir, "dev"), join(dir, "Pulumi.dev.yaml"));
    mkdirSync(join(dir, "stacks"));
    writeFileSync(join(dir, "Pulumi.yaml"), "name: fleet\nruntime: nodejs\nstackConfigDir: stacks\n");
    assert.equal(stackFilePath(dir, "prod"), join(dir, "stacks", "Pulumi.prod.yaml"));
  });
});
