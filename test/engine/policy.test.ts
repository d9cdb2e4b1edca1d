// The policy pack (policy/) under the real engine: `pulumi preview --policy-pack policy
// --policy-pack-config policy/config.<stack>.json` of a program that passes every rule, and of
// the same program with one rule broken per case. Violations are read from the engine's policy
// events: exact policy, enforcement and message. Mandatory violations fail the preview; advisory
// ones only warn.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { EngineEvent } from "@pulumi/pulumi/automation/index.js";
import { RULES } from "../../policy/rules.ts";
import { REPO, engineStack, type EngineStack } from "../support/engine.ts";
import { clientKey, hostKey } from "../support/fixtures.ts";

const PACK = join(REPO, "policy");
const PLAIN_PASSWORD = "plain-registry-pass-3e9b1d";
const EXPECTED_DIGEST = "expected repository@sha256:<digest>, or an exact version tag where a digest is impossible";

interface Violation {
  readonly policy: string;
  readonly level: string;
  readonly resource: string;
  readonly message: string;
}

interface PreviewResult {
  readonly failed: boolean;
  readonly violations: Violation[];
}

/** The rule each case breaks and the exact violation it must produce. */
const CASES: Record<string, Omit<Violation, "level">[]> = {
  "images-pinned": [
    {
      policy: "images-pinned",
      resource: "orin-01-mediamtx",
      message: `service "mediamtx" on host "orin-01": image "bluenviron/mediamtx:latest" uses the moving tag "latest"; ${EXPECTED_DIGEST}`,
    },
  ],
  "gpu-runtime-nvidia": [
    {
      policy: "gpu-runtime-nvidia",
      resource: "orin-01-inference",
      message: 'service "inference" on host "orin-01" uses a GPU but runs with runtime "runc"; expected runtime "nvidia"',
    },
  ],
  "model-mounts-read-only": [
    {
      policy: "model-mounts-read-only",
      resource: "orin-01-inference",
      message:
        'service "inference" on host "orin-01" mounts /opt/fleet/models at /models read-write; expected readOnly: true for model and video mounts',
    },
  ],
  "healthcheck-required": [
    {
      policy: "healthcheck-required",
      resource: "orin-01-mediamtx",
      message:
        'service "mediamtx" on host "orin-01" has no healthcheck; expected healthcheck.test, e.g. ["CMD", "curl", "-f", "http://localhost:8080/health"]',
    },
  ],
  "log-rotation-required": [
    {
      policy: "log-rotation-required",
      resource: "orin-01-mediamtx",
      message:
        'service "mediamtx" on host "orin-01" logs with json-file without "max-file"; expected rotation, e.g. "max-size": "10m", "max-file": "3"',
    },
  ],
  "memory-limit-required": [
    {
      policy: "memory-limit-required",
      resource: "orin-01-mediamtx",
      message: 'service "mediamtx" on host "orin-01" has no memory limit; expected resources.memory, e.g. "4g"',
    },
  ],
  "no-privileged": [
    {
      policy: "no-privileged",
      resource: "orin-01-inference",
      message:
        'service "inference" on host "orin-01" adds capability SYS_ADMIN; expected no privileged mode; pass devices and specific capabilities instead',
    },
  ],
  "no-host-pid": [
    {
      policy: "no-host-pid",
      resource: "orin-01-inference",
      message: `service "inference" on host "orin-01" shares the host's PID namespace (pid: host); expected its own`,
    },
  ],
  "host-keys-pinned": [
    {
      policy: "host-keys-pinned",
      resource: "orin-01",
      message:
        'host "orin-01" does not pin its SSH host key in production stack "prod"; expected hosts[].hostKey set to its public key (ssh-keyscan -t ed25519 ADDRESS)',
    },
  ],
  "registry-credentials-secret": [
    {
      policy: "registry-credentials-secret",
      resource: "inference",
      message:
        'GpuImage "inference" gets the password of registry registry.lab:5000 in plain text; expected a Pulumi secret (pulumi config set --secret, config.requireSecret)',
    },
  ],
  kubernetes: [
    {
      policy: "images-pinned",
      resource: "inference",
      message: `container "inference" of DaemonSet "inference": image "registry.lab:5000/fleet/inference:latest" uses the moving tag "latest"; ${EXPECTED_DIGEST}`,
    },
    {
      policy: "gpu-runtime-nvidia",
      resource: "inference",
      message: 'DaemonSet "inference" requests nvidia.com/gpu but has runtimeClassName "runc"; expected "nvidia"',
    },
    {
      policy: "model-mounts-read-only",
      resource: "inference",
      message:
        'container "inference" of DaemonSet "inference" mounts /opt/fleet/models at /models read-write; expected readOnly: true for model and video mounts',
    },
    {
      policy: "no-privileged",
      resource: "inference",
      message:
        'container "inference" of DaemonSet "inference" is privileged; expected no privileged mode; pass devices and specific capabilities instead',
    },
    {
      policy: "no-host-pid",
      resource: "inference",
      message: `DaemonSet "inference" shares the host's PID namespace (hostPID: true); expected its own`,
    },
  ],
};

