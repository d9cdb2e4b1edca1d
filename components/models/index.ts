export * from "./engine.ts";
export * from "./files.ts";
export * from "./scripts.ts";
export * from "./ModelArtifact.ts";
export * from "./HostModels.ts";
