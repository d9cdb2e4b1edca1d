// The GitHub workflows (.github/workflows/): actionlint (with shellcheck on every run: block) and
// the project's own rules pass on them, they do what issue 8 asks (checks then previews on pull
// requests, dev then an approved prod on main), prod's secrets reach only approved runs of this
// repository's own branches (issue 14), and both checkers reject deliberately broken copies with
// exactly the expected diagnostics.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parse } from "yaml";
import { run, scratchDir } from "../support/services.ts";
import {
  actionlint,
  PROJECT_DIR,
  PROTECTED_ENVIRONMENTS,
  readWorkflow,
  SAME_REPOSITORY,
  workflowProblems,
  WORKFLOWS_DIR,
} from "../support/workflows.ts";
import type { ActionlintError } from "../support/workflows.ts";

interface Step {
  readonly id?: string;
  readonly name?: string;
  readonly if?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
  readonly env?: Record<string, string>;
}
interface Job {
  readonly needs?: string | string[];
  readonly if?: string;
  readonly environment?: string;
  readonly permissions?: Record<string, string>;
  readonly concurrency?: { readonly group: string; readonly "cancel-in-progress"?: boolean };
  readonly strategy?: { readonly matrix?: Record<string, unknown> };
  readonly env?: Record<string, string>;
  readonly steps: Step[];
}
interface Workflow {
  readonly on: Record<string, unknown>;
  readonly permissions: Record<string, string>;
  readonly concurrency?: { readonly group: string; readonly "cancel-in-progress"?: boolean };
  readonly jobs: Record<string, Job>;
}

const WORKFLOWS = ["deploy.yml", "pull-request.yml"];
const PR = parse(readWorkflow("pull-request.yml")) as Workflow;
const DEPLOY = parse(readWorkflow("deploy.yml")) as Workflow;

/** The CLI version tools/pulumi/go.mod pins: CI installs the same one. */
const PULUMI_VERSION = /github\.com\/pulumi\/pulumi\/pkg\/v3 v(\d+\.\d+\.\d+)/.exec(
  readFileSync(join(PROJECT_DIR, "tools", "pulumi", "go.mod"), "utf8"),
)?.[1];

/** A script's commands, one per entry: continuation lines joined, blank lines dropped. */
function commands(script: string): string[] {
  return script
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

/** The job `name` of `workflow`, which must exist. */
function job(workflow: Workflow, name: string): Job {
  const found = workflow.jobs[name];
  assert.ok(found, `no job ${name}`);
  return found;
}

/** The variables a `sudo --preserve-env=A,B ...` command passes on. */
function sudoPreserves(command: string): string[] {
  return /^sudo --preserve-env=([\w,]+) /.exec(command)?.[1]?.split(",") ?? [];
}

/** The step of `job` that uses the action `name` (OWNER/REPO), which must exist. */
function action(of: Job, name: string): Step {
  const step = of.steps.find((s) => s.uses?.startsWith(`${name}@`));
  assert.ok(step, `no step uses ${name}`);
  return step;
}

/** Where a step runs a command starting with `prefix` (its index in the job), -1 when none does. */
function stepRunning(of: Job, prefix: string): number {
  return of.steps.findIndex((s) => s.run !== undefined && commands(s.run).some((c) => c.startsWith(prefix)));
}

/** The secrets (`secrets.NAME`) a job, a step or any part of one names, sorted, each once. */
function secretsNamed(part: unknown): string[] {
  return [...new Set([...JSON.stringify(part).matchAll(/\bsecrets\.(\w+)/g)].map((m) => `secrets.${m[1]}`))].sort();
}

/** The secrets prod's jobs need: its passphrase (it decrypts the hosts' keys and sudo password) and the Cloud token. */
const PROD_SECRETS = {
  PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
  PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
};

/** The 1-based line of the first occurrence of `needle` in `text`, which must contain it. */
function lineOf(text: string, needle: string): number {
  const index = text.indexOf(needle);
  assert.notEqual(index, -1, `"${needle}" not found`);
  return text.slice(0, index).split("\n").length;
}

/** The 1-based column of the first occurrence of `needle` in `text`, which must contain it. */
function columnOf(text: string, needle: string): number {
  const index = text.indexOf(needle);
  assert.notEqual(index, -1, `"${needle}" not found`);
  return index - text.lastIndexOf("\n", index - 1);
}

/** `text` with the first occurrence of `from` replaced; the test fails if it is not there. */
function replaceOnce(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `"${from}" not found: the mutation would change nothing`);
  return text.replace(from, () => to);
}

