// What rendering one fleet shares between its parts (internal: not exported from the barrel).
import type { ConfigProblem } from "../config/load.ts";
import type { ModelSpec } from "../config/models.ts";
import type { DeploySpec } from "../config/schema.ts";
import type { FleetRegistry, GpuAccess } from "./model.ts";

export interface RenderContext {
  /** Problems found so far, as config key paths and messages; nothing is rendered while any exist. */
  readonly problems: ConfigProblem[];
  readonly namespace: string;
  readonly rollout: DeploySpec["rollout"];
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly gpu: GpuAccess;
  readonly pullSecrets: { name: string }[];
  /** What the workloads carry for Pulumi's await: skip it, or how long it may take. */
  readonly awaitAnnotations: Readonly<Record<string, string>>;
  readonly secretEnvironment: Readonly<Record<string, readonly string[]>>;
  /** Services' images resolved to digests by the caller, by service name. */
  readonly serviceImages: Readonly<Record<string, string>>;
  /** The stack's models by name. */
  readonly models: ReadonlyMap<string, ModelSpec>;
  /** The registry images and models come from. */
  readonly registry: FleetRegistry | undefined;
}
