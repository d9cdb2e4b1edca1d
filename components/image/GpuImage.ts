// One container image built with BuildKit (through @pulumi/docker-build), pushed to a registry and
// pinned by digest: services deploy `ref` (`repository@sha256:…`), so hosts run exactly this build.
// The provider hashes the build context, so an unchanged context builds and pushes nothing and
// `pulumi preview` shows no diff; layer cache comes from and goes to the registry.
import * as dockerbuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { isDigest, isRepository, parseImage } from "../config/index.ts";

/** Where the image is pushed, and the credentials to push it with. */
export interface GpuImageRegistry {
  /** Registry host (and port), as in the repository. @example "registry.example.com" */
  readonly address: pulumi.Input<string>;
  /**
   * User name for the push and the layer cache.
   * @default none (anonymous)
   * @example "fleet-ci"
   */
  readonly username?: pulumi.Input<string>;
  /**
   * Password or token, stored as a secret: it never appears in state or output in clear text.
   * @default none (anonymous)
   * @example config.requireSecret("registryPassword")
   */
  readonly password?: pulumi.Input<string>;
}

export interface GpuImageArgs {
  /**
   * The build context directory.
   * @example "images/inference"
   */
  readonly context: string;
  /**
   * The Dockerfile.
   * @default "<context>/Dockerfile"
   */
  readonly dockerfile?: string;
  /**
   * The stage to build.
   * @default the Dockerfile's last stage
   * @example "runtime"
   */
  readonly target?: string;
  /**
   * Platforms to build for: Jetsons are `linux/arm64` (emulated through qemu-user-static on x86
   * builders); a dev stack on an x86 machine builds `linux/amd64`.
   * @default ["linux/arm64"]
   */
  readonly platforms?: readonly dockerbuild.Platform[];
  /**
   * Build arguments, such as digest-pinned base images. Not for secrets: build arguments end up
   * in the image's history.
   * @default {}
   * @example { BUILDER_BASE: "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-devel@sha256:…" }
   */
  readonly buildArgs?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * The repository to push to, without tag or digest.
   * @example "registry.example.com/fleet/inference"
   */
  readonly repository: string;
  /**
   * The tag pushed alongside the digest, so people can find a stack's newest build by name;
   * deployments use the digest (`ref`), never the tag.
   * @default the stack's name (never `latest`)
   * @example "1.4.2"
   */
  readonly tag?: string;
  /** Registry credentials for the push and the layer cache. @default none (anonymous push) */
  readonly registry?: GpuImageRegistry;
  /**
   * The name of a buildx builder (an instance in `$BUILDX_CONFIG`) to build with, e.g. a `remote`
   * builder pointing at a buildkitd. Required: without one the provider creates a
   * docker-container builder that pulls `moby/buildkit` from the internet, which fails on
   * machines without internet access and silently differs from the builder CI uses.
   * @example "jetson-fleet"
   */
  readonly builderName: pulumi.Input<string>;
  /**
   * Registry reference of the layer cache, read before and written (mode max: every stage's
   * layers) after each build; `false` builds without a cache.
   * @default "<repository>:buildcache"
   */
  readonly cacheRef?: string | false;
  /**
   * Build secrets by id, for `RUN --mount=type=secret,id=<id>` (a package-index token, say): mounted
   * only while that step runs, never written to a layer, the image history or the state in clear.
   * @default {}
   * @example { pip_token: config.requireSecret("pipToken") }
   */
  readonly secrets?: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Build during `pulumi preview` too (without pushing): turn on in pull-request checks so a
   * preview fails on a Dockerfile that does not build.
   * @default false
   */
  readonly buildOnPreview?: boolean;
}

export const DEFAULT_PLATFORMS: readonly dockerbuild.Platform[] = ["linux/arm64"];
export const CACHE_TAG = "buildcache";

/** Errors a user fixes in the component's arguments. */
export class GpuImageArgsError extends pulumi.RunError {}

const TAG = /^[\w][\w.-]{0,127}$/;

/** Checks that `repository` is `[host[:port]/]path` with no tag or digest (Docker's grammar); returns it. */
export function validateRepository(repository: string): string {
  if (isRepository(repository)) return repository;
  const ref = parseImage(repository);
  if (ref?.tag !== undefined || ref?.digest !== undefined) {
    throw new GpuImageArgsError(
      `GpuImage repository "${repository}" has a tag or digest; expected a repository alone (set the tag with "tag").`,
    );
  }
  throw new GpuImageArgsError(
    `GpuImage repository "${repository}" is not a valid repository; expected [host[:port]/]name, e.g. "registry.example.com/fleet/inference".`,
  );
}

/** The tag `args` push: theirs, else the stack's name. */
function tagOf(args: GpuImageArgs): string {
  return args.tag ?? pulumi.getStack();
}