describe("GitHub workflows", { timeout: 5 * 60_000 }, () => {
  let binary: string;

  before(async () => {
    binary = (await run(join(PROJECT_DIR, "tools", "actionlint.sh"), [], { timeout: 10 * 60_000 })).stdout.trim();
    // actionlint skips run: blocks silently without shellcheck; these tests must not.
    await run("shellcheck", ["--version"]);
  });

  it("actionlint (with shellcheck on run: blocks) finds nothing in our workflows", async () => {
    assert.deepEqual(await actionlint(binary, WORKFLOWS_DIR, WORKFLOWS), []);
  });

  it("our workflows keep the project's rules: actions pinned by commit, read-only defaults, secrets only via env", () => {
    for (const file of WORKFLOWS) assert.deepEqual(workflowProblems(file, readWorkflow(file)), [], file);
    assert.deepEqual(PR.permissions, { contents: "read" });
    assert.deepEqual(DEPLOY.permissions, { contents: "read" });
  });

  describe("pull requests", () => {
    const checks = job(PR, "checks");

    it("run install, typecheck, lint and unit tests, in that order", () => {
      assert.deepEqual(Object.keys(PR.on), ["pull_request"]);
      const order = ["tools/npm-install.sh", "node_modules/.bin/tsc --noEmit", "node_modules/.bin/eslint .", "node --test"].map((c) =>
        stepRunning(checks, c),
      );
      assert.ok(
        order.every((index, i) => index >= 0 && (i === 0 || index > (order[i - 1] ?? -1))),
        `steps out of order or missing: ${order.join(", ")}`,
      );
      assert.match(checks.steps.at(-1)?.run ?? "", /^node --test .*'test\/unit\/\*\*\/\*\.test\.ts'/);
    });

    it("lint exactly as the lint tier of tools/test.sh does (minus tools/machine.sh, which needs root)", () => {
      const testSh = readFileSync(join(PROJECT_DIR, "tools", "test.sh"), "utf8");
      const tier = /^( *)lint\)\n([\s\S]*?)^\1 {2};;/m.exec(testSh)?.[2];
      assert.ok(tier, "tools/test.sh has no lint) case");
      const expected = commands(tier).filter((c) => c !== 'step "lint"' && c !== "tools/machine.sh");
      const lint = checks.steps.find((s) => s.name === "lint");
      assert.ok(lint?.run, "the checks job has no lint step");
      assert.deepEqual(commands(lint.run), expected);
    });

    it("preview dev with tools/dev.sh as root, building images, and post its diff to the pull request", () => {
      const dev = job(PR, "preview-dev");
      assert.equal(dev.needs, "checks");
      assert.deepEqual(dev.permissions, { contents: "read", "pull-requests": "write" });
      assert.equal(dev.env?.JETSON_FLEET_BUILD_ON_PREVIEW, "true");
      const preview = dev.steps[stepRunning(dev, "sudo ")];
      assert.ok(preview?.run, "no step runs tools/dev.sh under sudo");
      const [command] = commands(preview.run);
      assert.match(command ?? "", / tools\/dev\.sh preview --diff --color never 2>&1 \| tee "\$RUNNER_TEMP\/preview\.txt"$/);
      // sudo drops the environment: what the program and the caches need must be passed on by name.
      assert.deepEqual(sudoPreserves(command ?? "").sort(), [
        "GOCACHE",
        "GOMODCACHE",
        "JETSON_FLEET_BUILD_ON_PREVIEW",
        "JETSON_FLEET_CACHE",
      ]);
      const comment = dev.steps.find((s) => s.env?.GH_TOKEN !== undefined);
      assert.ok(comment, "no step has a GitHub token");
      assert.ok(comment.run?.includes('gh api --method POST "$comments" -F "body=@$RUNNER_TEMP/comment.md"'), "no step posts the diff");
      assert.equal(comment.env?.GH_TOKEN, "${{ github.token }}");
      assert.equal(comment.if, "${{ !cancelled() }}");
    });

    it("preview dev for every pull request, forks included: no secret, no environment to approve, no condition", () => {
      const dev = job(PR, "preview-dev");
      assert.deepEqual([dev.if, dev.environment, secretsNamed(dev)], [undefined, undefined, []]);
      // Its passphrase is the documented dev one, set by tools/dev.sh, not a secret.
      assert.equal(JSON.stringify(dev).includes("PULUMI_CONFIG_PASSPHRASE"), false);
      assert.deepEqual(secretsNamed(checks), []);
      assert.equal(checks.if, undefined);
    });

    it("preview prod only after a maintainer approved the run, never for forks, its secrets in the pulumi step alone", () => {
      const prod = job(PR, "preview-prod");
      // Required reviewers of prod-preview approve each run; the secrets are that environment's.
      assert.equal(prod.environment, "prod-preview");
      assert.ok(PROTECTED_ENVIRONMENTS.includes("prod-preview"));
      assert.equal(prod.if, SAME_REPOSITORY);
      const reading = prod.steps.filter((s) => secretsNamed(s).length);
      assert.deepEqual(reading, [action(prod, "pulumi/actions")]);
      assert.deepEqual(action(prod, "pulumi/actions").env, { BUILDX_BUILDER: "${{ steps.buildx.outputs.name }}", ...PROD_SECRETS });
      assert.deepEqual(secretsNamed(prod.env), []);
    });

    it("no job of a pull request reads a secret outside a protected environment or for a fork, and none runs the PR's code with privileges", () => {
      // pull_request alone: pull_request_target and workflow_run run with secrets and a write token.
      assert.deepEqual(Object.keys(PR.on), ["pull_request"]);
      for (const [name, j] of Object.entries(PR.jobs)) {
        if (!secretsNamed(j).length && j.environment === undefined) continue;
        assert.ok(PROTECTED_ENVIRONMENTS.includes(j.environment ?? ""), `${name} reads secrets outside a protected environment`);
        assert.equal(j.if, SAME_REPOSITORY, `${name} runs for forks`);
      }
    });

    it("preview prod with the official CLI at the pinned version, building images, with the diff posted to the pull request", () => {
      const prod = job(PR, "preview-prod");
      assert.equal(prod.needs, "checks");
      assert.deepEqual(prod.permissions, { contents: "read", "pull-requests": "write" });
      assert.deepEqual(prod.env, {
        JETSON_FLEET_BUILD_ON_PREVIEW: "true",
        PULUMI_BACKEND_URL: "${{ vars.PULUMI_BACKEND_URL || 'file://~' }}",
        PULUMI_SKIP_UPDATE_CHECK: "true",
      });
      const pulumi = action(prod, "pulumi/actions");
      assert.deepEqual(pulumi.with, {
        command: "preview",
        "stack-name": "prod",
        "pulumi-version": PULUMI_VERSION,
        "cloud-url": "${{ env.PULUMI_BACKEND_URL }}",
        upsert: true,
        diff: true,
        "comment-on-pr": true,
        "edit-pr-comment": true,
      });
      // The program builds with the builder named by BUILDX_BUILDER (index.ts), the one set up here.
      assert.equal(action(prod, "docker/setup-buildx-action").id, "buildx");
      assert.equal(pulumi.env?.BUILDX_BUILDER, "${{ steps.buildx.outputs.name }}");
      assert.equal(action(prod, "docker/setup-qemu-action").with?.platforms, "arm64");
    });
  });

  describe("main", () => {
    const dev = job(DEPLOY, "dev");
    const prod = job(DEPLOY, "prod");

    it("runs pulumi up of dev, then of prod in the prod environment, never two updates of a stack at once", () => {
      assert.deepEqual(DEPLOY.on.push, { branches: ["main"] });
      assert.deepEqual(Object.keys(DEPLOY.jobs), ["dev", "prod"]);
      assert.deepEqual(dev.concurrency, { group: "pulumi-up-dev", "cancel-in-progress": false });
      assert.deepEqual(prod.concurrency, { group: "pulumi-up-prod", "cancel-in-progress": false });
      const up = dev.steps[stepRunning(dev, "sudo ")]?.run ?? "";
      assert.match(up, / tools\/dev\.sh up --yes --color never$/);
      assert.deepEqual(sudoPreserves(up).sort(), ["GOCACHE", "GOMODCACHE", "JETSON_FLEET_CACHE"]);
      assert.equal(dev.environment, undefined);
      const upProd = action(prod, "pulumi/actions");
      assert.deepEqual(
        [upProd.with?.command, upProd.with?.["stack-name"], upProd.with?.["pulumi-version"]],
        ["up", "prod", PULUMI_VERSION],
      );
      assert.equal(upProd.env?.BUILDX_BUILDER, "${{ steps.buildx.outputs.name }}");
      assert.equal(prod.needs, "dev");
      assert.equal(prod.environment, "prod");
    });

    it("gives prod's secrets only to an approved run from main, and to the pulumi step alone", () => {
      // Required reviewers of `prod` approve each run, and it admits only main (README); a manual
      // run on another branch is not even offered to them.
      assert.deepEqual(Object.keys(DEPLOY.on).sort(), ["push", "workflow_dispatch"]);
      assert.equal(prod.environment, "prod");
      assert.ok(PROTECTED_ENVIRONMENTS.includes("prod"));
      assert.equal(prod.if, "github.ref == 'refs/heads/main'");
      const upProd = action(prod, "pulumi/actions");
      assert.deepEqual(
        prod.steps.filter((s) => secretsNamed(s).length),
        [upProd],
      );
      assert.deepEqual(upProd.env, { BUILDX_BUILDER: "${{ steps.buildx.outputs.name }}", ...PROD_SECRETS });
      assert.deepEqual(secretsNamed(prod.env), []);
      assert.deepEqual(secretsNamed(dev), []);
    });

    it("refuses to deploy prod to a backend that dies with the runner, before anything else runs", () => {
      assert.equal(prod.env?.PULUMI_BACKEND_URL, "${{ vars.PULUMI_BACKEND_URL }}");
      const guard = prod.steps[0];
      assert.equal(guard?.if, "vars.PULUMI_BACKEND_URL == ''");
      assert.match(guard?.run ?? "", /^echo "::error::prod needs a team state backend: .*"\nexit 1\n$/);
    });
  });

  describe("broken copies are rejected with exact diagnostics", () => {
    const source = readWorkflow("pull-request.yml");
    const deploy = readWorkflow("deploy.yml");
    const forks = `expected if: ${SAME_REPOSITORY}`;
    const unprotected =
      "outside a protected environment; expected environment: prod or prod-preview (required reviewers), the only place its secrets live";
    const privileged = "which runs with the repository's secrets and a write token; build pull requests on pull_request";

    const pin = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1";
    const cases: {
      readonly file: string;
      readonly text: string;
      readonly actionlint: (text: string) => Omit<ActionlintError, "filepath">[];
      readonly rules: (text: string) => string[];
    }[] = [
      {
        file: "unpinned.yml",
        text: replaceOnce(source, `${pin}  # v7.0.1`, "actions/checkout@v7"),
        actionlint: () => [],
        rules: (text) => [
          `unpinned.yml:${lineOf(text, "actions/checkout@v7")}: uses actions/checkout@v7: not pinned; expected OWNER/REPO@<40-hex commit SHA> # vX.Y.Z`,
        ],
      },
      {
        file: "uncommented.yml",
        text: replaceOnce(source, `${pin}  # v7.0.1`, pin),
        actionlint: () => [],
        rules: (text) => [
          `uncommented.yml:${lineOf(text, `${pin}\n`)}: uses ${pin}: expected a "# vX.Y.Z" comment naming the release of that commit`,
        ],
      },
      {
        file: "typo.yml",
        text: replaceOnce(source, "BUILDX_BUILDER: ${{ steps.buildx.outputs.name }}", "BUILDX_BUILDER: ${{ steps.buildx.output.name }}"),
        actionlint: (text) => [
          {
            line: lineOf(text, "steps.buildx.output.name"),
            column: columnOf(text, "steps.buildx.output.name"),
            kind: "expression",
            message: 'property "output" is not defined in object type {conclusion: string; outcome: string; outputs: {string => string}}',
          },
        ],
        rules: () => [],
      },
      {
        file: "shellcheck.yml",
        text: replaceOnce(source, 'run: tools/node.sh >>"$GITHUB_PATH"', "run: tools/node.sh >>$GITHUB_PATH"),
        actionlint: (text) => [
          {
            line: lineOf(text, "run: tools/node.sh >>$GITHUB_PATH"),
            column: 9,
            kind: "shellcheck",
            message: "shellcheck reported issue in this script: SC2086:info:1:17: Double quote to prevent globbing and word splitting",
          },
        ],
        rules: () => [],
      },
      {
        file: "write-all.yml",
        text: replaceOnce(source, "\npermissions:\n  contents: read\n", "\npermissions: write-all\n"),
        actionlint: () => [],
        rules: (text) => [
          `write-all.yml:${lineOf(text, "permissions: write-all")}: top-level permissions "write-all"; expected read-only scopes (e.g. contents: read), widened per job`,
        ],
      },
      {
        file: "write-scope.yml",
        text: replaceOnce(source, "\npermissions:\n  contents: read\n", "\npermissions:\n  contents: write\n"),
        actionlint: () => [],
        rules: (text) => [
          `write-scope.yml:${lineOf(text, "contents: write")}: top-level permission contents: write; expected read or none (widen per job)`,
        ],
      },
      {
        file: "secret-in-run.yml",
        text: replaceOnce(
          source,
          "run: tools/npm-install.sh",
          'run: PULUMI_CONFIG_PASSPHRASE="${{ secrets.PULUMI_CONFIG_PASSPHRASE }}" tools/npm-install.sh',
        ),
        actionlint: () => [],
        rules: (text) => [
          `secret-in-run.yml:${lineOf(text, "  checks:")}: job checks reads secrets.PULUMI_CONFIG_PASSPHRASE ${unprotected}`,
          `secret-in-run.yml:${lineOf(text, "  checks:")}: job checks has secrets and runs for pull requests from forks too; ${forks}`,
          `secret-in-run.yml:${lineOf(text, 'secrets.PULUMI_CONFIG_PASSPHRASE }}" tools')}: run: interpolates secrets.PULUMI_CONFIG_PASSPHRASE into the script; pass it through env: instead`,
        ],
      },
      {
        // Today's workflow before issue 14: any branch's pull request decrypted prod.
        file: "prod-preview-unapproved.yml",
        text: replaceOnce(source, "    environment: prod-preview\n", ""),
        actionlint: () => [],
        rules: (text) => [
          `prod-preview-unapproved.yml:${lineOf(text, "  preview-prod:")}: job preview-prod reads secrets.PULUMI_ACCESS_TOKEN, secrets.PULUMI_CONFIG_PASSPHRASE ${unprotected}`,
        ],
      },
      {
        file: "prod-preview-elsewhere.yml",
        text: replaceOnce(source, "    environment: prod-preview\n", "    environment:\n      name: staging\n"),
        actionlint: () => [],
        rules: (text) => [
          `prod-preview-elsewhere.yml:${lineOf(text, "  preview-prod:")}: job preview-prod reads secrets.PULUMI_ACCESS_TOKEN, secrets.PULUMI_CONFIG_PASSPHRASE ${unprotected}`,
        ],
      },
      {
        file: "prod-preview-forks.yml",
        text: replaceOnce(source, `    if: ${SAME_REPOSITORY}\n`, ""),
        actionlint: () => [],
        rules: (text) => [
          `prod-preview-forks.yml:${lineOf(text, "  preview-prod:")}: job preview-prod has secrets and runs for pull requests from forks too; ${forks}`,
        ],
      },
      {
        // A condition that ORs the fork check away keeps nothing out.
        file: "prod-preview-or.yml",
        text: replaceOnce(source, `    if: ${SAME_REPOSITORY}\n`, `    if: ${SAME_REPOSITORY} || always()\n`),
        actionlint: () => [],
        rules: (text) => [
          `prod-preview-or.yml:${lineOf(text, "  preview-prod:")}: job preview-prod has secrets and runs for pull requests from forks too; ${forks}`,
        ],
      },
      {
        // Every job of a workflow-level env reads its secrets.
        file: "workflow-env-secret.yml",
        text: replaceOnce(source, "\njobs:\n", "\nenv:\n  TOKEN: ${{ secrets.DEPLOY_TOKEN }}\n\njobs:\n"),
        actionlint: () => [],
        rules: (text) => [
          `workflow-env-secret.yml:${lineOf(text, "  checks:")}: job checks reads secrets.DEPLOY_TOKEN ${unprotected}`,
          `workflow-env-secret.yml:${lineOf(text, "  checks:")}: job checks has secrets and runs for pull requests from forks too; ${forks}`,
          `workflow-env-secret.yml:${lineOf(text, "  preview-dev:")}: job preview-dev reads secrets.DEPLOY_TOKEN ${unprotected}`,
          `workflow-env-secret.yml:${lineOf(text, "  preview-dev:")}: job preview-dev has secrets and runs for pull requests from forks too; ${forks}`,
        ],
      },
      {
        // pull_request_target runs this (base) workflow with secrets: checking out the PR's head there hands them to it.
        file: "pull-request-target.yml",
        text: replaceOnce(
          replaceOnce(source, "on:\n  pull_request:\n", "on:\n  pull_request_target:\n"),
          "        with:\n          persist-credentials: false\n",
          "        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n          persist-credentials: false\n",
        ),
        actionlint: () => [],
        rules: (text) => [
          `pull-request-target.yml:${lineOf(text, "ref: ${{ github.event.pull_request.head.sha }}")}: ref: gets the pull request's code (github.event.pull_request.head.sha) in a workflow triggered by pull_request_target, ${privileged}`,
        ],
      },
      {
        file: "deploy-unapproved.yml",
        text: replaceOnce(deploy, "    environment: prod\n", ""),
        actionlint: () => [],
        rules: (text) => [
          `deploy-unapproved.yml:${lineOf(text, "  prod:")}: job prod reads secrets.PULUMI_ACCESS_TOKEN, secrets.PULUMI_CONFIG_PASSPHRASE ${unprotected}`,
        ],
      },
      {
        // A secret handed to the dev job, which needs none and waits for nobody.
        file: "deploy-dev-secret.yml",
        text: replaceOnce(
          deploy,
          "      - name: pulumi up (tools/dev.sh)\n",
          "      - name: pulumi up (tools/dev.sh)\n        env:\n          PULUMI_CONFIG_PASSPHRASE: ${{ secrets.PULUMI_CONFIG_PASSPHRASE }}\n",
        ),
        actionlint: () => [],
        rules: (text) => [`deploy-dev-secret.yml:${lineOf(text, "  dev:")}: job dev reads secrets.PULUMI_CONFIG_PASSPHRASE ${unprotected}`],
      },
    ];

    let dir: string;
    before(() => {
      dir = scratchDir("workflows");
      for (const c of cases) writeFileSync(join(dir, c.file), c.text);
    });

    for (const c of cases) {
      it(c.file, async () => {
        const found = (await actionlint(binary, dir, [c.file])).map(({ line, column, kind, message }) => ({ line, column, kind, message }));
        assert.deepEqual(found, c.actionlint(c.text), "actionlint");
        assert.deepEqual(workflowProblems(c.file, c.text), c.rules(c.text), "project rules");
      });
    }
  });
});
