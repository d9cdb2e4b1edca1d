// Turns the engine's raw stack config into a validated `StackConfig`, or one error listing every
// problem as `Pulumi.<stack>.yaml: <project>:<path>: <what is wrong; what is expected>`.
// Nothing here touches a resource: the program calls it before it builds any component.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { closest, distance } from "fastest-levenshtein";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { StackConfig, StackConfigShape, describe } from "./schema.ts";

/** Fields whose values must be Pulumi secrets, as path patterns (`*` stands for a list index). */
export const SECRET_FIELDS = ["hosts.*.privateKey", "hosts.*.sudoPassword", "registry.password", "deploy.kubernetes.kubeconfig"] as const;

/** The raw material the loader validates. */
export interface StackConfigSource {
  /** Pulumi project name: the config namespace. */
  readonly project: string;
  /** Stack name: names the stack file in messages. */
  readonly stack: string;
  /** Every config value as the engine passes it (`<namespace>:<key>` → text or JSON text). */
  readonly values: Readonly<Record<string, string>>;
  /**
   * Paths of the project's keys that the stack stores encrypted, in `pulumi config --path` syntax
   * without the namespace (`hosts[0].privateKey`; a bare `registry` means the whole value).
   */
  readonly secretPaths: ReadonlySet<string>;
}

/** One problem: where (`hosts[0].port`) and what. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** An invalid stack config. Its message lists every problem; Pulumi prints it without a stack trace. */
export class StackConfigError extends pulumi.RunError {
  readonly problems: readonly ConfigProblem[];
  readonly lines: readonly string[];
  constructor(source: Pick<StackConfigSource, "project" | "stack">, problems: readonly ConfigProblem[]) {
    const file = stackFileName(source.stack);
    const lines = problems.map((p) => `${file}: ${source.project}:${p.path}: ${p.message}`);
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super(`invalid stack config (${count}); nothing was changed:\n${lines.join("\n")}`);
    this.name = "StackConfigError";
    this.problems = problems;
    this.lines = lines;
  }
}

export function stackFileName(stack: string): string {
  return `Pulumi.${stack}.yaml`;
}

/** Formats a zod path the way `pulumi config set --path` reads it: `hosts[0].labels["site.zone"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(part))) out += out === "" ? String(part) : `.${String(part)}`;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

function matchesPattern(path: readonly PropertyKey[], pattern: string): boolean {
  const parts = pattern.split(".");
  return parts.length === path.length && parts.every((p, i) => (p === "*" ? typeof path[i] === "number" : p === path[i]));
}

function isSecretPath(path: readonly PropertyKey[], secretPaths: ReadonlySet<string>): boolean {
  for (let n = 1; n <= path.length; n++) {
    if (secretPaths.has(formatPath(path.slice(0, n)))) return true;
  }
  return false;
}

/** The known keys of the object at `path` in the schema, for did-you-mean suggestions. */
function knownKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let node: z.core.$ZodType | undefined = schema;
  const unwrap = (n: z.core.$ZodType): z.core.$ZodType => {
    const def = n._zod.def as unknown as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
    if (def.innerType) return unwrap(def.innerType);
    if (def.type === "pipe" && def.in) return unwrap(def.in);
    return n;
  };
  for (const part of [...path, undefined]) {
    if (!node) return [];
    node = unwrap(node);
    const def = node._zod.def as unknown as {
      type: string;
      shape?: Record<string, z.core.$ZodType>;
      element?: z.core.$ZodType;
      valueType?: z.core.$ZodType;
      options?: z.core.$ZodType[];
    };
    if (def.type === "union" && def.options) {
      const objects = def.options.map(unwrap).filter((o) => (o._zod.def as { type: string }).type === "object");
      if (objects.length === 0) return [];
      node = objects[0];
      continue;
    }
    if (part === undefined) return def.shape ? Object.keys(def.shape) : [];
    if (def.type === "object" && def.shape) node = def.shape[String(part)];
    else if (def.type === "array") node = def.element;
    else if (def.type === "record") node = def.valueType;
    else return [];
  }
  return [];
}

export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = known.length > 0 ? closest(key, [...known]) : undefined;
  const close =
    suggestion !== undefined && distance(key.toLowerCase(), suggestion.toLowerCase()) <= Math.max(2, Math.floor(suggestion.length / 3));
  const hint = close ? `; did you mean "${suggestion}"?` : "";
  return `unknown key "${key}"${hint} Expected one of: ${known.join(", ")}`;
}

