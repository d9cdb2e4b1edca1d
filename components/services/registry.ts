// Resolves a tagged image reference to the digest its registry serves now (Registry HTTP API v2:
// HEAD of the manifest, with the bearer-token or basic-auth challenge the registry answers).
// The compose mode pins tags with it, so a compose file holds digests only and a tag that moved
// to the same digest changes nothing. Every request of one resolution shares one deadline: a
// registry that accepts and never answers fails `pulumi preview` in seconds, naming the registry
// and the stack config key, instead of hanging it.
import { parseImage } from "../config/index.ts";
import { ServiceArgsError, withDigest } from "./spec.ts";

/** Credentials for one registry. */
export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Resolves `repo:tag` to `repo@sha256:…`. `key` is the stack config key the reference comes from
 * (`services[1].image`), for messages.
 */
export type DigestResolver = (ref: string, key?: string) => Promise<string>;

/** How long one resolution (every request it makes, bodies included) may take. */
export const REGISTRY_TIMEOUT_SECONDS = 30;

/** How a resolver reaches registries. */
export interface RegistryResolverOptions {
  /** Seconds one resolution may take before it fails naming the registry. @default 30 (`REGISTRY_TIMEOUT_SECONDS`) */
  readonly timeoutSeconds?: number;
}

const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
].join(", ");

/** Docker's own name for Docker Hub, and where its registry API answers. */
const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = `registry-1.${DOCKER_HUB}`;

/**
 * Where a registry's API answers (`scheme://host[:port]`, without `/v2`): loopback registries speak
 * plain HTTP, as Docker allows; every other one HTTPS.
 * @example registryBaseUrl("127.0.0.1:5000") // "http://127.0.0.1:5000"
 */
export function registryBaseUrl(registry: string): string {
  const api = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  const host = api.replace(/:[0-9]+$/, "");
  const scheme = host === "localhost" || host === "127.0.0.1" || host === "[::1]" ? "http" : "https";
  return `${scheme}://${api}`;
}

/** The registry API URL of a reference's manifest, and its registry. */
export function manifestUrl(ref: string): { url: string; registry: string } {
  const parsed = parseImage(ref);
  if (!parsed || !parsed.tag) throw new ServiceArgsError(`"${ref}" has no tag to resolve; expected repository:tag`);
  const registry = parsed.domain ?? DOCKER_HUB;
  return { url: `${registryBaseUrl(registry)}/v2/${parsed.repository}/manifests/${parsed.tag}`, registry };
}

function challenge(header: string): { scheme: string; params: Record<string, string> } {
  const [scheme = "", ...rest] = header.split(" ");
  const params = Object.fromEntries([...rest.join(" ").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? "", m[2] ?? ""]));
  return { scheme: scheme.toLowerCase(), params };
}

/**
 * A resolver using `credentials[registry]` when a registry asks for them (the stack's
 * `registry.server` is the registry it has credentials for). Each resolution fails within
 * `timeoutSeconds`, naming the registry and the config key.
 */
export function registryResolver(
  credentials: Readonly<Record<string, RegistryCredentials>> = {},
  options: RegistryResolverOptions = {},
): DigestResolver {
  const seconds = options.timeoutSeconds ?? REGISTRY_TIMEOUT_SECONDS;
  return async (ref, key) => {
    const { url, registry } = manifestUrl(ref);
    const creds = credentials[registry];
    const what = `cannot resolve ${ref}${key !== undefined ? ` (${key})` : ""} to a digest`;
    const where = `its registry ${registry}${creds ? " (registry.server)" : ""}`;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}` : undefined;
    // One deadline for the whole resolution: the challenge, the token and the body reads too.
    const signal = AbortSignal.timeout(seconds * 1000);
    const timedOut = () =>
      new ServiceArgsError(
        `${what}: ${where} did not answer within ${seconds}s; expected a registry that answers, or the image pinned by digest (repository@sha256:<digest>)`,
      );
    // A registry that cannot be reached is the user's to fix: one sentence, not a fetch stack trace.
    const reach = async (target: string | URL, init: RequestInit): Promise<Response> => {
      try {
        return await fetch(target, { ...init, signal });
      } catch (err) {
        if (signal.aborted) throw timedOut();
        const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
        throw new ServiceArgsError(
          `${what}: ${where} cannot be reached (${cause}); expected a registry this machine reaches, or the image pinned by digest`,
        );
      }
    };
    const head = (authorization?: string) =>
      reach(url, { method: "HEAD", headers: { accept: MANIFEST_TYPES, ...(authorization ? { authorization } : {}) } });
    let res = await head();
    if (res.status === 401) {
      const c = challenge(res.headers.get("www-authenticate") ?? "");
      if (c.scheme === "bearer" && c.params["realm"]) {
        const tokenUrl = new URL(c.params["realm"]);
        for (const param of ["service", "scope"]) if (c.params[param]) tokenUrl.searchParams.set(param, c.params[param]);
        const tokenRes = await reach(tokenUrl, { headers: basic ? { authorization: basic } : {} });
        let body: { token?: string; access_token?: string };
        try {
          body = (await tokenRes.json()) as { token?: string; access_token?: string };
        } catch {
          if (signal.aborted) throw timedOut();
          throw new ServiceArgsError(
            `${what}: ${where} answered its token request with HTTP ${tokenRes.status} and no token; expected a registry that issues pull tokens`,
          );
        }
        res = await head(`Bearer ${body.token ?? body.access_token ?? ""}`);
      } else if (basic) {
        res = await head(basic);
      }
    }
    const digest = res.headers.get("docker-content-digest");
    if (res.status === 401 || res.status === 403) {
      throw new ServiceArgsError(
        creds
          ? `${what}: ${registry} refused the stack's credentials (HTTP ${res.status}); expected registry.username and registry.password that may pull it`
          : `${what}: ${registry} asks for credentials (HTTP ${res.status}); expected it as registry.server with registry.username and registry.password`,
      );
    }
    if (!res.ok || !digest) {
      throw new ServiceArgsError(`${what}: the registry answered HTTP ${res.status}; expected the tag to exist`);
    }
    return withDigest(ref, digest);
  };
}
