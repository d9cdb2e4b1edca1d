// A model as hosts fetch it: an OCI artifact in the stack's registry. A `file` source is pushed
// there from the machine running Pulumi, once per content (the registry is asked first, so a
// blob it has is not sent again); an `artifact` source is checked to hold the model's content.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { isAbsolute, join } from "node:path";
import { isDigest, type ModelSpec } from "../config/index.ts";
import { contentHash } from "../host/index.ts";
import { modelLocation, modelTag, type ModelLocation } from "./engine.ts";
import { renderModelScript } from "./scripts.ts";

/** The registry's credentials, for a registry that takes them. */
export interface ModelRegistryCredentials {
  /** User name. @example "fleet" */
  readonly username: string;
  /** Password or token. Keep it a Pulumi secret. @example config.requireSecret("registryPassword") */
  readonly password: pulumi.Input<string>;
}

export interface ModelArtifactArgs {
  /**
   * The model, validated (`models[]` entry, defaults applied).
   * @example readStackConfig().models[0]
   */
  readonly model: ModelSpec;
  /**
   * The stack's registry (`registry.server`): where a `file` source is pushed, the default repository being `<server>/models/<name>`.
   * @default none (only an `artifact` source, which names its registry, works)
   * @example "registry.lab:5000"
   */
  readonly registry?: string;
  /**
   * Credentials for the registry, when it takes them.
   * @default none (anonymous)
   */
  readonly credentials?: ModelRegistryCredentials;
  /**
   * What a relative `source.file` is relative to.
   * @default the working directory (Pulumi runs the program in the project directory)
   */
  readonly projectDir?: string;
  /**
   * The key the model has in the stack config, for messages.
   * @default "models[<name>]"
   * @example "models[0]"
   */
  readonly configKey?: string;
}

/**
 * One model in the stack's registry (type `jetson:models:ModelArtifact`). Child `<name>-push` (a
 * `file` source) or `<name>-verify` (an `artifact` source): a `command.local.Command` running
 * `model-artifact.sh` (`bash -s`, the script on standard input) where Pulumi runs, run again only
 * when the model's content, its repository or the script changes (a new file path or new
 * credentials update it without running anything). Deleting it leaves the artifact in the registry, as images stay there.
 */
export class ModelArtifact extends pulumi.ComponentResource {
  /** Where hosts fetch the model from. */
  public readonly location: ModelLocation;
  /** The model's SHA-256 (hex): the digest of its blob in the registry. */
  public readonly sha256: string;
  /** The artifact, `registry/repository@sha256:<manifest digest>`. */
  public readonly artifact: pulumi.Output<string>;
  /** The step's report: `pushed model=… bytes=<bytes sent, 0 when the registry had them> manifest=…` or `verified …`. */
  public readonly result: pulumi.Output<string>;
  /** The step: hosts fetch only once it has succeeded. */
  public readonly step: command.local.Command;

  constructor(name: string, args: ModelArtifactArgs, opts?: pulumi.ComponentResourceOptions) {
    const { model } = args;
    const location = modelLocation(model, args.registry);
    super("jetson:models:ModelArtifact", name, {}, opts);
    this.location = location;
    this.sha256 = model.sha256;
    const script = renderModelScript("model-artifact");
    const file = model.source.file;
    const common = {
      MODEL: model.name,
      SHA256: model.sha256,
      REGISTRY_URL: location.registryUrl,
      REPOSITORY: location.repository,
      CONFIG_KEY: `${args.configKey ?? `models[${model.name}]`}.source`,
    };
    const environment =
      file !== undefined
        ? {
            ...common,
            ACTION: "push",
            FILE: isAbsolute(file) ? file : join(args.projectDir ?? process.cwd(), file),
            TAG: modelTag(model),
          }
        : { ...common, ACTION: "verify", MANIFEST_DIGEST: (model.source.artifact ?? "").split("@")[1] ?? "" };
    const credentials: Record<string, pulumi.Input<string>> = args.credentials
      ? { REGISTRY_USERNAME: args.credentials.username, REGISTRY_PASSWORD: pulumi.secret(args.credentials.password) }
      : {};
    this.step = new command.local.Command(
      `${name}-${file !== undefined ? "push" : "verify"}`,
      {
        // The script on standard input, as the host steps take theirs: a failure's message names
        // `bash -s`, not the script's whole text.
        create: "bash -s",
        stdin: script,
        // A moved checkout or new credentials change no artifact: nothing runs (without credentials
        // the registry would refuse the check anyway), the previous report stays the output.
        update: `printf '%s\n' "$PULUMI_COMMAND_STDOUT"`,
        environment: { ...environment, ...credentials },
        // The file's path and the credentials are not the artifact: moving the checkout or
        // rotating a password pushes nothing again.
        triggers: [contentHash(script, model.sha256, location.registryUrl, location.repository, environment.ACTION)],
        addPreviousOutputInEnv: true,
      },
      { parent: this },
    );
    this.result = this.step.stdout;
    this.artifact = this.step.stdout.apply((out) => {
      const manifest = /manifest=(\S+)$/.exec(out.trim())?.[1];
      if (manifest === undefined || !isDigest(manifest))
        throw new Error(`model "${model.name}": the registry step printed no manifest digest: ${out}`);
      return `${location.registry}/${location.repository}@${manifest}`;
    });
    this.registerOutputs({ artifact: this.artifact, result: this.result });
  }
}