/** `repository:tag`, after checking the tag. */
export function taggedRef(repository: string, tag: string): string {
  if (!TAG.test(tag))
    throw new GpuImageArgsError(`GpuImage tag "${tag}" is not a valid tag; expected letters, digits, "_", "." or "-" (at most 128).`);
  return `${validateRepository(repository)}:${tag}`;
}

/** `repository@sha256:…`: the reference that pins exactly one pushed build. */
export function digestRef(repository: string, digest: string): string {
  if (!isDigest(digest)) throw new Error(`"${digest}" is not a sha256 digest`);
  return `${repository}@${digest}`;
}

/** The default layer-cache reference of a repository. */
export function defaultCacheRef(repository: string): string {
  return `${repository}:${CACHE_TAG}`;
}

/** The `dockerbuild.Image` inputs for `args`: validated and defaulted once, here. */
export function imageArgs(args: GpuImageArgs): dockerbuild.ImageArgs {
  const repository = validateRepository(args.repository);
  const tag = taggedRef(repository, tagOf(args));
  const cacheRef = args.cacheRef === undefined ? defaultCacheRef(repository) : args.cacheRef;
  const platforms = args.platforms ?? DEFAULT_PLATFORMS;
  if (platforms.length === 0)
    throw new GpuImageArgsError('GpuImage platforms is empty; expected at least one platform, e.g. ["linux/arm64"].');
  const registry = args.registry;
  return {
    builder: { name: args.builderName },
    context: { location: args.context },
    dockerfile: { location: args.dockerfile ?? `${args.context}/Dockerfile` },
    ...(args.target ? { target: args.target } : {}),
    platforms: [...platforms],
    ...(args.buildArgs ? { buildArgs: { ...args.buildArgs } } : {}),
    ...(args.secrets && Object.keys(args.secrets).length > 0 ? { secrets: pulumi.secret({ ...args.secrets }) } : {}),
    tags: [tag],
    // A registry export rather than `push: true` (a required input, so set false): the provider (0.0.22) counts the export that
    // `push` expands to as an unknown input and then never builds on preview. During previews it
    // turns the export's push off itself, so a preview build checks the Dockerfile without pushing.
    push: false,
    exports: [{ registry: { push: true } }],
    buildOnPreview: args.buildOnPreview ?? false,
    ...(cacheRef ? { cacheFrom: [{ registry: { ref: cacheRef } }], cacheTo: [{ registry: { ref: cacheRef, mode: "max" } }] } : {}),
    ...(registry
      ? {
          registries: [
            {
              address: registry.address,
              ...(registry.username !== undefined ? { username: registry.username } : {}),
              ...(registry.password !== undefined ? { password: pulumi.secret(registry.password) } : {}),
            },
          ],
        }
      : {}),
  };
}

/** What a GpuImage registers as its inputs: what the policy pack checks, never the password itself. */
export interface GpuImageInputs {
  readonly repository: string;
  readonly tag: string;
  readonly registry?: {
    readonly address: pulumi.Input<string>;
    readonly username?: pulumi.Input<string>;
    /** Where the password came from: a Pulumi secret, plain text, or none given. */
    readonly passwordSource: pulumi.Input<"secret" | "plaintext" | "none">;
  };
}

/** The registered inputs of a GpuImage for `args` (see `GpuImageInputs`). */
export function gpuImageInputs(args: GpuImageArgs): GpuImageInputs {
  const registry = args.registry;
  const password = registry?.password;
  return {
    repository: args.repository,
    tag: tagOf(args),
    ...(registry
      ? {
          registry: {
            address: registry.address,
            ...(registry.username !== undefined ? { username: registry.username } : {}),
            // Policies see secrets unwrapped, so the secretness is recorded here, where it is known.
            passwordSource:
              password === undefined
                ? "none"
                : pulumi.isSecret(pulumi.output(password)).then((secret) => (secret ? "secret" : "plaintext")),
          },
        }
      : {}),
  };
}

export class GpuImage extends pulumi.ComponentResource {
  /** `repository@sha256:…`: what services deploy. */
  public readonly ref: pulumi.Output<string>;
  /** The pushed manifest's digest, `sha256:…` (as the registry reports it). */
  public readonly digest: pulumi.Output<string>;
  /** The underlying build. */
  public readonly image: dockerbuild.Image;

  constructor(name: string, args: GpuImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("jetson:image:GpuImage", name, gpuImageInputs(args), opts);
    const inputs = imageArgs(args);
    this.image = new dockerbuild.Image(`${name}-build`, inputs, { parent: this });
    this.digest = this.image.digest;
    this.ref = this.image.digest.apply((d) => digestRef(args.repository, d));
    this.registerOutputs({ ref: this.ref, digest: this.digest });
  }
}
