// A program in another repository: its own stack config validated by jetson-fleet's schema, and
// one GpuImage per configured image. The engine test previews it with the real CLI.
import * as pulumi from "@pulumi/pulumi";
import { GpuImage, readStackConfig } from "jetson-fleet";

const config = readStackConfig();
// Not a key of jetson-fleet's schema: the consumer's own namespace.
const builderName = new pulumi.Config("buildkit").require("builder");

const images = config.images.map(
  (spec) =>
    new GpuImage(spec.name, {
      context: spec.context,
      dockerfile: `${spec.context}/${spec.dockerfile}`,
      ...(spec.target ? { target: spec.target } : {}),
      platforms: spec.platforms,
      buildArgs: { ...spec.buildArgs, ...spec.baseImages },
      repository: spec.repository ?? `${config.registry?.server ?? "localhost"}/${spec.name}`,
      tag: "1.0.0",
      builderName,
    }),
);

export const refs = images.map((image) => image.ref);
