// The fleet as YAML: one multi-document stream, for `kubectl apply -f -` or a GitOps repository.
import { stringify } from "yaml";
import type { FleetManifests, Manifest, RegistryLogin } from "./model.ts";
import { pullSecretManifest } from "./secrets.ts";

/**
 * The fleet's objects in apply order; the pull secret when a login is given (it then holds the
 * password, base64 and not encrypted: for `kubectl apply`, not for a git repository). The Secrets
 * of services' secret environment values are never in it: create them apart, from the values
 * (`environmentSecretManifest`), as a GitOps repository's secret tooling does.
 */
export function manifestList(fleet: FleetManifests, login?: RegistryLogin): Manifest[] {
  return [
    fleet.namespace,
    ...(fleet.runtimeClass ? [fleet.runtimeClass] : []),
    ...(login && fleet.pullSecretName ? [pullSecretManifest(fleet.namespace.metadata.name, login)] : []),
    ...(fleet.devicePlugin ? [fleet.devicePlugin] : []),
    ...(fleet.engineScript ? [fleet.engineScript] : []),
    ...fleet.services.flatMap((s) => [s.workload, s.disruptionBudget]),
  ];
}

/** The fleet as one multi-document YAML stream, e.g. for a GitOps repository or `kubectl apply -f -`. */
export function renderYaml(fleet: FleetManifests, login?: RegistryLogin): string {
  return manifestList(fleet, login)
    .map((m) => stringify(m, { lineWidth: 0, aliasDuplicateObjects: false }))
    .join("---\n");
}
