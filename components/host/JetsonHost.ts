// One Jetson (or simulated Jetson) reached over SSH: reads its facts, installs and pins the
// Docker engine and the NVIDIA container toolkit, merges daemon.json, and verifies that a
// container runs with the nvidia runtime. Each step is its own remote command whose trigger is
// its script and parameters, so `pulumi preview` shows which steps would run and a second
// `pulumi up` runs none. A step's command line is the same short launcher for every step; the
// sudo password's line, then the script and its parameters, then the step's data travel on its
// standard input (a secret), so the launcher puts no parameter in `ps` on the host or in a failed
// step's error.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { HostSpec, RuntimeSpec } from "../config/index.ts";
import {
  contentHash,
  hostCommand,
  hostStdin,
  renderHostScript,
  stepTrigger,
  type Elevation,
  type HostScript,
  type HostStep,
  type OptionalHostScript,
} from "./scripts.ts";

/** What the host was before this stack changed anything (from the facts step). */
export interface HostFacts {
  /** `36.4.3` from /etc/nv_tegra_release, or "" when the file is missing. */
  readonly l4tRelease: string;
  readonly os: string;
  readonly arch: string;
  readonly kernel: string;
  /** Installed engine package version, or "". */
  readonly dockerVersion: string;
  /** Installed nvidia-container-toolkit version, or "". */
  readonly nvidiaToolkitVersion: string;
  readonly runtimes: readonly string[];
  readonly defaultRuntime: string;
  readonly dockerDataRoot: string;
  readonly freeBytes: number;
}

export interface JetsonHostArgs {
  /**
   * The host: address, credentials, pinned host key, expected L4T release (a validated `HostSpec`).
   * @example readStackConfig().hosts[0]
   */
  readonly host: HostSpec;
  /**
   * What to install and pin (a validated `RuntimeSpec`).
   * @example readStackConfig().runtime
   */
  readonly runtime: RuntimeSpec;
  /**
   * Image the verification runs with `--runtime nvidia`. Pulled if missing.
   * @default a one-file busybox image made on the host, so verification needs no registry
   * @example "nvcr.io/nvidia/l4t-base:r36.2.0"
   */
  readonly verifyImage?: string;
  /**
   * Seconds each SSH dial may take, and how many failed dials end the step.
   * @default { perDialTimeout: 20, dialErrorLimit: 6 }
   */
  readonly dial?: {
    /** Seconds one SSH dial may take. @example 20 */
    readonly perDialTimeout: number;
    /** Failed dials after which the step fails. @example 6 */
    readonly dialErrorLimit: number;
  };
  /**
   * The registry the host's services pull from, with credentials: root's Docker client on the
   * host is logged in to it (the password on standard input, never in argv) and logged out again
   * when the stack stops naming it. Without credentials nothing is logged in.
   * @default none (no registry login)
   * @example { server: "registry.lab:5000", username: "fleet", password: config.requireSecret("registryPassword") }
   */
  readonly registry?: {
    /** Registry host[:port]. @example "registry.lab:5000" */
    readonly server: string;
    /** User name the host logs in with. @example "fleet" */
    readonly username: string;
    /** Password or token; keep it a Pulumi secret. @example config.requireSecret("registryPassword") */
    readonly password: pulumi.Input<string>;
  };
  /**
   * Whether the login user may use the host's Docker engine without sudo, as the containers
   * mode's Docker provider does (`docker system dial-stdio` over SSH): the user is added to the
   * host's `docker` group, and removed from it when this turns off or the host leaves the stack.
   * That membership is root-equivalent (a container can mount `/`), so it is given to the stack's
   * login user only. A `root` login needs nothing.
   * @default false
   * @example config.deploy.target === "containers"
   */
  readonly dockerAccess?: boolean;
  /**
   * Whether the host belongs to a production stack (the stack config's `production`): the policy
   * pack then requires a pinned host key.
   * @default false
   * @example true
   */
  readonly production?: boolean;
}

/** What a JetsonHost registers as its inputs: what the policy pack checks, nothing secret. */
export interface JetsonHostInputs {
  /** The host's name. */
  readonly host: string;
  readonly address: string;
  /** Whether connections refuse any host key but `hostKey`. */
  readonly hostKeyPinned: boolean;
  readonly production: boolean;
}

/** The registered inputs of a JetsonHost for `args` (see `JetsonHostInputs`). */
export function jetsonHostInputs(args: JetsonHostArgs): JetsonHostInputs {
  return {
    host: args.host.name,
    address: args.host.address,
    hostKeyPinned: args.host.hostKey !== undefined,
    production: args.production ?? false,
  };
}

/**
 * What an install step runs when only its connection changed: nothing on the host, the SSH
 * session itself proves the new connection.
 */
export const RECONNECT_CHECK = "true";

/** Bounded so an unreachable host fails in about two minutes instead of hanging the update. */
export const DEFAULT_DIAL = { perDialTimeout: 20, dialErrorLimit: 6 } as const;

export class JetsonHost extends pulumi.ComponentResource {
  /** What the host was before this stack changed it. */
  public readonly facts: pulumi.Output<HostFacts>;
  /** The verification step's report. */
  public readonly verification: pulumi.Output<string>;
  /** `ssh://user@address:port`: the Docker endpoint for `@pulumi/docker` providers and `DOCKER_HOST`. */
  public readonly dockerHost: pulumi.Output<string>;
  /** The last step: depend on it to run after the host is ready. */
  public readonly ready: command.remote.Command;
  /** The SSH connection every step uses (a secret: it holds the private key); services reuse it. */
  public readonly connection: pulumi.Output<command.types.input.remote.ConnectionArgs>;
  /** How the login user becomes root on this host. */
  public readonly elevation: Elevation;
  /** The sudo password (a secret), when the user needs one. */
  public readonly sudoPassword?: pulumi.Output<string>;

