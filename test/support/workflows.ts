// The project's own rules for GitHub workflows, beyond what actionlint checks: actions pinned by
// commit, read-only default permissions, and secrets reaching scripts only through the environment.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { isMap, isPair, isScalar, LineCounter, parseDocument, visit } from "yaml";

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
