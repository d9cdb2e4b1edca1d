export * from "./JetsonHost.ts";
export * from "./scripts.ts";
