// The models on one host and the engines its services build from them. Each model is fetched from
// the stack's registry by the host itself, only when the host lacks its content; each (service,
// model) engine is built on the host inside the service's own image, only when the engine's key
// changed. Both are host steps that run on create and on a change of what they depend on: an `up`
// that changes nothing runs no command on the host.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { ModelSpec, ServiceSpec } from "../config/index.ts";
import { RECONNECT_CHECK, contentHash, hostCommand, hostStdin, stepTrigger, type HostStep } from "../host/index.ts";
import type { ServiceHost } from "../services/hosts.ts";
import {
  NO_DEVICE,
  engineDirectory,
  engineKey,
  engineTimeoutSeconds,
  trtexecArgs,
  type EngineMount,
  type ModelLocation,
} from "./engine.ts";
import type { ModelRegistryCredentials } from "./ModelArtifact.ts";
import { renderModelScript } from "./scripts.ts";

/** A model as hosts fetch it (a `ModelArtifact` fits). */
export interface HostModelSource {
  /** The registry and repository holding it. @example modelLocation(model, "registry.lab:5000") */
  readonly location: ModelLocation;
  /** What must exist before a host fetches it (the push or check of the artifact). @default none */
  readonly ready?: pulumi.Resource;
}

export interface HostModelsArgs {
  /**
   * The host; its `device` is part of every engine's key.
   * @example serviceHostOf("orin-nx-01", jetsonHost)
   */
  readonly host: ServiceHost;
  /**
   * The stack's compose project name: the host keeps this stack's models and engines under it.
   * @example "jetson-fleet-prod"
   */
  readonly project: string;
  /**
   * The stack's models (validated `models[]`): each is delivered to the host.
   * @example readStackConfig().models
   */
  readonly models: readonly ModelSpec[];
  /**
   * Where each model is fetched from, by model name.
   * @example { detector: new ModelArtifact("detector", { model, registry: "registry.lab:5000" }) }
   */
  readonly sources: Readonly<Record<string, HostModelSource>>;
  /**
   * The services; each of their `models` gets an engine built in the service's image.
   * @example readStackConfig().services
   */
  readonly services: readonly ServiceSpec[];
  /**
   * Each service's image pinned by digest, by service name (see `pinServiceImages`).
   * @example { inference: "registry.lab:5000/fleet/inference@sha256:4f1c…" }
   */
  readonly images: Readonly<Record<string, pulumi.Input<string>>>;
  /**
   * Credentials for the registry, when it takes them (sent on standard input, never an argument).
   * @default none (anonymous)
   */
  readonly credentials?: ModelRegistryCredentials;
  /**
   * What the engine builds wait for besides the host's bootstrap and the model's delivery, such as
   * the previous batch of hosts: engines are rebuilt batch by batch with the rollout.
   * @default []
   */
  readonly after?: readonly pulumi.Resource[];
}

/**
 * The models and engines of one host (type `jetson:models:HostModels`). Children:
 *
 * - `<name>-<model>`: `model-fetch.sh`, fetching the model into
 *   `/var/lib/jetson-fleet/models/<project>/sha256/<hex>` when the host lacks that content (checked
 *   by SHA-256, written through a rename); re-run when the content or its repository changes. Its
 *   delete drops its claim on the file, and the file goes with the last claim (a replacement made
 *   first keeps it).
 * - `<name>-<service>-<model>`: `engine-build.sh`, building the engine into
 *   `/var/lib/jetson-fleet/engines/<project>/<service>/<model>/<key>/` inside the service's image
 *   (its runtime, no network), unless that key's engine is there; re-run when the key or a setting
 *   changes. A failed build keeps every engine the host had and fails with the host, the model and
 *   the builder's last output. It prunes to `engine.keep` engines, never one a container mounts.
 */
export class HostModels extends pulumi.ComponentResource {
  /** The engines each service mounts, by service name. */
  public readonly engines: Readonly<Record<string, pulumi.Output<EngineMount[]>>>;
  /** The engine keys, `<service>/<model>` to key. */
  public readonly keys: pulumi.Output<Record<string, string>>;
  /** Each model's fetch report (`fetched … bytes=<n>` or `present … bytes=0`), by model name. */
  public readonly deliveries: pulumi.Output<Record<string, string>>;
  /** Each engine build's report (`built …` or `unchanged …`), `<service>/<model>` to report. */
  public readonly builds: pulumi.Output<Record<string, string>>;
  /** The engine builds: the host's services start only after them. */
  public readonly ready: readonly pulumi.Resource[];

