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

/** Parses an image reference (`[registry/]repo[:tag][@sha256:...]`) the way Docker does. */
export function parseImage(value: string): ImageReference | undefined {
  try {
    const ref = parseImageReference(value);
    if (!ref.repository) return undefined;
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
/** A Debian package version (`27.5.1`, `5:27.5.1-1~ubuntu.22.04~jammy`, `1.17.8-1`). */
export const DEBIAN_VERSION = /^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$/;
/** A name usable as a host, service or image name and inside resource names: a DNS label. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
