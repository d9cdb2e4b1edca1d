// The engine tier's Docker plugin program: a Docker provider for this machine's engine and a
// network through it, asking for the plugin the project installs (DOCKER_PLUGIN_VERSION) or, with
// `pinned: false`, for the one the npm SDK would (its own version, which nothing installs).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { DOCKER_PLUGIN_VERSION } from "../../../../components/services/index.ts";

const config = new pulumi.Config();
const provider = new docker.Provider(
  "local",
  { host: "unix:///var/run/docker.sock" },
  config.requireBoolean("pinned") ? { version: DOCKER_PLUGIN_VERSION } : {},
);
const network = new docker.Network("probe", { name: `jetson-fleet-plugin-${pulumi.getStack()}` }, { provider });

export const networkName = network.name;
