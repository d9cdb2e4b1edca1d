// The engine tier's GpuImage program: one image, built with a given builder and pushed to a given
// registry with credentials from the stack's secrets.
import * as pulumi from "@pulumi/pulumi";
import { GpuImage } from "../../../../components/image/index.ts";

const config = new pulumi.Config();
const image = new GpuImage("inference", {
  context: config.require("context"),
  target: "runtime",
  platforms: config.getObject<("linux/amd64" | "linux/arm64")[]>("platforms") ?? ["linux/amd64"],
  buildArgs: config.requireObject<Record<string, string>>("buildArgs"),
  repository: config.require("repository"),
  tag: config.require("tag"),
  registry: { address: config.require("registry"), username: config.require("username"), password: config.requireSecret("password") },
  builderName: config.require("builder"),
  buildOnPreview: config.getBoolean("buildOnPreview") ?? false,
  ...(config.getSecret("buildSecret") ? { secrets: { token: config.requireSecret("buildSecret") } } : {}),
});

export const ref = image.ref;
export const digest = image.digest;
