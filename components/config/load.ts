// Turns the engine's raw stack config into a validated `StackConfig`, or one error listing every
// problem as `Pulumi.<stack>.yaml: <project>:<path>: <what is wrong; what is expected>`.
// Nothing here touches a resource: the program calls it before it builds any component.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { didYouMean } from "./docker.ts";
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

/** Whether the value at `path` (`["hosts", 0, "address"]`) is stored encrypted: it, or a value holding it, is at a secret path. */
export function isSecretPath(path: readonly PropertyKey[], secretPaths: ReadonlySet<string>): boolean {
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
  return `unknown key "${key}"${didYouMean(key, known)} Expected one of: ${known.join(", ")}`;
}

/** Messages for issues whose schema has no message of its own (zod's per-parse error map). */
function issueMessage(issue: z.core.$ZodRawIssue, stack?: string): string | undefined {
  // Secret values are never repeated, not even in an error.
  const secret = SECRET_FIELDS.some((f) => matchesPattern(issue.path ?? [], f));
  const got = (value: unknown) => (secret ? `a ${typeof value}` : describe(value));
  switch (issue.code) {
    case "invalid_type":
      // A missing secret says how to store one, as a secret in plain text does.
      if (secret && issue.input === undefined) return `is missing; expected ${secretCommand(issue.path ?? [], stack)}`;
      return `${issue.input === undefined ? "is missing" : `got ${got(issue.input)}`}; expected ${article(issue.expected)}`;
    case "invalid_key":
      // A record key the key schema refused: its own sentence names the key and what is expected.
      return (
        issue.issues.find((i) => i.message)?.message ?? `got the key ${JSON.stringify(String(issue.input))}; expected a valid key here`
      );
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

  const result = StackConfig.safeParse(input, { error: (issue) => issueMessage(issue, source.stack), reportInput: true });
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

/** `a Pulumi secret: cat FILE | pulumi config set --stack <stack> --secret --path '<path>'` (the selected stack when none is given). */
function secretCommand(path: readonly PropertyKey[], stack?: string): string {
  return `a Pulumi secret: cat FILE | pulumi config set${stack !== undefined ? ` --stack ${stack}` : ""} --secret --path '${formatPath(path)}'`;
}

function plainTextProblem(path: readonly PropertyKey[], stack: string): ConfigProblem {
  return { path: formatPath(path), message: `is stored in plain text; expected ${secretCommand(path, stack)}` };
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

/** A validated stack config and which of its values the stack stores encrypted. */
export type LoadedStackConfig = StackConfig & {
  /**
   * Paths of the values the stack stores as secrets, in `pulumi config --path` syntax without the
   * namespace (`hosts[0].privateKey`, `services[1].environment.API_TOKEN`; a bare `services` means
   * the whole value). Give them to `secretEnvironmentOf` and the components keep those values secret.
   */
  readonly secretPaths: ReadonlySet<string>;
};

/** Where the running stack's file is: the project's `stackConfigDir` (Pulumi.yaml), else the project directory. */
export function stackFilePath(projectDir: string, stack: string): string {
  let dir = projectDir;
  const project = join(projectDir, "Pulumi.yaml");
  if (existsSync(project)) {
    const doc = parseYaml(readFileSync(project, "utf8")) as { stackConfigDir?: unknown } | null;
    if (typeof doc?.stackConfigDir === "string") dir = join(projectDir, doc.stackConfigDir);
  }
  return join(dir, stackFileName(stack));
}

/**
 * The project's top-level keys the engine says hold a secret (it tells the program which keys,
 * not which paths below them), without the namespace.
 */
function engineSecretKeys(project: string): string[] {
  const prefix = `${project}:`;
  // The SDK keeps the engine's list in its own store (an inline Automation API program never sees
  // it in process.env); its reader is not in the SDK's typings.
  const isSecret = (pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean }).isConfigSecret;
  const keys =
    typeof isSecret === "function"
      ? Object.keys(pulumi.runtime.allConfig()).filter((k) => isSecret(k))
      : ((): unknown[] => {
          const listed = decode(process.env["PULUMI_CONFIG_SECRET_KEYS"] ?? "[]");
          return Array.isArray(listed) ? (listed as unknown[]) : [];
        })();
  return keys.filter((k): k is string => typeof k === "string" && k.startsWith(prefix)).map((k) => k.slice(prefix.length));
}

/**
 * Every secret path of the stack: those its file stores as `secure:` values, and each top-level
 * key the engine calls secret under which the file shows none (the file was not found, or the
 * config came from elsewhere: `--config-file`, an ESC environment, the Automation API), which is
 * then secret as a whole. So a value is never taken for plain text because the file was missed.
 */
export function stackSecretPaths(fromFile: Iterable<string>, engineKeys: Iterable<string>): Set<string> {
  const paths = new Set(fromFile);
  const covered = (key: string) => [...paths].some((p) => p === key || p.startsWith(`${key}.`) || p.startsWith(`${key}[`));
  for (const key of engineKeys) if (!covered(key)) paths.add(key);
  return paths;
}

/**
 * Reads and validates the running stack's config: the values from the engine, and which of them
 * are encrypted (`secretPaths`), from the stack file in the project directory (`projectDir`,
 * default the root directory the engine names, or the working directory) and the engine's list of
 * secret keys. Throws a `StackConfigError` listing every problem before any resource exists.
 */
export function readStackConfig(projectDir?: string): LoadedStackConfig {
  const project = pulumi.getProject();
  const stack = pulumi.getStack();
  const candidates = projectDir !== undefined ? [projectDir] : [pulumi.runtime.getRootDirectory(), process.cwd()];
  const file = candidates.map((dir) => stackFilePath(dir, stack)).find((f) => existsSync(f));
  const fromFile = file !== undefined ? securePathsInStackFile(readFileSync(file, "utf8"), project) : [];
  const secretPaths = stackSecretPaths(fromFile, engineSecretKeys(project));
  const config = parseStackConfig({ project, stack, values: pulumi.runtime.allConfig(), secretPaths });
  return { ...config, secretPaths };
}
