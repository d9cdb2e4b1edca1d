export * from "./formats.ts";
export * from "./docker.ts";
export * from "./schema.ts";
export * from "./models.ts";
export * from "./load.ts";
export * from "./update.ts";
