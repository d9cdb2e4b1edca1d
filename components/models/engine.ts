// Models and engines as the hosts hold them: where a model's content and each engine live on a
// host, the trtexec arguments an engine's settings give, and the engine's key (the content hash
// of everything the engine depends on). The key is computed here for the per-host targets and by
// the Kubernetes init container on the node (`ENGINE_KEY_FORMAT`), so both find the same engine.
import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { EngineSettings, ModelSpec, ServiceSpec } from "../config/index.ts";
import { parseDuration, parseImage, parseSize } from "../config/index.ts";
import { registryBaseUrl } from "../services/registry.ts";

/** Where a host keeps the models of each stack, by content: `<root>/<project>/sha256/<hex>`. */
export const MODEL_STORE_ROOT = "/var/lib/jetson-fleet/models";
/** Where a host keeps each stack's engines: `<root>/<project>/<service>/<model>/<key>/`. */
export const ENGINE_ROOT = "/var/lib/jetson-fleet/engines";
/** The engine's file name in its key directory. */
export const ENGINE_FILE = "model.engine";
/** The build record's file name in its key directory (model, SHA-256, key, image, settings); mounted at `<path>.json`. */
export const ENGINE_RECORD = "engine.json";
/** The first line of the text an engine key hashes; a new line format gets a new version. */
export const ENGINE_KEY_FORMAT = "jetson-fleet-engine/1";
/** Hex digits of an engine key. */
export const ENGINE_KEY_LENGTH = 16;
/** What a host's identity is in a key when it has no L4T release or no device tree (not a Jetson). */
export const NO_DEVICE = "none";
/** The OCI artifact type of a model pushed from a `file` source. */
export const MODEL_ARTIFACT_TYPE = "application/vnd.jetson-fleet.model.v1";

/**
 * The trtexec arguments an engine's settings give, in a fixed order (the build adds `--onnx` and
 * `--saveEngine`): precision, the shape profile, the workspace, `--skipInference` (the build only
 * builds), then `flags` as written.
 * @example trtexecArgs({ precision: "fp16", workspace: "1g", flags: [], ... }) // ["--fp16", "--memPoolSize=workspace:1024M", "--skipInference"]
 */
export function trtexecArgs(settings: Pick<EngineSettings, "precision" | "shapes" | "workspace" | "flags">): string[] {
  const args: string[] = [];
  if (settings.precision !== "fp32") args.push(`--${settings.precision}`);
  if (settings.shapes) {
    const { min, opt, max } = settings.shapes;
    const profile = (shapes: Readonly<Record<string, string>>) =>
      Object.keys(min)
        .map((input) => `${input}:${shapes[input] ?? ""}`)
        .join(",");
    args.push(`--minShapes=${profile(min)}`, `--optShapes=${profile(opt)}`, `--maxShapes=${profile(max)}`);
  }
  if (settings.workspace !== undefined) {
    const bytes = parseSize(settings.workspace);
    if (bytes === undefined) throw new Error(`engine workspace "${settings.workspace}" is not a size`);
    args.push(`--memPoolSize=workspace:${Math.max(1, Math.floor(bytes / 1024 ** 2))}M`);
  }
  args.push("--skipInference", ...settings.flags);
  return args;
}

/** What a host is, as an engine depends on it. */
export interface HostDevice {
  /** The host's L4T release, or `NO_DEVICE`. @example "36.4.3" */
  readonly l4tRelease: string;
  /** The host's GPU (its device tree's `compatible` entries joined with ","), or `NO_DEVICE`. @example "nvidia,p3768-0000+p3767-0000,nvidia,p3767-0000,nvidia,tegra234" */
  readonly gpu: string;
}

/** Everything an engine depends on: a change in any of them is a new engine. */
export interface EngineKeyInputs {
  /** The ONNX file's SHA-256 (hex). */
  readonly modelSha256: string;
  /** The image that builds and loads the engine, `repository@sha256:…` (only its digest counts). */
  readonly image: string;
  /** The host's L4T release (`36.4.3`), or `NO_DEVICE`. */
  readonly l4tRelease: string;
  /** The host's GPU (its device tree's `compatible` entries joined with ","), or `NO_DEVICE`. */
  readonly gpu: string;
  /** The trtexec arguments (`trtexecArgs`). */
  readonly args: readonly string[];
}

