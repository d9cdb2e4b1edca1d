// The stack files we ship are valid: dev as it stands, prod once the team has stored its secrets.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { ServiceSpec, StackConfigError, parseStackConfig, renderComposeFile, securePathsInStackFile } from "../../../components/index.ts";
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
        "Pulumi.prod.yaml: jetson-fleet:hosts[0].privateKey: is missing; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[0].privateKey'",
        "Pulumi.prod.yaml: jetson-fleet:hosts[1].hostKey: is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>",
        "Pulumi.prod.yaml: jetson-fleet:hosts[1].privateKey: is missing; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[1].privateKey'",
        "Pulumi.prod.yaml: jetson-fleet:hosts[2].hostKey: is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>",
        "Pulumi.prod.yaml: jetson-fleet:hosts[2].privateKey: is missing; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[2].privateKey'",
      ]);
      return true;
    });
  });

  it("both ship the default stack: inference on the GPU, MediaMTX, a web UI", () => {
    const dev = load("dev")();
    // prod is complete but for its secrets; its services parse on their own.
    const text = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
    const prodServices = (parse(text) as { config: Record<string, unknown> }).config[`${PROJECT}:services`];
    const prod = (prodServices as unknown[]).map((svc) => ServiceSpec.parse(svc));
    for (const services of [dev.services, prod]) {
      assert.deepEqual(
        services.map((s) => s.name),
        ["inference", "mediamtx", "web-ui"],
      );
      const [inference, mediamtx, ui] = services;
      assert.equal(inference?.runtime, "nvidia");
      assert.equal(inference?.network, "host");
      assert.equal(inference?.shmSize, "2g");
      assert.equal(inference?.resources.gpus, "all");
      assert.deepEqual(inference?.environment, { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video" });
      assert.deepEqual(
        inference?.volumes.map((v) => [v.target, v.readOnly]),
        [
          ["/videos", true],
          ["/output", false],
          ["/logs", false],
        ],
      );
      // The model's engine, built on each host, mounted read-only where the image looks for it (ENGINE_PATH).
      assert.deepEqual(inference?.models, [{ name: "detector", path: "/models/model.engine" }]);
      assert.deepEqual(inference?.restart, "unless-stopped");
      assert.deepEqual(inference?.securityOpt, ["no-new-privileges:true"]);
      assert.deepEqual(inference?.logging, { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } });
      assert.deepEqual(
        mediamtx?.ports.map((p) => `${p.target}/${p.protocol}`),
        ["8554/tcp", "8889/tcp", "8189/udp"],
      );
      assert.equal(ui?.readOnlyRootFilesystem, true);
      assert.deepEqual(ui?.dependsOn, { inference: "healthy" });
    }
    // The stack renders as a compose file once each image is pinned.
    const pinned = Object.fromEntries(dev.services.map((s, i) => [s.name, `registry.lab:5000/${s.name}@sha256:${String(i).repeat(64)}`]));
    assert.match(
      renderComposeFile(dev.services, pinned),
      /^services:\n  inference:\n    image: registry\.lab:5000\/inference@sha256:0{64}\n/,
    );
  });
});
