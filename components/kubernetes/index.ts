export * from "./model.ts";
export * from "./units.ts";
export * from "./secrets.ts";
export { KubernetesFleetArgsError, digestProblem } from "./validation.ts";
export { containerEnvironment, probes } from "./pod.ts";
export * from "./manifests.ts";
export * from "./yaml.ts";
export * from "./KubernetesService.ts";
export * from "./KubernetesFleet.ts";