  constructor(name: string, args: JetsonHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("jetson:host:JetsonHost", name, jetsonHostInputs(args), opts);
    const { host, runtime } = args;
    const dial = args.dial ?? DEFAULT_DIAL;
    const connection: command.types.input.remote.ConnectionArgs = {
      host: host.address,
      port: host.port,
      user: host.user,
      privateKey: pulumi.secret(host.privateKey),
      ...(host.hostKey ? { hostKey: host.hostKey } : {}),
      perDialTimeout: dial.perDialTimeout,
      dialErrorLimit: dial.dialErrorLimit,
    };
    const elevation: Elevation = host.user === "root" ? "root" : host.sudoPassword ? "sudo-password" : "sudo";
    this.connection = pulumi.secret(connection);
    this.elevation = elevation;
    if (host.sudoPassword) this.sudoPassword = pulumi.secret(host.sudoPassword);
    const aptSources = runtime.aptSources.join("\n");

    let previous: command.remote.Command | undefined;
    // Every trigger so far: verification re-runs whenever any step before it ran again.
    const chain: pulumi.Input<string>[] = [];
    // `reconnect`: on a change of the connection alone (a rotated key, a new address, a re-pinned
    // host key) the step only proves the new connection works; its script re-runs only when the
    // script or its parameters change (the trigger, which replaces the step). Steps whose output
    // describes the host (facts, verify) run again on any change.
    const step = (
      id: HostScript | OptionalHostScript,
      env: Record<string, string>,
      options: {
        reconnect?: boolean;
        data?: pulumi.Input<string>;
        trigger?: pulumi.Input<string>;
        delete?: Record<string, string>;
        afterAll?: boolean;
      } = {},
    ): command.remote.Command => {
      const program: HostStep = { script: renderHostScript(id), create: env, ...(options.delete ? { delete: options.delete } : {}) };
      const create = hostCommand(id, "create", elevation);
      const own = [stepTrigger(program), ...(options.trigger !== undefined ? [options.trigger] : [])];
      const triggers = options.afterAll ? [...own, ...chain] : own;
      chain.push(...own);
      // The script and its parameters travel here, so stdin is a secret even without a password
      // (daemonJson may hold proxy credentials).
      const stdin =
        options.data === undefined
          ? hostStdin(elevation, host.sudoPassword, program)
          : pulumi.output(options.data).apply((data) => hostStdin(elevation, host.sudoPassword, program, data));
      const cmd = new command.remote.Command(
        `${name}-${id}`,
        {
          connection,
          create,
          ...(options.reconnect ? { update: RECONNECT_CHECK } : {}),
          ...(options.delete ? { delete: hostCommand(id, "delete", elevation) } : {}),
          triggers,
          stdin: pulumi.secret(stdin),
          addPreviousOutputInEnv: false,
        },
        // A delete undoes the create (a logout undoes a login): on a replacement it must run first.
        { parent: this, ...(previous ? { dependsOn: [previous] } : {}), ...(options.delete ? { deleteBeforeReplace: true } : {}) },
      );
      previous = cmd;
      return cmd;
    };
    const install = { reconnect: true };

    const facts = step("facts", { DOCKER_PACKAGE: runtime.docker.package, EXPECTED_L4T: host.l4tRelease });
    step(
      "install-docker",
      { DOCKER_PACKAGE: runtime.docker.package, DOCKER_VERSION: runtime.docker.version, APT_SOURCES: aptSources },
      install,
    );
    step("install-nvidia-toolkit", { NVIDIA_TOOLKIT_VERSION: runtime.nvidiaToolkitVersion, APT_SOURCES: aptSources }, install);
    const nvidiaDefault = String(runtime.nvidiaDefaultRuntime);
    step("configure-docker", { DAEMON_JSON: JSON.stringify(runtime.daemonJson), NVIDIA_DEFAULT_RUNTIME: nvidiaDefault }, install);
    if (runtime.compose) {
      step(
        "install-compose",
        { COMPOSE_PACKAGE: runtime.compose.package, COMPOSE_VERSION: runtime.compose.version, APT_SOURCES: aptSources },
        install,
      );
    }
    if (args.dockerAccess && host.user !== "root") {
      step("docker-access", { LOGIN_USER: host.user }, { ...install, delete: { LOGIN_USER: host.user, REVOKE: "1" } });
    }
    if (args.registry) {
      const { server, username, password } = args.registry;
      // A new password logs in again: its hash is a trigger, kept secret like the password.
      const passwordHash = pulumi.secret(pulumi.output(password).apply((p) => contentHash(p)));
      step(
        "registry-login",
        { REGISTRY_SERVER: server, REGISTRY_USERNAME: username },
        { ...install, data: password, trigger: passwordHash, delete: { REGISTRY_SERVER: server, LOGOUT: "1" } },
      );
    }
    this.ready = step(
      "verify",
      { NVIDIA_DEFAULT_RUNTIME: nvidiaDefault, ...(args.verifyImage ? { VERIFY_IMAGE: args.verifyImage } : {}) },
      { afterAll: true },
    );

    this.facts = facts.stdout.apply((out) => JSON.parse(out) as HostFacts);
    this.verification = this.ready.stdout.apply((out) => out.trim().split("\n").pop() ?? "");
    this.dockerHost = pulumi.output(`ssh://${host.user}@${host.address}:${host.port}`);
    this.registerOutputs({ facts: this.facts, verification: this.verification, dockerHost: this.dockerHost });
  }
}
