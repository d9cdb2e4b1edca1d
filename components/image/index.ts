export * from "./GpuImage.ts";
export * from "./fromStackConfig.ts";
