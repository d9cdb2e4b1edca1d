// The project's own rules for GitHub workflows, beyond what actionlint checks: actions pinned by
// commit, read-only default permissions, secrets reaching scripts only through the environment,
// secrets read only by jobs behind a protected environment, and none of it for pull requests from
// forks or for pull-request code run by a privileged trigger.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type YAMLMap } from "yaml";

export const PROJECT_DIR = join(import.meta.dirname, "..", "..");
export const WORKFLOWS_DIR = join(PROJECT_DIR, ".github", "workflows");

/** A workflow file's text, by its name under .github/workflows. */
export function readWorkflow(name: string): string {
  return readFileSync(join(WORKFLOWS_DIR, name), "utf8");
}

const SHA_PINNED = /^[\w.-]+\/[\w.-]+(\/[^@\s]+)?@[0-9a-f]{40}$/;
const DIGEST_PINNED = /^docker:\/\/[^@\s]+@sha256:[0-9a-f]{64}$/;
const RELEASE_COMMENT = /^ ?v\d+\.\d+\.\d+$/;
const SECRET_IN_EXPRESSION = /\$\{\{[^}]*\bsecrets\.(\w+)/;

/**
 * The GitHub environments whose protection the README has maintainers set (Settings → Environments:
 * required reviewers; `prod` admits only `main`). The workflows' secrets live in these alone, so a
 * job reading one waits for a maintainer's approval of the exact commit it runs.
 */
export const PROTECTED_ENVIRONMENTS: readonly string[] = ["prod", "prod-preview"];

/** The condition that keeps a pull-request job to this repository's own branches (never forks). */
export const SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository";

/** Triggers whose jobs run with the repository's secrets and a write token whoever opened the pull request. */
const PRIVILEGED_PR_TRIGGERS = ["pull_request_target", "workflow_run"];
/** Triggers that start jobs for a pull request, from a fork or not. */
const PR_TRIGGERS = ["pull_request", "pull_request_target"];
/** Ways a job gets at the pull request's own code (its head commit, branch or merge ref). */
const PR_CODE =
  /github\.event\.pull_request\.head\.(?:sha|ref)|github\.head_ref|github\.event\.workflow_run\.head_(?:sha|branch)|refs\/pull\/|gh pr checkout/;
/** `${{ ... }}` spans of a value; `if:` values are expressions whole. */
const EXPRESSION = /\$\{\{([\s\S]*?)\}\}/g;
/** A read of the secrets context: `secrets.NAME`, or all of it (`secrets[...]`, `toJSON(secrets)`). */
const SECRETS_READ = /\bsecrets\b(?:\s*\.\s*(\w+))?/g;

/** The secrets an expression-bearing value reads, as `secrets.NAME` (`secrets` for dynamic access); GITHUB_TOKEN is not one. */
function secretsRead(value: string, wholeIsExpression: boolean): string[] {
  const spans = wholeIsExpression && !value.includes("${{") ? [value] : [...value.matchAll(EXPRESSION)].map((m) => m[1] ?? "");
  const found: string[] = [];
  for (const span of spans) {
    for (const m of span.matchAll(SECRETS_READ)) {
      if (m[1] !== "GITHUB_TOKEN") found.push(m[1] ? `secrets.${m[1]}` : "secrets");
    }
  }
  return found;
}

/** Every secret `node` (a job, or the workflow's `env:`) reads, sorted, each once. */
function secretsIn(node: unknown): string[] {
  const found = new Set<string>();
  if (!isNode(node)) return [];
  visit(node, {
    Pair(_, pair) {
      if (!isScalar(pair.key)) return;
      // A reusable workflow's call handing it every secret.
      if (pair.key.value === "secrets" && isScalar(pair.value) && pair.value.value === "inherit") found.add("secrets");
      if (isScalar(pair.value) && typeof pair.value.value === "string") {
        for (const s of secretsRead(pair.value.value, pair.key.value === "if")) found.add(s);
      }
    },
    Seq(_, seq) {
      for (const item of seq.items)
        if (isScalar(item) && typeof item.value === "string") for (const s of secretsRead(item.value, false)) found.add(s);
    },
  });
  return [...found].sort();
}

/** A job's `environment:` name (the scalar, or the map's `name`), undefined when it has none. */
function environmentOf(job: YAMLMap): string | undefined {
  const env: unknown = job.get("environment", true);
  if (isScalar(env)) return String(env.value);
  if (isMap(env)) {
    const name: unknown = env.get("name", true);
    return isScalar(name) ? String(name.value) : "";
  }
  return undefined;
}

/** Whether a job's `if:` keeps it to this repository's branches: exactly SAME_REPOSITORY, or it `&&` more. */
function sameRepositoryOnly(condition: unknown): boolean {
  if (!isScalar(condition)) return false;
  const text = String(condition.value)
    .trim()
    .replace(/^\$\{\{([\s\S]*)\}\}$/, "$1")
    .trim();
  return text === SAME_REPOSITORY || text.startsWith(`${SAME_REPOSITORY} && `);
}

/** The events a workflow's `on:` names (a scalar, a list or a map). */
function triggersOf(on: unknown): string[] {
  if (isScalar(on)) return [String(on.value)];
  if (isMap(on)) return on.items.flatMap((item) => (isScalar(item.key) ? [String(item.key.value)] : []));
  if (isSeq(on)) return on.items.flatMap((item) => (isScalar(item) ? [String(item.value)] : []));
  return [];
}

/**
 * Every way `text` (the workflow file `file`) breaks the project's rules, one line each with the
 * file and line, in file order; empty when it keeps them all. Syntax errors are reported too.
 */
export function workflowProblems(file: string, text: string): string[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  if (doc.errors.length) return doc.errors.map((e) => `${file}:${e.linePos?.[0].line ?? 0}: ${e.message.split("\n")[0]}`);
  const problems: { line: number; text: string }[] = [];
  const at = (offset: number | undefined) => lineCounter.linePos(offset ?? 0).line;

  const root = doc.contents;
  const permissions: unknown = isMap(root) ? root.get("permissions", true) : undefined;
  if (permissions === undefined) {
    problems.push({ line: 1, text: "no top-level permissions; expected read-only scopes (e.g. contents: read), widened per job" });
  } else if (isScalar(permissions)) {
    problems.push({
      line: at(permissions.range?.[0]),
      text: `top-level permissions "${String(permissions.value)}"; expected read-only scopes (e.g. contents: read), widened per job`,
    });
  } else if (isMap(permissions)) {
    for (const item of permissions.items) {
      if (isScalar(item.key) && isScalar(item.value) && item.value.value !== "read" && item.value.value !== "none") {
        problems.push({
          line: at(item.key.range?.[0]),
          text: `top-level permission ${String(item.key.value)}: ${String(item.value.value)}; expected read or none (widen per job)`,
        });
      }
    }
  }

  const triggers = isMap(root) ? triggersOf(root.get("on", true)) : [];
  const privileged = triggers.filter((t) => PRIVILEGED_PR_TRIGGERS.includes(t));
  const forPullRequests = triggers.some((t) => PR_TRIGGERS.includes(t));
  const workflowSecrets = isMap(root) ? secretsIn(root.get("env", true)) : [];
  const jobs: unknown = isMap(root) ? root.get("jobs", true) : undefined;
  for (const item of isMap(jobs) ? jobs.items : []) {
    if (!isScalar(item.key) || !isMap(item.value)) continue;
    const name = String(item.key.value);
    const line = at(item.key.range?.[0]);
    const secrets = [...new Set([...workflowSecrets, ...secretsIn(item.value)])].sort();
    const environment = environmentOf(item.value);
    if (secrets.length && (environment === undefined || !PROTECTED_ENVIRONMENTS.includes(environment))) {
      problems.push({
        line,
        text:
          `job ${name} reads ${secrets.join(", ")} outside a protected environment; ` +
          `expected environment: ${PROTECTED_ENVIRONMENTS.join(" or ")} (required reviewers), the only place its secrets live`,
      });
    }
    if (forPullRequests && (secrets.length || environment !== undefined) && !sameRepositoryOnly(item.value.get("if", true))) {
      problems.push({
        line,
        text: `job ${name} has ${secrets.length ? "secrets" : `environment ${environment}`} and runs for pull requests from forks too; expected if: ${SAME_REPOSITORY}`,
      });
    }
  }

  visit(doc, {
    Pair(_, pair) {
      if (!isPair(pair) || !isScalar(pair.key) || !isScalar(pair.value)) return;
      const key = pair.key.value;
      const value = String(pair.value.value);
      const line = at(pair.key.range?.[0]);
      if (key === "uses" && !value.startsWith("./")) {
        if (!SHA_PINNED.test(value) && !DIGEST_PINNED.test(value)) {
          problems.push({ line, text: `uses ${value}: not pinned; expected OWNER/REPO@<40-hex commit SHA> # vX.Y.Z` });
        } else if (!value.startsWith("docker://") && !RELEASE_COMMENT.test(pair.value.comment ?? "")) {
          problems.push({ line, text: `uses ${value}: expected a "# vX.Y.Z" comment naming the release of that commit` });
        }
      }
      const secret = key === "run" ? SECRET_IN_EXPRESSION.exec(value) : null;
      if (secret) {
        problems.push({ line, text: `run: interpolates secrets.${secret[1]} into the script; pass it through env: instead` });
      }
      // A privileged trigger runs the base branch's workflow with secrets and a write token: the
      // pull request's code must never run there (checked out by ref, or fetched by a script).
      const prCode = privileged.length && (key === "ref" || key === "run") ? PR_CODE.exec(value) : null;
      if (prCode) {
        problems.push({
          line,
          text:
            `${String(key)}: gets the pull request's code (${prCode[0]}) in a workflow triggered by ${privileged.join(", ")}, ` +
            "which runs with the repository's secrets and a write token; build pull requests on pull_request",
        });
      }
    },
  });
  return problems.sort((a, b) => a.line - b.line).map((p) => `${file}:${p.line}: ${p.text}`);
}

export interface ActionlintError {
  readonly message: string;
  readonly filepath: string;
  readonly line: number;
  readonly column: number;
  readonly kind: string;
}

/** actionlint's findings in `files` (run in `cwd`), as it reports them with `-format '{{json .}}'`. */
export async function actionlint(binary: string, cwd: string, files: string[]): Promise<ActionlintError[]> {
  try {
    const { stdout } = await promisify(execFile)(binary, ["-format", "{{json .}}", ...files], { cwd });
    return JSON.parse(stdout) as ActionlintError[];
  } catch (error) {
    // Exit code 1 means "found problems"; its stdout holds them. Anything else is a real failure.
    const failed = error as { code?: number; stdout?: string };
    if (failed.code === 1 && failed.stdout) return JSON.parse(failed.stdout) as ActionlintError[];
    throw error;
  }
}
