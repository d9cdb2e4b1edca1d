// The engine tier's harness: the real Pulumi CLI (built by tools/toolchain.sh) driven through the
// Automation API, against a local file backend with passphrase secrets, on a throwaway copy of
// the project so tests never touch the repository's stack files or state.
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation/index.js";
import { parse, stringify } from "yaml";
import { PROJECT } from "./fixtures.ts";

export const REPO = join(import.meta.dirname, "..", "..");
/** The passphrase of every engine-test stack: it protects throwaway test state only. */
export const TEST_PASSPHRASE = "engine-tier-test-passphrase";

/** The bin directory holding `pulumi` and its language host (set by tools/test.sh). */
export function pulumiBin(): string {
  const bin = process.env["JETSON_FLEET_PULUMI_BIN"];
  if (!bin) throw new Error("JETSON_FLEET_PULUMI_BIN is not set: run the engine tier through tools/test.sh engine");
  return bin;
}

export interface EngineStackSpec {
  /** Stack name; also names the stack file. */
  readonly stack: string;
  /** The project's config without the `<project>:` prefix, written into the stack file. */
  readonly config?: Record<string, unknown>;
  /** Values to store encrypted, by `--path` (e.g. `hosts[0].privateKey`). */
  readonly secrets?: Record<string, string>;
  /** A stack file of the repository to start from (e.g. `Pulumi.dev.yaml`). */
  readonly stackFile?: string;
  /**
   * A program directory of the repository to run instead of the project (e.g.
   * `test/engine/programs/gpu-image`); config keys then take its project name.
   */
  readonly program?: string;
  /** Extra environment for every engine run (e.g. `BUILDX_CONFIG`). */
  readonly env?: Record<string, string>;
}

export interface EngineStack {
  readonly stack: Stack;
  /** The throwaway project directory. */
  readonly dir: string;
  /** The local backend's directory. */
  readonly stateDir: string;
  /**
   * Destroys what is left and removes the stack. `runProgram` runs the program for the destroy, as
   * the containers mode needs (its Docker providers' ssh-agent lives while a program runs).
   */
  dispose(options?: { runProgram?: boolean }): Promise<void>;
}

/** The environment every engine run gets: no account, no plugin downloads, no update checks. */
export function engineEnv(stateDir: string): Record<string, string> {
  const bin = pulumiBin();
  return {
    PULUMI_BACKEND_URL: `file://${stateDir}`,
    PULUMI_CONFIG_PASSPHRASE: TEST_PASSPHRASE,
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    // Where tools/toolchain.sh installed the plugins.
    PULUMI_HOME:
      process.env["PULUMI_HOME"] ?? join(process.env["JETSON_FLEET_CACHE"] ?? join(homedir(), ".cache", "jetson-fleet"), "pulumi-home"),
    // The language host runs `node` from PATH: the pinned Node first.
    PATH: `${bin}:${dirname(process.execPath)}:${process.env["PATH"] ?? ""}`,
  };
}

/** A copy of the project (program and components linked, stack files copied) in a temp dir. */
export function projectCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-engine-"));
  for (const entry of ["index.ts", "components", "images", "models", "node_modules", "package.json", "tsconfig.json"]) {
    symlinkSync(join(REPO, entry), join(dir, entry));
  }
  copyFileSync(join(REPO, "Pulumi.yaml"), join(dir, "Pulumi.yaml"));
  return dir;
}

/**
 * A copy of a program directory of the repository: its files linked (so its relative imports
 * resolve inside the repository), the repository's node_modules linked beside them.
 */
export function programCopy(program: string): string {
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-program-"));
  for (const entry of readdirSync(join(REPO, program))) {
    if (entry === "Pulumi.yaml") copyFileSync(join(REPO, program, entry), join(dir, entry));
    else symlinkSync(join(REPO, program, entry), join(dir, entry));
  }
  symlinkSync(join(REPO, "node_modules"), join(dir, "node_modules"));
  return dir;
}

export async function engineStack(spec: EngineStackSpec): Promise<EngineStack> {
  const dir = spec.program ? programCopy(spec.program) : projectCopy();
  const project = spec.program ? (parse(readFileSync(join(dir, "Pulumi.yaml"), "utf8")) as { name: string }).name : PROJECT;
  const stateDir = mkdtempSync(join(tmpdir(), "jetson-fleet-state-"));
  const pulumiCommand = await PulumiCommand.get({ root: dirname(pulumiBin()), skipVersionCheck: false });
  const stackFile = join(dir, `Pulumi.${spec.stack}.yaml`);
  if (spec.stackFile) {
    // Without the repository's salt: the copy gets one for the test passphrase at stack init.
    const doc = parse(readFileSync(join(REPO, spec.stackFile), "utf8")) as Record<string, unknown>;
    delete doc["encryptionsalt"];
    writeFileSync(stackFile, stringify(doc));
  }
  const stack = await LocalWorkspace.createStack(
    { stackName: spec.stack, workDir: dir },
    {
      pulumiCommand,
      envVars: { ...engineEnv(stateDir), ...spec.env },
    },
  );
  if (spec.config) {
    // Structured config goes straight into the stack file, as a user would write it.
    const doc = (parse(readFileSync(stackFile, "utf8")) ?? {}) as { config?: Record<string, unknown> };
    doc.config = { ...doc.config, ...Object.fromEntries(Object.entries(spec.config).map(([k, v]) => [`${project}:${k}`, v])) };
    writeFileSync(stackFile, stringify(doc));
  }
  for (const [path, value] of Object.entries(spec.secrets ?? {})) {
    await stack.setConfig(`${project}:${path}`, { value, secret: true }, true);
  }
  return {
    stack,
    dir,
    stateDir,
    async dispose(options = {}) {
      await stack.destroy({ color: "never", ...(options.runProgram ? { runProgram: true } : {}) });
      await stack.workspace.removeStack(spec.stack);
      rmSync(dir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * `pulumi stack export` as a user runs it: the state as stored, secrets encrypted. Not the
 * Automation API's `exportStack()`, which passes `--show-secrets` and so holds every secret in plain text.
 */
export async function storedState(env: EngineStack, stack: string): Promise<string> {
  const { stdout } = await promisify(execFile)(join(pulumiBin(), "pulumi"), ["stack", "export", "--stack", stack], {
    cwd: env.dir,
    env: { ...process.env, ...engineEnv(env.stateDir) },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** Every file under `dir` (a local backend's state, history and backups), as text. */
export function filesText(dir: string): string {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => readFileSync(f, "utf8"))
    .join("\n");
}

/**
 * Changes the project's config in the stack file of `env` as a user would edit it: `change` gets
 * the config without the `<project>:` prefix and edits it in place (a key it deletes goes from the file).
 */
export function editStackConfig(env: EngineStack, stack: string, change: (config: Record<string, unknown>) => void): void {
  const file = join(env.dir, `Pulumi.${stack}.yaml`);
  const doc = parse(readFileSync(file, "utf8")) as { config: Record<string, unknown> };
  const prefix = `${PROJECT}:`;
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc.config)) if (k.startsWith(prefix)) config[k.slice(prefix.length)] = v;
  change(config);
  for (const k of Object.keys(doc.config)) if (k.startsWith(prefix) && !(k.slice(prefix.length) in config)) delete doc.config[k];
  for (const [k, v] of Object.entries(config)) doc.config[`${prefix}${k}`] = v;
  writeFileSync(file, stringify(doc));
}
