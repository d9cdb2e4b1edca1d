// A `file` model must be in the repository with the content its `sha256` names: checked where
// Pulumi runs, before any resource exists, so a wrong hash or a missing file is a config error
// and nothing is pushed or fetched.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { StackConfigError, type ConfigProblem, type ModelSpec } from "../config/index.ts";

/** The SHA-256 (hex) of a file, read in chunks so a model of gigabytes is never held in memory. */
export function fileSha256(path: string): string {
  const hash = createHash("sha256");
  const buffer = Buffer.alloc(4 * 1024 ** 2);
  const fd = openSync(path, "r");
  try {
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) hash.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** What is wrong with each `file` model (missing, not a file, another content), at its config key. */
export function modelFileProblems(models: readonly Pick<ModelSpec, "source" | "sha256">[], projectDir: string): ConfigProblem[] {
  return models.flatMap((model, i): ConfigProblem[] => {
    const file = model.source.file;
    if (file === undefined) return [];
    const path = isAbsolute(file) ? file : join(projectDir, file);
    let isFile: boolean;
    try {
      isFile = statSync(path).isFile();
    } catch {
      return [
        { path: `models[${i}].source.file`, message: `${JSON.stringify(file)} does not exist; expected an ONNX file in the repository` },
      ];
    }
    if (!isFile) return [{ path: `models[${i}].source.file`, message: `${JSON.stringify(file)} is not a file; expected an ONNX file` }];
    const actual = fileSha256(path);
    return actual === model.sha256
      ? []
      : [
          {
            path: `models[${i}].sha256`,
            message: `is ${model.sha256}, but ${file} hashes to ${actual}; expected the file's SHA-256 (sha256sum ${file}), or the file this hash names`,
          },
        ];
  });
}

/** Throws a `StackConfigError` naming the stack file and key of every `file` model that is missing or has another content. */
export function checkModelFiles(
  models: readonly Pick<ModelSpec, "source" | "sha256">[],
  stack: { readonly project: string; readonly stack: string },
  projectDir: string,
): void {
  const problems = modelFileProblems(models, projectDir);
  if (problems.length > 0) throw new StackConfigError(stack, problems);
}
