// The public API of jetson-fleet: everything another infra repo imports comes from here.
export * from "./config/index.ts";
export * from "./host/index.ts";
export * from "./image/index.ts";
export * from "./kubernetes/index.ts";
export * from "./models/index.ts";
export * from "./services/index.ts";