  constructor(name: string, args: HostModelsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("jetson:models:HostModels", name, {}, opts);
    const { host, project } = args;
    const bootstrap = host.ready ? [host.ready] : [];
    const device = pulumi.output(host.device ?? { l4tRelease: NO_DEVICE, gpu: NO_DEVICE });
    const credentials = args.credentials ? pulumi.all([args.credentials.username, pulumi.secret(args.credentials.password)]) : undefined;
    const remote = (
      id: string,
      script: "model-fetch" | "engine-build",
      step: pulumi.Input<HostStep>,
      trigger: pulumi.Input<string>,
      secret: boolean,
      dependsOn: pulumi.Resource[],
      data: pulumi.Input<string> = "",
    ) => {
      const stdin = pulumi.all([host.sudoPassword, step, data]).apply(([password, s, d]) => hostStdin(host.elevation, password, s, d));
      return new command.remote.Command(
        id,
        {
          connection: host.connection,
          create: hostCommand(script, "create", host.elevation),
          // A new way to reach the host (key, address, host key, sudo password) fetches and builds nothing.
          update: RECONNECT_CHECK,
          delete: hostCommand(script, "delete", host.elevation),
          stdin: secret || host.elevation === "sudo-password" ? pulumi.secret(stdin) : stdin,
          triggers: [trigger],
          addPreviousOutputInEnv: false,
        },
        { parent: this, dependsOn },
      );
    };

    // Read once per host, not once per model and service.
    const fetchScript = renderModelScript("model-fetch");
    const buildScript = renderModelScript("engine-build");
    const fetches: Record<string, command.remote.Command> = {};
    for (const model of args.models) {
      const source = args.sources[model.name];
      if (source === undefined) throw new Error(`model "${model.name}" has no source (HostModelsArgs.sources)`);
      const params = {
        PROJECT: project,
        HOST_NAME: host.name,
        MODEL: model.name,
        SHA256: model.sha256,
        REGISTRY_URL: source.location.registryUrl,
        REPOSITORY: source.location.repository,
      };
      // The registry password goes as the step's data (model-fetch.sh reads it from standard
      // input): a parameter would be in the script's environment, which /proc shows.
      const step = pulumi.output(credentials?.apply(([user]) => user)).apply((user): HostStep => ({
        script: fetchScript,
        create: { ...params, ...(user !== undefined ? { REGISTRY_USERNAME: user } : {}) },
        delete: { ...params, ACTION: "delete" },
      }));
      const data = credentials ? credentials.apply(([, password]) => `${password}\n`) : "";
      // The credentials are how the host gets the model, not what it gets: a rotation fetches nothing.
      const trigger = contentHash(fetchScript, ...Object.values(params));
      fetches[model.name] = remote(
        `${name}-${model.name}`,
        "model-fetch",
        step,
        trigger,
        credentials !== undefined,
        [...bootstrap, ...(source.ready ? [source.ready] : [])],
        data,
      );
    }

    const engines: Record<string, pulumi.Output<EngineMount[]>> = {};
    const keys: Record<string, pulumi.Output<string>> = {};
    const builds: Record<string, pulumi.Output<string>> = {};
    const ready: pulumi.Resource[] = [];
    for (const service of args.services) {
      if (service.models.length === 0) continue;
      const image = args.images[service.name];
      if (image === undefined) throw new Error(`service "${service.name}" has no pinned image`);
      const mounts: pulumi.Output<EngineMount>[] = [];
      for (const ref of service.models) {
        const model = args.models.find((m) => m.name === ref.name);
        const fetch = fetches[ref.name];
        if (model === undefined || fetch === undefined)
          throw new Error(`service "${service.name}" runs model "${ref.name}", which the stack does not define`);
        const buildArgs = trtexecArgs(model.engine);
        const inputs = pulumi.all([pulumi.output(image), device]).apply(([img, dev]) => ({
          img,
          dev,
          key: engineKey({ modelSha256: model.sha256, image: img, l4tRelease: dev.l4tRelease, gpu: dev.gpu, args: buildArgs }),
        }));
        const step = inputs.apply(({ img, dev, key }): HostStep => {
          const params = {
            PROJECT: project,
            HOST_NAME: host.name,
            SERVICE: service.name,
            MODEL: model.name,
            SHA256: model.sha256,
            IMAGE: img,
            KEY: key,
            BUILDER: model.engine.builder,
            BUILD_ARGS: buildArgs.join("\n"),
            TIMEOUT: String(engineTimeoutSeconds(model.engine)),
            KEEP: String(model.engine.keep),
            RUNTIME: service.runtime,
            L4T: dev.l4tRelease,
            GPU: dev.gpu,
          };
          return { script: buildScript, create: params, delete: { ...params, ACTION: "delete" } };
        });
        const id = `${name}-${service.name}-${model.name}`;
        const build = remote(id, "engine-build", step, step.apply(stepTrigger), false, [...bootstrap, fetch, ...(args.after ?? [])]);
        ready.push(build);
        builds[`${service.name}/${model.name}`] = build.stdout;
        keys[`${service.name}/${model.name}`] = inputs.key;
        mounts.push(
          inputs.key.apply((key) => ({
            model: model.name,
            path: ref.path,
            directory: engineDirectory(project, service.name, model.name, key),
          })),
        );
      }
      engines[service.name] = pulumi.all(mounts);
    }
    this.engines = engines;
    this.keys = pulumi.all(keys);
    this.deliveries = pulumi.all(Object.fromEntries(Object.entries(fetches).map(([m, c]) => [m, c.stdout])));
    this.builds = pulumi.all(builds);
    this.ready = ready;
    this.registerOutputs({ keys: this.keys, deliveries: this.deliveries, builds: this.builds });
  }
}
