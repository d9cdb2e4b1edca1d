export * from "./GpuImage.ts";
