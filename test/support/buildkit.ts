// A standalone buildkitd (tools/buildkit.sh) and the buildx "remote" builder that @pulumi/docker-build
// builds with, in a temp directory of their own.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./services.ts";

const SCRIPT = join(import.meta.dirname, "..", "..", "tools", "buildkit.sh");

export interface Buildkit {
  /** The builder's name, for `GpuImage`'s `builderName`. */
  readonly builder: string;
  /** The buildx config directory holding the builder: pass it as `BUILDX_CONFIG` to the engine. */
  readonly buildxConfig: string;
  stop(): Promise<void>;
}

/** Starts buildkitd trusting the given plain-HTTP registries (host:port). */
export async function startBuildkit(registries: readonly string[]): Promise<Buildkit> {
  // Short: the daemon's unix socket lives in it (paths are limited to 107 bytes).
  const dir = mkdtempSync(join(tmpdir(), "bk-"));
  const buildxConfig = join(dir, "buildx");
  const { stdout } = await run(SCRIPT, ["start", dir, ...registries], {
    env: { ...process.env, BUILDX_CONFIG: buildxConfig },
    maxBuffer: 16 * 1024 * 1024,
  });
  const builder = stdout.trim().split("\n").pop() ?? "";
  return {
    builder,
    buildxConfig,
    async stop() {
      await run(SCRIPT, ["stop", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts the dev stack's registry and buildkitd (tools/dev-env.sh, no sims) and returns the environment it exports. */
export async function startDevEnv(): Promise<Record<string, string>> {
  const { stdout } = await run(join(import.meta.dirname, "..", "..", "tools", "dev-env.sh"), ["start"], {
    env: { ...process.env, JETSON_DEV_HOSTS: "0" },
    maxBuffer: 16 * 1024 * 1024,
  });
  const line = stdout.trim().split("\n").pop() ?? "";
  const vars = Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] ?? "", m[2] ?? ""]));
  if (!vars["BUILDX_CONFIG"] || !vars["BUILDX_BUILDER"]) throw new Error(`tools/dev-env.sh start printed no builder:\n${stdout}`);
  return vars;
}
