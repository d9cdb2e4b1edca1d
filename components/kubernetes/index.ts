export * from "./model.ts";
export * from "./units.ts";
export * from "./secrets.ts";
export { KubernetesFleetArgsError, digestProblem } from "./validation.ts";
export { containerEnvironment, probes } from "./pod.ts";
export {
  ENGINE_SCRIPT_ANNOTATION,
  ENGINE_SCRIPT_CONFIG_MAP,
  ENGINE_SCRIPT_FILE,
  NODE_FACTS_CONTAINER,
  NODE_FACTS_USER,
  engineContainerName,
  engineScript,
  engineScriptManifest,
  engineScriptSha256,
} from "./engines.ts";
export * from "./manifests.ts";
export * from "./yaml.ts";
export * from "./KubernetesService.ts";
export * from "./KubernetesFleet.ts";