/** The digest of a pinned image reference (`sha256:…`); the same image under another name is the same engine. */
export function imageDigest(image: string): string {
  const digest = parseImage(image)?.digest;
  if (digest === undefined) throw new Error(`image "${image}" is not pinned by digest; expected repository@sha256:<digest>`);
  return digest;
}

/** The text an engine key hashes: `ENGINE_KEY_FORMAT`, then one `name=value` line each. */
export function engineKeyText(inputs: EngineKeyInputs): string {
  return [
    ENGINE_KEY_FORMAT,
    `model=${inputs.modelSha256}`,
    `image=${imageDigest(inputs.image)}`,
    `l4t=${inputs.l4tRelease || NO_DEVICE}`,
    `gpu=${inputs.gpu || NO_DEVICE}`,
    `args=${inputs.args.join(" ")}`,
    "",
  ].join("\n");
}

/** The engine's key: the first `ENGINE_KEY_LENGTH` hex digits of the SHA-256 of `engineKeyText`. */
export function engineKey(inputs: EngineKeyInputs): string {
  return createHash("sha256").update(engineKeyText(inputs)).digest("hex").slice(0, ENGINE_KEY_LENGTH);
}

/** A model's content on a host. */
export function modelBlobPath(project: string, sha256: string): string {
  return posix.join(MODEL_STORE_ROOT, project, "sha256", sha256);
}

/** An engine's key directory on a host (it holds `ENGINE_FILE` and `ENGINE_RECORD`). */
export function engineDirectory(project: string, service: string, model: string, key: string): string {
  return posix.join(ENGINE_ROOT, project, service, model, key);
}

/** One engine a service mounts. */
export interface EngineMount {
  /** The model's name. @example "detector" */
  readonly model: string;
  /** Where the service finds the engine (`services[].models[].path`). @example "/models/model.engine" */
  readonly path: string;
  /** The engine's key directory on the host (`engineDirectory`). */
  readonly directory: string;
}

/** The read-only bind mounts of a service's engines: each engine at its path, its record at `<path>.json`. */
export function engineVolumes(mounts: readonly EngineMount[]): ServiceSpec["volumes"] {
  return mounts.flatMap((m) => [
    { type: "bind" as const, source: posix.join(m.directory, ENGINE_FILE), target: m.path, readOnly: true },
    { type: "bind" as const, source: posix.join(m.directory, ENGINE_RECORD), target: `${m.path}.json`, readOnly: true },
  ]);
}

/** `service` with its engines' mounts after its own volumes. */
export function withEngineVolumes(service: ServiceSpec, mounts: readonly EngineMount[] | undefined): ServiceSpec {
  return mounts && mounts.length > 0 ? { ...service, volumes: [...service.volumes, ...engineVolumes(mounts)] } : service;
}

/** Where hosts fetch a model from: the registry's API base URL and the repository's path in it. */
export interface ModelLocation {
  /** `scheme://host[:port]`. @example "http://127.0.0.1:5000" */
  readonly registryUrl: string;
  /** The registry it is in, `host[:port]`. @example "127.0.0.1:5000" */
  readonly registry: string;
  /** The repository's path in the registry. @example "models/detector" */
  readonly repository: string;
}

/** Where a model is (an artifact source) or is pushed to (a file source: `repository`, or `<registry>/models/<name>`). */
export function modelLocation(model: Pick<ModelSpec, "name" | "source" | "repository">, registry: string | undefined): ModelLocation {
  const ref = model.source.artifact ?? model.repository ?? (registry !== undefined ? `${registry}/models/${model.name}` : undefined);
  const parsed = ref === undefined ? undefined : parseImage(ref);
  if (parsed?.domain === undefined)
    throw new Error(`model "${model.name}" has no registry to be fetched from; expected registry.server in the stack config`);
  return { registryUrl: registryBaseUrl(parsed.domain), registry: parsed.domain, repository: parsed.repository };
}

/** The tag a `file` model is pushed under: its name and the start of its SHA-256, so each content has its own. */
export function modelTag(model: Pick<ModelSpec, "name" | "sha256">): string {
  return `${model.name}-${model.sha256.slice(0, 12)}`;
}

/** An engine build's time limit in whole seconds (`engine.timeout`). */
export function engineTimeoutSeconds(settings: Pick<EngineSettings, "timeout">): number {
  const seconds = parseDuration(settings.timeout);
  if (seconds === undefined) throw new Error(`engine timeout "${settings.timeout}" is not a duration`);
  return Math.max(1, Math.ceil(seconds));
}
