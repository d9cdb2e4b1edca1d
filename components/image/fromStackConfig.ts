// From the stack config's `images[]` to GpuImage arguments, and the build environment the program
// reads: which buildx builder builds, and whether previews build too. Both are machine or CI
// settings rather than stack settings, so they come from the environment, checked before any
// resource is registered.
import { posix } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { ImageSpec, RegistrySpec } from "../config/index.ts";
import { GpuImageArgsError, type GpuImageArgs } from "./GpuImage.ts";

/** The build settings a program takes from its environment. */
export interface BuildEnvironment {
  /** The buildx builder (`BUILDX_BUILDER`, the variable buildx itself reads). */
  readonly builderName: string;
  /** `JETSON_FLEET_BUILD_ON_PREVIEW`: build Dockerfiles during `pulumi preview` (pull-request checks). */
  readonly buildOnPreview: boolean;
}

const BOOLEAN: Readonly<Record<string, boolean>> = { "": false, "0": false, false: false, "1": true, true: true };

/**
 * Reads the build environment for a stack that builds `imageCount` images; throws a
 * `GpuImageArgsError` naming the stack file and variable when a setting is missing or malformed.
 * Without images nothing is required.
 */
export function readBuildEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  stackFile: string,
  imageCount: number,
): BuildEnvironment {
  const problems: string[] = [];
  const flag = env["JETSON_FLEET_BUILD_ON_PREVIEW"] ?? "";
  const buildOnPreview = BOOLEAN[flag.toLowerCase()];
  if (buildOnPreview === undefined)
    problems.push(`JETSON_FLEET_BUILD_ON_PREVIEW is ${JSON.stringify(flag)}; expected true or false (or unset)`);
  const builderName = env["BUILDX_BUILDER"] ?? "";
  if (imageCount > 0 && builderName === "")
    problems.push(
      `${stackFile}: jetson-fleet:images: builds ${imageCount} image(s) but BUILDX_BUILDER is not set; expected the name of a buildx builder ` +
        "(tools/buildkit.sh start prints one; its BUILDX_CONFIG must be exported too)",
    );
  if (problems.length > 0) throw new GpuImageArgsError(`invalid build environment; nothing was changed:\n${problems.join("\n")}`);
  return { builderName, buildOnPreview: buildOnPreview ?? false };
}

/**
 * The GpuImage arguments for one `images[]` entry. Paths stay relative to the project directory,
 * so the state (and the provider's context hash) is the same on every machine; base images become
 * build arguments; the repository defaults to `<registry.server>/<name>`.
 */
export function gpuImageArgs(spec: ImageSpec, registry: RegistrySpec | undefined, build: BuildEnvironment): GpuImageArgs {
  const repository = spec.repository ?? (registry ? `${registry.server}/${spec.name}` : undefined);
  if (repository === undefined)
    throw new GpuImageArgsError(`image "${spec.name}" has no repository and no registry is configured; expected one of them`);
  const buildArgs = { ...spec.buildArgs, ...spec.baseImages };
  return {
    context: spec.context,
    dockerfile: posix.join(spec.context, spec.dockerfile),
    ...(spec.target !== undefined ? { target: spec.target } : {}),
    platforms: spec.platforms,
    ...(Object.keys(buildArgs).length > 0 ? { buildArgs } : {}),
    repository,
    builderName: build.builderName,
    buildOnPreview: build.buildOnPreview,
    ...(registry
      ? {
          registry: {
            address: registry.server,
            ...(registry.username !== undefined ? { username: registry.username } : {}),
            // The loader refuses a password that is not a secret in the stack file.
            ...(registry.password !== undefined ? { password: pulumi.secret(registry.password) } : {}),
          },
        }
      : {}),
  };
}
