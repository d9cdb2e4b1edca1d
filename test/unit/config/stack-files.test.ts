// The stack files we ship are valid: dev as it stands, prod once the team has stored its secrets.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { StackConfigError, parseStackConfig, securePathsInStackFile } from "../../../components/index.ts";
import { PROJECT } from "../../support/fixtures.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");

function load(stack: string) {
  const text = readFileSync(join(ROOT, `Pulumi.${stack}.yaml`), "utf8");
  const config = (parse(text) as { config: Record<string, unknown> }).config;
  const values = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
  return () => parseStackConfig({ project: PROJECT, stack, values, secretPaths: securePathsInStackFile(text, PROJECT) });
}

describe("shipped stack files", () => {
  it("Pulumi.dev.yaml is valid", () => {
    const cfg = load("dev")();
    assert.equal(cfg.production, false);
    assert.equal(cfg.deploy.target, "compose");
  });

  it("Pulumi.prod.yaml lacks only the secrets a team stores with pulumi config set --secret", () => {
    assert.throws(load("prod"), (err: unknown) => {
      assert.ok(err instanceof StackConfigError);
      assert.deepEqual(err.lines, [
        "Pulumi.prod.yaml: jetson-fleet:hosts[0].hostKey: is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>",
        "Pulumi.prod.yaml: jetson-fleet:hosts[0].privateKey: is missing; expected text",
        "Pulumi.prod.yaml: jetson-fleet:hosts[1].hostKey: is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>",
        "Pulumi.prod.yaml: jetson-fleet:hosts[1].privateKey: is missing; expected text",
        "Pulumi.prod.yaml: jetson-fleet:hosts[2].hostKey: is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>",
        "Pulumi.prod.yaml: jetson-fleet:hosts[2].privateKey: is missing; expected text",
      ]);
      return true;
    });
  });
});
