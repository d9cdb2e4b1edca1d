// Image builds for the integration tier: the local L4T base stand-ins (images/base/build.sh), BuildKit
// builds with Debian's Docker client, and containers started from the built images.
import { join } from "node:path";
import { DOCKER, docker, run, type AuthRegistry, type Registry } from "./services.ts";

export const IMAGES_DIR = join(import.meta.dirname, "..", "..", "images");

export interface BaseImages {
  /** Stand-in for the L4T TensorRT devel base: compilers, make, Python 3. */
  readonly devel: string;
  /** Stand-in for the L4T TensorRT runtime base: Python 3, no compilers. */
  readonly runtime: string;
  readonly seconds: number;
}

/**
 * Runs images/base/build.sh (a cold run makes the Debian minbase image and both stand-ins) for a
 * platform, by default the machine's own; linux/arm64 on x86 builds under qemu (minutes).
 */
export async function buildBaseImages(platform?: "linux/amd64" | "linux/arm64"): Promise<BaseImages> {
  const start = performance.now();
  const { stdout } = await run(join(IMAGES_DIR, "base", "build.sh"), platform ? [platform] : [], { maxBuffer: 16 * 1024 * 1024 });
  const vars = Object.fromEntries([...stdout.matchAll(/^(\w+)=(\S+)$/gm)].map((m) => [m[1] ?? "", m[2] ?? ""]));
  const devel = vars.L4T_SIM_DEVEL;
  const runtime = vars.L4T_SIM_RUNTIME;
  if (!devel || !runtime) throw new Error(`images/base/build.sh printed no L4T_SIM_DEVEL/L4T_SIM_RUNTIME:\n${stdout}`);
  return { devel, runtime, seconds: (performance.now() - start) / 1000 };
}

/** The inference Dockerfile's base-image build arguments. */
export type BaseImageArgs = Readonly<Record<"BUILDER_BASE" | "RUNTIME_BASE", string>>;

/**
 * Builds a platform's stand-in bases (by default the machine's) and copies them into `registry` as
 * `l4t-sim:devel-<arch>` and `l4t-sim:runtime-<arch>`: buildkitd sees no dockerd images, only
 * registries. Returns the build arguments naming them.
 */
export async function pushBaseImages(registry: Registry | AuthRegistry, platform?: "linux/amd64" | "linux/arm64"): Promise<BaseImageArgs> {
  const bases = await buildBaseImages(platform);
  const arch = (platform ?? `linux/${process.arch === "arm64" ? "arm64" : "amd64"}`).split("/")[1] ?? "";
  const creds = "username" in registry ? ["--dest-creds", `${registry.username}:${registry.password}`] : [];
  const push = async (image: string, stage: string): Promise<string> => {
    const ref = `${registry.server}/l4t-sim:${stage}-${arch}`;
    await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", ...creds, `docker-daemon:${image}`, `docker://${ref}`]);
    return ref;
  };
  return { BUILDER_BASE: await push(bases.devel, "devel"), RUNTIME_BASE: await push(bases.runtime, "runtime") };
}

export interface BuildOptions {
  readonly tag: string;
  readonly target?: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
}

export interface BuildResult {
  readonly seconds: number;
  /** BuildKit's plain progress output (it writes to stderr). */
  readonly log: string;
}

/** `docker build` with BuildKit and host networking; rejects with the build's log when it fails. */
export async function dockerBuild(context: string, options: BuildOptions): Promise<BuildResult> {
  const args = ["build", "--network", "host", "--progress", "plain", "-t", options.tag];
  if (options.target) args.push("--target", options.target);
  for (const [k, v] of Object.entries(options.buildArgs ?? {})) args.push("--build-arg", `${k}=${v}`);
  const start = performance.now();
  try {
    const { stdout, stderr } = await run(DOCKER, [...args, context], {
      env: { ...process.env, DOCKER_BUILDKIT: "1" },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { seconds: (performance.now() - start) / 1000, log: stdout + stderr };
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw Object.assign(new Error(`docker build ${context} failed:\n${(err.stdout ?? "") + (err.stderr ?? "")}`), {
      log: (err.stdout ?? "") + (err.stderr ?? ""),
    });
  }
}

/** The parts of `docker image inspect` the tests read. */
export interface ImageInfo {
  readonly Id: string;
  readonly Size: number;
  readonly Config: { readonly User: string; readonly Labels: Record<string, string> | null; readonly Healthcheck?: { Test: string[] } };
  readonly RootFS: { readonly Layers: string[] };
}

export async function inspectImage(ref: string): Promise<ImageInfo> {
  const { stdout } = await docker("image", "inspect", ref);
  const [info] = JSON.parse(stdout) as ImageInfo[];
  if (!info) throw new Error(`no image ${ref}`);
  return info;
}

/** Removes images by reference; missing ones are fine. */
export async function removeImages(...refs: string[]): Promise<void> {
  for (const ref of refs) await docker("image", "rm", ref).catch(() => undefined);
}

export interface Container {
  readonly id: string;
  stop(): Promise<void>;
}

/** `docker run -d ARGS...`; stop() removes the container (and its anonymous volumes). */
export async function startContainer(args: readonly string[]): Promise<Container> {
  const { stdout } = await docker("run", "-d", ...args);
  const id = stdout.trim();
  return { id, stop: async () => void (await docker("rm", "-f", "-v", id).catch(() => undefined)) };
}

/** Polls `probe` every 200 ms until it returns true; rejects after `timeoutMs`, naming `what`. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen in ${timeoutMs} ms`);
}
