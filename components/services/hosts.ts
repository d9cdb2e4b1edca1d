// What a deploy mode needs from a host, and the pinning of every service's image. Both modes
// take the same `ServiceHost`s and the same pinned references.
import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { ProxySpec, ServiceSpec } from "../config/index.ts";
import type { Elevation, JetsonHost } from "../host/index.ts";
import { NO_DEVICE, type HostDevice } from "../models/engine.ts";
import type { DigestResolver } from "./registry.ts";
import { ServiceArgsError, digestPinned } from "./spec.ts";

/** A host services are deployed to. */
export interface ServiceHost {
  /** The host's name (resource names, messages). @example "orin-nx-01" */
  readonly name: string;
  /**
   * SSH connection (compose mode runs its script through it); a `JetsonHost`'s `connection`.
   * @example { host: "192.168.1.21", port: 22, user: "ubuntu", privateKey: config.requireSecret("sshKey") }
   */
  readonly connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
  /**
   * How the login user becomes root for the compose script: `root` logs in as root, `sudo` has
   * passwordless sudo, `sudo-password` needs `sudoPassword`.
   * @example "sudo"
   */
  readonly elevation: Elevation;
  /**
   * sudo password, sent on standard input when `elevation` is `sudo-password`. Keep it a Pulumi secret.
   * @default none (no password is sent)
   */
  readonly sudoPassword?: pulumi.Input<string>;
  /**
   * `ssh://user@address:port`: the Docker endpoint of the containers mode.
   * @example "ssh://ubuntu@192.168.1.21:22"
   */
  readonly dockerHost: pulumi.Input<string>;
  /**
   * Deploys wait for it (the host's last bootstrap step), so services start on a provisioned host.
   * @default none (deploys start at once)
   */
  readonly ready?: pulumi.Resource;
  /**
   * What the host is (L4T release, GPU): part of the key of every engine built on it.
   * @default `none` for both (engines are keyed by model, image and settings alone)
   */
  readonly device?: pulumi.Input<HostDevice>;
}

/** A `JetsonHost` as a deploy target. */
export function serviceHostOf(name: string, host: JetsonHost): ServiceHost {
  return {
    name,
    connection: host.connection,
    elevation: host.elevation,
    ...(host.sudoPassword ? { sudoPassword: host.sudoPassword } : {}),
    dockerHost: host.dockerHost,
    ready: host.ready,
    // As the host was when the stack first read it; a new `l4tRelease` in the config reads it again.
    device: host.facts.apply((f) => ({ l4tRelease: f.l4tRelease || NO_DEVICE, gpu: f.gpu || NO_DEVICE })),
  };
}

/**
 * Every service's image pinned by digest, by service name: a `build` service gets its built
 * image's reference (`built[<images entry>]`, already `repo@sha256:…`); an external image with a
 * digest keeps it; one with only a tag is resolved to the digest its registry serves now, so a
 * tag that moved to the same digest deploys nothing.
 */
export function pinServiceImages(
  services: readonly ServiceSpec[],
  built: Readonly<Record<string, pulumi.Input<string>>>,
  resolve: DigestResolver,
): Record<string, pulumi.Output<string>> {
  const out: Record<string, pulumi.Output<string>> = {};
  services.forEach((s, i) => {
    const pinned = pinImage(s, `service "${s.name}"`, `services[${i}].image`, built, resolve);
    if (pinned) out[s.name] = pinned;
  });
  return out;
}

/** The proxy's image pinned by digest, as `pinServiceImages` pins a service's (`proxy.image` or `proxy.build`). */
export function pinProxyImage(
  proxy: Pick<ProxySpec, "image" | "build">,
  built: Readonly<Record<string, pulumi.Input<string>>>,
  resolve: DigestResolver,
): pulumi.Output<string> {
  const pinned = pinImage(proxy, "the proxy", "proxy.image", built, resolve);
  if (!pinned) throw new ServiceArgsError('the proxy has neither "image" nor "build"; expected exactly one of them');
  return pinned;
}

/** `spec`'s built image, its digest, or its tag resolved; `who` and `key` name it in messages. */
function pinImage(
  spec: { readonly image?: string | undefined; readonly build?: string | undefined },
  who: string,
  key: string,
  built: Readonly<Record<string, pulumi.Input<string>>>,
  resolve: DigestResolver,
): pulumi.Output<string> | undefined {
  const { build, image } = spec;
  if (build !== undefined) {
    const ref = built[build];
    if (ref === undefined) throw new ServiceArgsError(`${who} builds image "${build}", which this stack does not build`);
    return pulumi.output(ref).apply((r) => {
      if (digestPinned(r) !== r) throw new ServiceArgsError(`image "${build}" is ${r}; expected repository@sha256:<digest>`);
      return r;
    });
  }
  return image === undefined ? undefined : pulumi.output(digestPinned(image) ?? resolve(image, key));
}

/**
 * Where each service answers on a host reached at `address`, by service name: `address:port/protocol`
 * for every host port it claims (a host-network service its targets, a bridge one its published
 * ports; a port bound to one host address is reached there). A service without ports is left out.
 */
export function serviceEndpointsAt(address: string, services: readonly ServiceSpec[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of services) {
    const endpoints = s.ports.map((p) => {
      const bound = p.hostIp !== undefined && p.hostIp !== "0.0.0.0" && p.hostIp !== "::" ? p.hostIp : address;
      const port = s.network === "host" ? p.target : (p.published ?? p.target);
      return `${bound.includes(":") ? `[${bound}]` : bound}:${port}/${p.protocol}`;
    });
    if (endpoints.length > 0) out[s.name] = endpoints;
  }
  return out;
}
