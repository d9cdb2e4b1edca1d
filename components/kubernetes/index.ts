export * from "./manifests.ts";
export * from "./KubernetesService.ts";
export * from "./KubernetesFleet.ts";
