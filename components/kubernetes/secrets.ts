// The fleet's Secrets: the registry pull secret and, per service with secret environment keys, the
// Secret its pods read those variables from. Pure: the values come in as arguments, so callers
// hold them as Pulumi secrets and nothing here keeps or logs them.
import type { ServiceSpec } from "../config/schema.ts";
import { serviceEnvironment } from "../services/spec.ts";
import {
  ENVIRONMENT_SECRET_TYPE,
  type EnvironmentSecretRef,
  type Manifest,
  PART_OF,
  PULL_SECRET_NAME,
  PULL_SECRET_TYPE,
  type RegistryLogin,
  selectorLabels,
} from "./model.ts";

/** A Secret object: its type and base64 `data`. */
export type SecretManifest = Manifest & { readonly type: string; readonly data: Record<string, string> };

/** The `.dockerconfigjson` document for a registry login, as Kubernetes expects it (not base64). */
export function dockerConfigJson(server: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  return JSON.stringify({ auths: { [server]: { username, password, auth } } });
}

/** The `kubernetes.io/dockerconfigjson` Secret for a registry login. */
export function pullSecretManifest(namespace: string, registry: RegistryLogin): SecretManifest {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: PULL_SECRET_NAME, namespace, labels: { ...PART_OF } },
    type: PULL_SECRET_TYPE,
    data: {
      ".dockerconfigjson": Buffer.from(dockerConfigJson(registry.server, registry.username, registry.password)).toString("base64"),
    },
  };
}

/** The name of the Secret a service's secret environment variables come from. */
export function environmentSecretName(service: string): string {
  return `${service}-environment`;
}

/**
 * Which of `service`'s environment variables come from its Secret: the secret keys it sets, or
 * undefined when it sets none.
 */
export function environmentSecretRef(service: ServiceSpec, secretKeys: readonly string[] = []): EnvironmentSecretRef | undefined {
  const keys = serviceEnvironment(service, secretKeys)
    .filter((e) => e.secret)
    .map((e) => e.name);
  return keys.length > 0 ? { name: environmentSecretName(service.name), keys } : undefined;
}

/**
 * The `Opaque` Secret holding `service`'s secret environment values (`secretKeys` it sets), base64
 * as `data` wants them; undefined when it sets none. Its pods read each with `secretKeyRef`. Keep
 * the result a Pulumi secret: it holds the values.
 */
export function environmentSecretManifest(
  namespace: string,
  service: ServiceSpec,
  secretKeys: readonly string[] = [],
): SecretManifest | undefined {
  const ref = environmentSecretRef(service, secretKeys);
  if (!ref) return undefined;
  const data = Object.fromEntries(
    serviceEnvironment(service, secretKeys)
      .filter((e) => e.secret)
      .map((e) => [e.name, Buffer.from(e.value).toString("base64")]),
  );
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: ref.name, namespace, labels: selectorLabels(service.name) },
    type: ENVIRONMENT_SECRET_TYPE,
    data,
  };
}