const byPolicy = (a: { policy: string; message: string }, b: { policy: string; message: string }) =>
  a.policy.localeCompare(b.policy) || a.message.localeCompare(b.message);

describe("policy pack under the real engine", () => {
  let renderDir: string;
  const stacks: EngineStack[] = [];

  /** A stack of the policy program; `case` picks the rule it breaks. */
  async function policyStack(stack: string, production: boolean): Promise<EngineStack> {
    const env = await engineStack({
      program: "test/engine/programs/policy",
      stack,
      config: {
        case: "pass",
        production,
        hostKey: hostKey.publicKey,
        renderDir,
        context: join(REPO, "images", "inference"),
        registryPasswordPlain: PLAIN_PASSWORD,
      },
      secrets: { privateKey: clientKey.privateKey, registryPassword: "secret-registry-pass-8c2f4a" },
    });
    stacks.push(env);
    return env;
  }

  /** `pulumi preview` of `testCase` with the pack and a config file; the policy events it produced. */
  async function preview(env: EngineStack, testCase: string, configFile: string): Promise<PreviewResult> {
    await env.stack.setConfig("policy-cases:case", { value: testCase });
    const violations: Violation[] = [];
    const onEvent = (event: EngineEvent) => {
      const p = event.policyEvent;
      if (!p) return;
      // A violation's message is the policy's description, a newline, then the violation.
      const description = RULES.find((r) => r.name === p.policyName)?.description;
      const message = (
        description && p.message.startsWith(`${description}\n`) ? p.message.slice(description.length + 1) : p.message
      ).trimEnd();
      violations.push({ policy: p.policyName, level: p.enforcementLevel, resource: p.resourceUrn?.split("::").pop() ?? "", message });
    };
    let failed = false;
    try {
      await env.stack.preview({ policyPacks: [PACK], policyPackConfigs: [join(PACK, configFile)], color: "never", onEvent });
    } catch (err) {
      failed = true;
      // A failed preview must fail for the pack's reasons, not for a broken program.
      assert.match(String(err), /preview failed|policy violation/i, String(err));
    }
    return { failed, violations: violations.sort(byPolicy) };
  }

  before(() => {
    renderDir = mkdtempSync(join(tmpdir(), "jetson-fleet-policy-render-"));
  });

  after(async () => {
    for (const env of stacks) await env.dispose();
    rmSync(renderDir, { recursive: true, force: true });
  });

  describe("prod stack, config.prod.json (every rule mandatory)", () => {
    let env: EngineStack;
    before(async () => {
      env = await policyStack("prod", true);
    });

    it("passes the passing program: no violations, preview succeeds", async () => {
      assert.deepEqual(await preview(env, "pass", "config.prod.json"), { failed: false, violations: [] });
    });

    for (const [testCase, expected] of Object.entries(CASES)) {
      it(`fails the preview with the exact violation: ${testCase}`, async () => {
        const result = await preview(env, testCase, "config.prod.json");
        assert.deepEqual(result, {
          failed: true,
          violations: expected.map((v) => ({ ...v, level: "mandatory" })).sort(byPolicy),
        });
      });
    }

    it("cannot check an image built in the same update during preview: says so (advisory), the preview succeeds", async () => {
      assert.deepEqual(await preview(env, "built-image", "config.prod.json"), {
        failed: false,
        violations: [
          {
            policy: "images-pinned",
            level: "advisory",
            resource: "orin-01-inference",
            message:
              "can't run policy 'images-pinned' from policy pack 'jetson-fleet@v0.1.0' during preview: string value at .service.image can't be known during preview",
          },
        ],
      });
    });
  });

  describe("dev stack, config.dev.json (hygiene rules advisory)", () => {
    let env: EngineStack;
    before(async () => {
      env = await policyStack("dev", false);
    });

    it("warns on an advisory rule and the preview succeeds", async () => {
      const result = await preview(env, "memory-limit-required", "config.dev.json");
      assert.deepEqual(result, { failed: false, violations: CASES["memory-limit-required"]!.map((v) => ({ ...v, level: "advisory" })) });
    });

    it("still fails on a mandatory rule", async () => {
      const result = await preview(env, "no-privileged", "config.dev.json");
      assert.deepEqual(result, { failed: true, violations: CASES["no-privileged"]!.map((v) => ({ ...v, level: "mandatory" })) });
    });

    it("does not apply the production-only host-key rule to a non-production stack", async () => {
      assert.deepEqual(await preview(env, "host-keys-pinned", "config.dev.json"), { failed: false, violations: [] });
    });
  });
});
