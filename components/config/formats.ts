// Pure validators for the string formats the stack config uses. Each returns an error sentence
// ("what is wrong; what is expected") or undefined when the value is valid, so the schema and
// the policy pack can share them and tests can table them.
import { isIP } from "node:net";
import { parseAll as parseImageReference } from "@swimlane/docker-reference";
import sshpk from "sshpk";

const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** The public-key algorithms an OpenSSH server offers as host keys. */
export const HOST_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"] as const;

/** An IPv4/IPv6 address or an RFC 1123 host name. */
export function addressProblem(value: string): string | undefined {
  if (isIP(value) !== 0 || (HOSTNAME.test(value) && !/^[0-9.]+$/.test(value))) return undefined;
  return `"${value}" is not an IP address or host name; expected e.g. 192.168.1.20, fe80::1 or jetson-01.lab`;
}

/** One host public key in OpenSSH `known_hosts` form: `<type> <base64>` (a trailing comment is allowed). */
export function hostKeyProblem(value: string): string | undefined {
  const expected = `expected one OpenSSH public key such as "ssh-ed25519 AAAAC3Nza..." (ssh-keyscan -t ed25519 HOST prints it)`;
  const [type] = value.trim().split(/\s+/);
  if (!type || !(HOST_KEY_TYPES as readonly string[]).includes(type)) {
    return `key type "${type ?? ""}" is not an SSH host key type; ${expected}`;
  }
  try {
    sshpk.parseKey(value.trim(), "ssh");
    return undefined;
  } catch {
    return `the key data does not decode as a ${type} public key; ${expected}`;
  }
}

/** An OpenSSH or PEM private key. The message never repeats the value: it is a secret. */
export function privateKeyProblem(value: string): string | undefined {
  try {
    sshpk.parsePrivateKey(value, "auto");
    return undefined;
  } catch (err) {
    if (err instanceof Error && err.name === "KeyEncryptedError") {
      return "is encrypted with a passphrase; expected an unencrypted key (ssh-keygen -p -N '' -f KEYFILE removes the passphrase from a copy)";
    }
    return "is not a private key in OpenSSH or PEM form; expected the contents of a key file such as ~/.ssh/id_ed25519";
  }
}

/** The parts of an image reference this project reasons about. */
export interface ImageReference {
  /** Registry host (with port); Docker Hub references normalise to `docker.io`. */
  readonly domain?: string;
  /** Repository path without the registry, e.g. `bluenviron/mediamtx`, `library/nginx`. */
  readonly repository: string;
  readonly tag?: string;
  /** `sha256:<64 hex>` when the reference is pinned by digest. */
  readonly digest?: string;
}

/**
 * A content digest as this project pins images: `sha256:` and 64 lower-case hex digits (what
 * registries report and Docker accepts; Docker refuses upper-case hex). The one copy of the
 * pattern: everything that judges a digest calls `isDigest`, `parseImage` or `isPinnedByDigest`.
 */
export const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** A SHA-256 as `sha256sum` prints it (a model's `sha256`): the hex part of `SHA256_DIGEST`. */
export const SHA256_HEX = new RegExp(`^${SHA256_DIGEST.source.slice("^sha256:".length)}`);

/** Whether `value` is a digest as `SHA256_DIGEST` describes it. */
export function isDigest(value: string): boolean {
  return SHA256_DIGEST.test(value);
}

/**
 * Parses an image reference (`[registry/]repo[:tag][@sha256:...]`) the way Docker does. A digest
 * other than `sha256:<64 lower-case hex digits>` makes the reference invalid (undefined), so every
 * caller agrees on what "pinned by digest" means.
 */
export function parseImage(value: string): ImageReference | undefined {
  try {
    const ref = parseImageReference(value);
    if (!ref.repository) return undefined;
    if (ref.digest && !isDigest(ref.digest)) return undefined;
    return {
      ...(ref.domain ? { domain: ref.domain } : {}),
      repository: ref.repository,
      ...(ref.tag ? { tag: ref.tag } : {}),
      ...(ref.digest ? { digest: ref.digest } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Whether `value` is an image reference pinned by a sha256 digest (a tag beside it is allowed). */
export function isPinnedByDigest(value: string): boolean {
  return parseImage(value)?.digest !== undefined;
}

/** A repository without tag or digest (`[registry/]path`), as Docker parses it. */
export function isRepository(value: string): boolean {
  const ref = parseImage(value);
  return ref !== undefined && ref.tag === undefined && ref.digest === undefined;
}

export function imageReferenceProblem(value: string): string | undefined {
  return parseImage(value)
    ? undefined
    : `"${value}" is not a valid image reference; expected [registry/]repository[:tag][@sha256:<64 hex digits>], lower-case`;
}

/**
 * Why an image reference is not pinned well enough for a production stack, or undefined.
 * A digest pins exactly; a tag other than `latest` is accepted (the deploy resolves it to a digest).
 */
export function unpinnedImageProblem(value: string): string | undefined {
  const ref = parseImage(value);
  if (!ref || ref.digest) return undefined;
  if (!ref.tag)
    return `"${value}" has no tag or digest; production stacks pin images: expected repository:version or repository@sha256:<digest>`;
  if (ref.tag === "latest")
    return `"${value}" uses the tag "latest"; production stacks pin images: expected an exact version tag or @sha256:<digest>`;
  return undefined;
}

/** Base images of production builds must be pinned by digest: a tag can move under a rebuild. */
export function undigestedImageProblem(value: string): string | undefined {
  const ref = parseImage(value);
  if (!ref || ref.digest) return undefined;
  return `"${value}" is not pinned by digest; production base images are expected as repository:tag@sha256:<digest>`;
}

/** A Docker size such as `2g`, `512m`, `10m`, `1024`. */
export const SIZE = /^[0-9]+(\.[0-9]+)?[bkmg]?$/i;
/** A Docker duration such as `30s`, `1m30s`, `500ms`. */
export const DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/;

/** Bytes per unit of a Docker size: Docker's units are binary (`1k` is 1024 bytes). */
export const SIZE_UNIT_BYTES: Readonly<Record<"b" | "k" | "m" | "g", number>> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Bytes of a Docker size (`2g`, `512m`, `1.5g`, `1024`), rounded to a whole byte, or undefined
 * when `size` is not one (see `SIZE`). The one parser of sizes: compose, containers and
 * Kubernetes quantities all start from it.
 */
export function parseSize(size: string): number | undefined {
  if (!SIZE.test(size)) return undefined;
  const unit = size.slice(-1).toLowerCase();
  const factor = SIZE_UNIT_BYTES[unit as keyof typeof SIZE_UNIT_BYTES];
  const number = factor === undefined ? size : size.slice(0, -1);
  return Math.round(Number(number) * (factor ?? 1));
}

const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g;
const DURATION_UNIT_SECONDS: Readonly<Record<string, number>> = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * Seconds of a Docker duration (`1m30s` is 90, `500ms` is 0.5), or undefined when `duration` is
 * not one (see `DURATION`). The one parser of durations.
 */
export function parseDuration(duration: string): number | undefined {
  if (!DURATION.test(duration)) return undefined;
  let total = 0;
  for (const m of duration.matchAll(DURATION_PART)) total += Number(m[1]) * (DURATION_UNIT_SECONDS[m[2] ?? "s"] ?? 1);
  return total;
}
/** A Debian package version (`27.5.1`, `5:27.5.1-1~ubuntu.22.04~jammy`, `1.17.8-1`). */
export const DEBIAN_VERSION = /^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$/;
/** A name usable as a host, service or image name and inside resource names: a DNS label. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