/** Messages for issues whose schema has no message of its own (zod's per-parse error map). */
function issueMessage(issue: z.core.$ZodRawIssue): string | undefined {
  // Secret values are never repeated, not even in an error.
  const secret = SECRET_FIELDS.some((f) => matchesPattern(issue.path ?? [], f));
  const got = (value: unknown) => (secret ? `a ${typeof value}` : describe(value));
  switch (issue.code) {
    case "invalid_type":
      return `${issue.input === undefined ? "is missing" : `got ${got(issue.input)}`}; expected ${article(issue.expected)}`;
    case "invalid_value":
      return `got ${got(issue.input)}; expected one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "too_small":
      if (issue.origin === "array") return `expected at least ${String(issue.minimum)} item(s)`;
      if (issue.origin === "string") return "is empty; expected text";
      return `got ${got(issue.input)}; expected ${issue.inclusive ? "at least" : "more than"} ${String(issue.minimum)}`;
    case "too_big":
      return `got ${got(issue.input)}; expected ${issue.inclusive ? "at most" : "less than"} ${String(issue.maximum)}`;
    case "invalid_union":
      return `got ${got(issue.input)}; expected one of the forms documented for this key`;
    case "invalid_format":
      return `got ${got(issue.input)}; expected the format ${issue.format}`;
    default:
      return undefined;
  }
}

function article(expected: string): string {
  const names: Record<string, string> = {
    string: "text",
    number: "a number",
    int: "a whole number",
    boolean: "true or false",
    array: "a list",
    object: "an object (a map of keys)",
    record: "an object (a map of keys)",
  };
  return names[expected] ?? expected;
}

function decode(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Validates a stack's config. Returns the typed config with defaults applied, or throws a
 * `StackConfigError` listing every problem. Pure: no I/O, no Pulumi runtime.
 */
export function parseStackConfig(source: StackConfigSource): StackConfig {
  const prefix = `${source.project}:`;
  const input: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  const topKeys = Object.keys(StackConfigShape);
  for (const [fullKey, raw] of Object.entries(source.values)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (!topKeys.includes(key)) {
      problems.push({ path: key, message: unknownKeyMessage(key, topKeys) });
      continue;
    }
    input[key] = decode(raw);
  }

  const result = StackConfig.safeParse(input, { error: issueMessage, reportInput: true });
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === "unrecognized_keys") {
        const known = knownKeysAt(StackConfig, issue.path);
        for (const key of issue.keys) problems.push({ path: formatPath([...issue.path, key]), message: unknownKeyMessage(key, known) });
      } else {
        problems.push({ path: formatPath(issue.path), message: issue.message });
      }
    }
  }
  // Reported whatever else is wrong: a secret in plain text is worth knowing about at once.
  problems.push(...plainTextSecrets(input, source.secretPaths).map((path) => plainTextProblem(path, source.stack)));
  if (result.success && problems.length === 0) return result.data;
  throw new StackConfigError(source, dedupe(problems));
}

/** Drops repeats and orders problems by where they are (hosts[2] before hosts[10]), like the file reads. */
function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  const unique = problems.filter((p) => {
    const id = `${p.path}\u0000${p.message}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  const collator = new Intl.Collator("en", { numeric: true });
  return unique.sort((a, b) => collator.compare(a.path, b.path));
}

function plainTextProblem(path: readonly PropertyKey[], stack: string): ConfigProblem {
  const p = formatPath(path);
  return {
    path: p,
    message: `is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack ${stack} --secret --path '${p}'`,
  };
}

/** Paths of secret fields present in `value` that the stack does not store encrypted. */
function plainTextSecrets(value: unknown, secretPaths: ReadonlySet<string>): PropertyKey[][] {
  const found: PropertyKey[][] = [];
  const walk = (node: unknown, path: PropertyKey[]) => {
    if (SECRET_FIELDS.some((f) => matchesPattern(path, f))) {
      if (typeof node === "string" && node !== "" && !isSecretPath(path, secretPaths)) found.push(path);
      return;
    }
    if (Array.isArray(node)) node.forEach((v, i) => walk(v, [...path, i]));
    else if (node !== null && typeof node === "object") for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
  };
  walk(value, []);
  return found;
}

/**
 * Paths the stack file stores as `secure:` values, for the project's namespace. Pulumi writes a
 * secret as `{ secure: <ciphertext> }` at exactly the path given to `config set --secret --path`.
 */
export function securePathsInStackFile(text: string, project: string): Set<string> {
  const doc = parseYaml(text) as { config?: Record<string, unknown> } | null;
  const out = new Set<string>();
  const walk = (node: unknown, path: PropertyKey[]) => {
    if (node !== null && typeof node === "object" && !Array.isArray(node)) {
      const keys = Object.keys(node);
      if (keys.length === 1 && keys[0] === "secure") {
        out.add(formatPath(path));
        return;
      }
      for (const [k, v] of Object.entries(node)) walk(v, [...path, k]);
    } else if (Array.isArray(node)) {
      node.forEach((v, i) => walk(v, [...path, i]));
    }
  };
  for (const [fullKey, value] of Object.entries(doc?.config ?? {})) {
    const key = fullKey.startsWith(`${project}:`) ? fullKey.slice(project.length + 1) : fullKey.includes(":") ? undefined : fullKey;
    if (key !== undefined) walk(value, [key]);
  }
  return out;
}

/**
 * Reads and validates the running stack's config: the values from the engine, and which of
 * them are encrypted from `Pulumi.<stack>.yaml` in `projectDir` (when that file is elsewhere,
 * the engine's list of secret keys is used).
 */
export function readStackConfig(projectDir: string = process.cwd()): StackConfig {
  const project = pulumi.getProject();
  const stack = pulumi.getStack();
  const file = join(projectDir, stackFileName(stack));
  let secretPaths: Set<string>;
  if (existsSync(file)) {
    secretPaths = securePathsInStackFile(readFileSync(file, "utf8"), project);
  } else {
    // The engine hands the program its secret keys (top level only) in this variable.
    const keys = decode(process.env["PULUMI_CONFIG_SECRET_KEYS"] ?? "[]");
    secretPaths = new Set(
      Array.isArray(keys)
        ? keys.filter((k): k is string => typeof k === "string" && k.startsWith(`${project}:`)).map((k) => k.slice(project.length + 1))
        : [],
    );
  }
  return parseStackConfig({ project, stack, values: pulumi.runtime.allConfig(), secretPaths });
}
