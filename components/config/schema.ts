// The whole stack configuration as zod schemas: one source of truth for the program, for other
// repos that import the library, and for the docs. Every object is strict so a typo is an error,
// not a silently ignored key. Rules no single field can check are in `refinements.ts`, what the
// Docker daemon accepts in `docker.ts`: together they refuse up front what `docker compose` or the
// daemon would refuse only when the deploy runs (mount points twice, dependency cycles, log options
// a driver does not know, a host port claimed twice, unknown ulimits and capabilities, malformed
// security options).
import { isIP } from "node:net";
import { z } from "zod";
import {
  DEBIAN_VERSION,
  DNS_LABEL,
  DURATION,
  SIZE,
  addressProblem,
  hostKeyProblem,
  imageReferenceProblem,
  isRepository,
  parseDuration,
  parseSize,
  privateKeyProblem,
} from "./formats.ts";
import {
  CAPABILITIES,
  ULIMIT_NAMES,
  containerPath,
  didYouMean,
  healthTestProblem,
  logOptionProblems,
  securityOptProblem,
  ROTATING_LOG_DRIVERS,
} from "./docker.ts";
import { ModelSpec, ServiceModel } from "./models.ts";
import { checked, refineService, refineStackConfig, refuse, refuseRepeats } from "./refinements.ts";

/** Log rotation every service gets unless it says otherwise (the users' 10m × 3). */
export const DEFAULT_LOG_OPTIONS = { "max-size": "10m", "max-file": "3" } as const;
/** The restart policy every service gets unless it says otherwise. */
export const DEFAULT_RESTART = "unless-stopped";
/** Security options every service gets unless it says otherwise. */
export const DEFAULT_SECURITY_OPT = ["no-new-privileges:true"] as const;
/** `daemon.json` settings the host gets unless the stack says otherwise. */
export const DEFAULT_DAEMON_JSON = { "log-driver": "json-file", "log-opts": DEFAULT_LOG_OPTIONS } as const;
/** The smallest memory limit the Docker daemon accepts (6 MiB). */
export const MIN_MEMORY_BYTES = 6 * 1024 ** 2;
const name = (what: string) =>
  z.string().regex(DNS_LABEL, {
    error: (iss) =>
      `${JSON.stringify(iss.input)} is not a valid ${what} name; expected lower-case letters, digits and "-" (a DNS label, at most 63 characters)`,
  });
const portExpected = (iss: { input?: unknown }) => `got ${describe(iss.input)}; expected a port number from 1 to 65535`;
const port = z
  .number({ error: portExpected })
  .int({ error: portExpected })
  .min(1, { error: portExpected })
  .max(65535, { error: portExpected });
const size = (example: string) =>
  z.string().regex(SIZE, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a size; expected a number with an optional unit b, k, m or g, e.g. ${example}`,
  });
const duration = z
  .string()
  .regex(DURATION, { error: (iss) => `${JSON.stringify(iss.input)} is not a duration; expected e.g. 30s, 1m30s or 500ms` });
/** A health check duration: the daemon refuses one below 1ms (`zeroAllowed`: 0 means "none"). */
const healthDuration = (zeroAllowed: boolean) =>
  duration.superRefine(
    checked((v) => {
      const seconds = parseDuration(v);
      if (seconds === undefined || seconds >= 0.001 || (zeroAllowed && seconds === 0)) return undefined;
      return `"${v}" is shorter than 1ms; expected at least 1ms${zeroAllowed ? " (or 0s for none)" : ""}, e.g. 10s`;
    }),
  );
const imageRef = z.string().superRefine(checked(imageReferenceProblem));
const stringMap = z.record(z.string(), z.string());

/** One Jetson (or simulated Jetson) reached over SSH. */
export const HostSpec = z.strictObject({
  /** Unique host name; used in resource names and messages. @example "jetson-01" */
  name: name("host"),
  /** IP address or DNS name the SSH connection uses. @example "192.168.1.21" */
  address: z.string().superRefine(checked(addressProblem)),
  /** SSH port. @default 22 */
  port: port.default(22),
  /** Login user; a non-root user needs sudo. @example "ubuntu" */
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a user name; expected a POSIX login name such as ubuntu`,
  }),
  /**
   * SSH private key (OpenSSH or PEM). Must be a Pulumi secret.
   * @example cat ~/.ssh/jetson_fleet | pulumi config set --secret --path 'hosts[0].privateKey'
   */
  privateKey: z.string().superRefine(checked(privateKeyProblem)),
  /** Password for sudo when the user needs one. Must be a Pulumi secret. @default none (passwordless sudo) */
  sudoPassword: z.string().min(1).optional(),
  /**
   * The host's SSH public key, pinned: a different key is refused. Required in production.
   * @default none (any key is accepted; refused in production)
   * @example "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI..."
   */
  hostKey: z.string().superRefine(checked(hostKeyProblem)).optional(),
  /** The L4T release the host must run (`/etc/nv_tegra_release`), as major.revision. @example "36.4.3" */
  l4tRelease: z.string().regex(/^[0-9]+\.[0-9]+(\.[0-9]+)?$/, {
    error: (iss) =>
      `${JSON.stringify(iss.input)} is not an L4T release; expected major.revision as in /etc/nv_tegra_release, e.g. 36.4.3 for "R36 (release), REVISION: 4.3"`,
  }),
  /** CPU architecture. @default "arm64" */
  arch: z.enum(["arm64", "amd64"]).default("arm64"),
  /** Labels used to select hosts (and Kubernetes nodes). @example { "site": "lab", "camera": "usb" } */
  labels: stringMap.default({}),
});
export type HostSpec = z.infer<typeof HostSpec>;

/** What the host component installs and pins on every host. */
export const RuntimeSpec = z.strictObject({
  /** Docker engine package and version, held against upgrades. @example { version: "27.5.1" } */
  docker: z.strictObject({
    /** Apt package providing dockerd. @default "docker-ce" */
    package: z.enum(["docker-ce", "docker.io"]).default("docker-ce"),
    /** Exact apt version, or the upstream version it starts with. @example "27.5.1" */
    version: z.string().regex(DEBIAN_VERSION, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a package version; expected e.g. 27.5.1 or 5:27.5.1-1~ubuntu.22.04~jammy`,
    }),
  }),
  /** NVIDIA container toolkit version; its four packages are pinned together. @example "1.16.2-1" */
  nvidiaToolkitVersion: z
    .string()
    .regex(DEBIAN_VERSION, { error: (iss) => `${JSON.stringify(iss.input)} is not a package version; expected e.g. 1.16.2-1` }),
  /**
   * The compose tool the compose deploy mode runs on each host, pinned and held like the engine:
   * `docker-compose-plugin` (`docker compose`, from Docker's apt repository, beside docker-ce),
   * `docker-compose-v2` (Ubuntu's `docker compose`, beside docker.io) or `docker-compose` (the
   * 1.29 Python tool, Debian's). Required when `deploy.target` is `compose` and the stack has hosts and services.
   * @default none (not installed)
   * @example { package: "docker-compose-plugin", version: "2.29.7-1~ubuntu.22.04~jammy" }
   */
  compose: z
    .strictObject({
      /** Apt package providing the compose command. @default "docker-compose-plugin" */
      package: z.enum(["docker-compose-plugin", "docker-compose-v2", "docker-compose"]).default("docker-compose-plugin"),
      /** Exact apt version, or the upstream version it starts with. @example "2.29.7" */
      version: z.string().regex(DEBIAN_VERSION, {
        error: (iss) => `${JSON.stringify(iss.input)} is not a package version; expected e.g. 2.29.7 or 2.29.7-1~ubuntu.22.04~jammy`,
      }),
    })
    .optional(),
  /** Make nvidia Docker's default runtime (GPU access during `docker build`). @default true */
  nvidiaDefaultRuntime: z.boolean().default(true),
  /**
   * Extra apt source lines (deb822 one-liners) for the Docker and NVIDIA packages, written to
   * /etc/apt/sources.list.d/jetson-fleet.list; that file follows this list (removed when it is empty).
   * @default []
   */
  aptSources: z
    .array(
      z.string().regex(/^deb (\[[^\]]*\] )?\S+ \S+( \S+)*$/, {
        error: (iss) =>
          `${JSON.stringify(iss.input)} is not an apt source line; expected "deb [signed-by=/path/key.gpg] URI SUITE COMPONENT..."`,
      }),
    )
    .default([]),
  /**
   * Settings merged into /etc/docker/daemon.json; keys the host already has survive. A setting
   * removed from here is removed from the host, or given back the host's own value it had
   * overridden (recorded in /var/lib/jetson-fleet/daemon-json.managed.json).
   * @default { "log-driver": "json-file", "log-opts": { "max-size": "10m", "max-file": "3" } }
   */
  daemonJson: z.record(z.string(), z.json()).default({ ...DEFAULT_DAEMON_JSON }),
});
export type RuntimeSpec = z.infer<typeof RuntimeSpec>;

/** The registry images are pushed to and pulled from. */
export const RegistrySpec = z.strictObject({
  /** Registry host[:port]. @example "registry.lab:5000" */
  server: z.string().regex(/^[a-zA-Z0-9.-]+(:[0-9]{1,5})?$/, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a registry address; expected host[:port], e.g. registry.lab:5000`,
  }),
  /** User name for pushes and pulls. */
  username: z.string().min(1).optional(),
  /** Password or token. Must be a Pulumi secret. */
  password: z.string().min(1).optional(),
});
export type RegistrySpec = z.infer<typeof RegistrySpec>;

/** One image built from this repository (see `images/`). */
export const ImageSpec = z.strictObject({
  /** Unique image name; services refer to it with `build: <name>`. @example "inference" */
  name: name("image"),
  /** Build context, relative to the project directory. @example "images/inference" */
  context: z.string().min(1),
  /** Dockerfile path, relative to the context. @default "Dockerfile" */
  dockerfile: z.string().min(1).default("Dockerfile"),
  /** Build stage to stop at. @example "runtime" */
  target: z.string().optional(),
  /** Target platforms. @default ["linux/arm64"] */
  platforms: z
    .array(z.enum(["linux/arm64", "linux/amd64"]))
    .min(1)
    .default(["linux/arm64"]),
  /** Build arguments (not secrets: they end up in the image history). @default {} */
  buildArgs: stringMap.default({}),
  /** Base images by build argument name; production pins them by digest. @example { "RUNTIME_BASE": "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime@sha256:..." } */
  baseImages: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
        error: (iss) =>
          `${JSON.stringify(iss.input)} is not a build argument name; expected letters, digits and "_", not starting with a digit`,
      }),
      imageRef,
    )
    .default({}),
  /** Repository to push to, without tag. @default "<registry.server>/<name>" */
  repository: z
    .string()
    .superRefine(
      checked((v) =>
        isRepository(v)
          ? undefined
          : `"${v}" is not a repository; expected [registry/]path without tag or digest, e.g. registry.lab:5000/fleet/inference`,
      ),
    )
    .optional(),
});
export type ImageSpec = z.infer<typeof ImageSpec>;

const portMapping = z.strictObject({
  /** Port inside the container (with host networking: the port the service listens on). @example 8554 */
  target: port,
  /** Host port for bridge networking. @default target */
  published: port.optional(),
  /** Transport protocol; RTSP over UDP or WebRTC ICE needs `udp`. @default "tcp" */
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
  /**
   * What a TCP port speaks, for the proxy of a `blue-green` service (compose's `app_protocol`):
   * `http` is routed request by request, so a keep-alive client moves to the new version between
   * two requests; `tcp` connection by connection, so an open connection stays on the old version
   * until it closes or the drain timeout (`proxy.drainTimeout`) ends it.
   * @default "tcp"
   * @example "http"
   */
  appProtocol: z.enum(["http", "tcp"]).optional(),
  /** Host address to bind: an IP address of the host (Docker takes no names here). @default "0.0.0.0" */
  hostIp: z
    .string()
    .superRefine(
      checked((v) =>
        isIP(v) !== 0
          ? undefined
          : `${JSON.stringify(v)} is not an IP address; expected the host address to bind, e.g. 127.0.0.1, 0.0.0.0 or ::`,
      ),
    )
    .optional(),
});

const volume = z
  .strictObject({
    /** `bind` mounts a host path, `volume` a named Docker volume, `tmpfs` memory that is gone on restart. @default "bind" */
    type: z.enum(["bind", "volume", "tmpfs"]).default("bind"),
    /**
     * Host path (bind) or volume name (volume); left out for tmpfs.
     * @default none (required for bind and volume)
     * @example "/opt/models"
     */
    source: z.string().min(1).optional(),
    /** Path inside the container. @example "/models" */
    target: z
      .string()
      .regex(/^\//, { error: (iss) => `${JSON.stringify(iss.input)} is not an absolute path; expected a container path such as /models` }),
    /** Mount read-only (bind and volume; a tmpfs is always writable). @default false */
    readOnly: z.boolean().default(false),
  })
  .superRefine((v, ctx) => {
    if (containerPath(v.target) === "/")
      refuse(ctx, ["target"], `"${v.target}" is the container's root; expected a path below it, such as /models`);
    if (v.type === "tmpfs") {
      if (v.source !== undefined)
        refuse(ctx, ["source"], 'a tmpfs mount has no source; expected source left out (or type "bind" or "volume")');
      if (v.readOnly) refuse(ctx, ["readOnly"], "a tmpfs mount is always writable; expected readOnly left out (or a bind or volume mount)");
    } else if (v.source === undefined) {
      refuse(
        ctx,
        ["source"],
        v.type === "bind"
          ? "is missing; a bind mount needs the host path: expected an absolute path such as /opt/models"
          : "is missing; a volume mount needs the volume's name: expected e.g. model-cache",
      );
    } else if (v.type === "volume" && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(v.source)) {
      refuse(
        ctx,
        ["source"],
        `${JSON.stringify(v.source)} is not a volume name; expected at least two letters, digits, "_", "." or "-", starting with a letter or digit`,
      );
    }
  });

const healthcheck = z.strictObject({
  /**
   * Command in Docker form: `["CMD", ...]` runs it directly, `["CMD-SHELL", "..."]` through
   * `/bin/sh -c`, `["NONE"]` turns off the image's check.
   * @example ["CMD", "curl", "-f", "http://localhost:8080/health"]
   */
  test: z.array(z.string()).superRefine((t, ctx) => {
    const message = healthTestProblem(t);
    if (message) refuse(ctx, [], message);
  }),
  /** Time between checks. @default "10s" @example "30s" */
  interval: healthDuration(false).default("10s"),
  /** Time one check may take before it counts as failed. @default "5s" */
  timeout: healthDuration(false).default("5s"),
  /** Consecutive failures before the container is unhealthy. @default 3 */
  retries: z.number().int().min(1).default(3),
  /** Grace period after start in which failures do not count (model loading, TensorRT engine builds). @default "10s" @example "2m" */
  startPeriod: healthDuration(true).default("10s"),
});

/** Why a device mapping `host[:container[:perms]]` would be refused, or undefined. */
export function deviceProblem(value: string): string | undefined {
  const expected =
    "expected /dev/PATH[:/dev/PATH][:PERMISSIONS], permissions r, w and m each at most once (e.g. /dev/video0:/dev/video0:rw)";
  const m = /^(\/dev\/[^:]+)(?::(\/dev\/[^:]+))?(?::([rwm]{1,3}))?$/.exec(value);
  if (!m) return `${JSON.stringify(value)} is not a device mapping; ${expected}`;
  const [, host = "", container, perms] = m;
  for (const path of [host, container]) {
    if (path !== undefined && (containerPath(path) !== path || path === "/dev")) {
      return `${JSON.stringify(value)} names ${JSON.stringify(path)}, not a path below /dev; ${expected}`;
    }
  }
  if (perms !== undefined && new Set(perms).size !== perms.length) return `${JSON.stringify(value)} repeats a permission; ${expected}`;
  return undefined;
}

/** A capability name, or ALL (Docker adds or drops every capability for it). */
const capability = z.string().superRefine(
  checked((v) => {
    if ((CAPABILITIES as readonly string[]).includes(v) || v === "ALL") return undefined;
    const bare = v.replace(/^CAP_/i, "").toUpperCase();
    const hint =
      bare !== v && (CAPABILITIES as readonly string[]).includes(bare) ? `; did you mean "${bare}"?` : didYouMean(v, CAPABILITIES);
    return `"${v}" is not a Linux capability${hint} Expected a name from capabilities(7) without "CAP_", e.g. NET_ADMIN, or ALL`;
  }),
);
const uniqueCapabilities = (field: string) => (list: readonly string[], ctx: z.RefinementCtx) =>
  refuseRepeats(list, ctx, (v, first) => `"${v}" is listed twice (also ${field}[${first}]); expected each capability once`);

/** A service's log driver and its options, defaults applied. */
export interface LogSettings {
  /** Docker log driver. @example "json-file" */
  driver: string;
  /** The driver's options (`--log-opt`). @example { "max-size": "10m", "max-file": "3" } */
  options: Record<string, string>;
}

/** A compose-style service, deployed the same way to every host (or Kubernetes node). */
export const ServiceSpec = z
  .strictObject({
    /** Unique service name. @example "inference" */
    name: name("service"),
    /**
     * External image, pinned. Exactly one of `image` and `build`.
     * @default none (set `build` instead)
     * @example "bluenviron/mediamtx:1.9.3"
     */
    image: imageRef.optional(),
    /** Name of an `images` entry built by this stack. @default none (set `image` instead) @example "inference" */
    build: z.string().optional(),
    /** Replaces the image's entrypoint. @default the image's `ENTRYPOINT` @example ["/usr/bin/tini", "--"] */
    entrypoint: z.array(z.string()).optional(),
    /** Replaces the image's command. @default the image's `CMD` @example ["python3", "-m", "inference.server", "--port", "8080"] */
    command: z.array(z.string()).optional(),
    /** Environment; values set with `pulumi config set --secret --path` stay secret. @default {} */
    environment: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
          error: (iss) =>
            `${JSON.stringify(iss.input)} is not an environment variable name; expected letters, digits and "_", not starting with a digit`,
        }),
        z.union([z.string(), z.number(), z.boolean()]),
      )
      .default({}),
    /** Container runtime: `nvidia` for GPU services. @default "runc" */
    runtime: z.enum(["runc", "nvidia"]).default("runc"),
    /** `host` shares the host's network; `bridge` publishes `ports`. @default "bridge" */
    network: z.enum(["host", "bridge"]).default("bridge"),
    /** Ports the service listens on (host networking) or publishes (bridge). @default [] */
    ports: z.array(portMapping).default([]),
    /** Bind mounts, named volumes and tmpfs. @default [] */
    volumes: z.array(volume).default([]),
    /** Devices passed through, compose style `host[:container[:perms]]`. @example ["/dev/dri", "/dev/video0"] */
    devices: z.array(z.string().superRefine(checked(deviceProblem))).default([]),
    /** Size of /dev/shm; PyTorch data loaders and DeepStream need more than Docker's 64m. @default Docker's 64m @example "2g" */
    shmSize: size("2g").optional(),
    /**
     * IPC namespace: `host`, `private`, `shareable` or `service:<name>`.
     * @default the Docker daemon's `default-ipc-mode`
     * @example "host"
     */
    ipc: z.union([z.enum(["host", "private", "shareable"]), z.string().regex(/^service:[a-z0-9-]+$/)]).optional(),
    /**
     * Resource limits by name (nofile, memlock, ...): one number sets both limits, or `{ soft, hard }`.
     * @default {}
     * @example { "memlock": -1, "nofile": { "soft": 65536, "hard": 65536 } }
     */
    ulimits: z
      .record(
        z.string().refine((n) => (ULIMIT_NAMES as readonly string[]).includes(n), {
          error: (iss) =>
            `${JSON.stringify(iss.input)} is not a ulimit name${didYouMean(String(iss.input), ULIMIT_NAMES)} Expected one of: ${ULIMIT_NAMES.join(", ")}`,
        }),
        z.union([
          z.number().int(),
          z.strictObject({
            /** The limit the process starts with (it may raise it up to `hard`); -1 for unlimited. @example 65536 */
            soft: z.number().int(),
            /** The ceiling the process cannot raise the limit above; -1 for unlimited. @example 65536 */
            hard: z.number().int(),
          }),
        ]),
      )
      .superRefine((limits, ctx) => {
        for (const [n, v] of Object.entries(limits)) {
          const { soft, hard } = typeof v === "number" ? { soft: v, hard: v } : v;
          const where = typeof v === "number" ? [n] : [n, "soft"];
          if (soft < -1 || hard < -1)
            refuse(
              ctx,
              typeof v === "number" ? [n] : [n, soft < -1 ? "soft" : "hard"],
              `got ${Math.min(soft, hard)}; expected -1 (unlimited) or a limit of 0 or more`,
            );
          else if (hard !== -1 && (soft === -1 || soft > hard)) {
            refuse(
              ctx,
              where,
              `soft limit ${soft === -1 ? "-1 (unlimited)" : soft} is above the hard limit ${hard}; expected soft at most hard (-1 is unlimited)`,
            );
          }
        }
      })
      .default({}),
    /**
     * Models the service runs (`models` entries by name): each host builds the model's TensorRT
     * engine inside this service's image and mounts it read-only at `path`. Needs runtime `nvidia`.
     * @default []
     * @example [{ name: "detector", path: "/models/model.engine" }]
     */
    models: z.array(ServiceModel).default([]),
    /** Health check; rollouts wait for it. @default none (the image's own `HEALTHCHECK`, if any) */
    healthcheck: healthcheck.optional(),
    /**
     * How a new version replaces the running one on each host (compose and containers targets;
     * Kubernetes rolls pods by `deploy.rollout`). `blue-green`: it starts beside the old one, must
     * pass its health check, then the stack's proxy (`proxy`) switches its ports to it and the old
     * one drains and stops; a version that never gets healthy never takes a request and is
     * removed. `recreate`: the old one stops, then the new one starts (a gap), for what cannot
     * run twice at once. Refused for blue-green: host networking, a UDP port, no TCP port, no
     * health check, a service joining its IPC namespace, no `proxy`.
     * @default "blue-green" where it works and the service uses neither the GPU nor devices (a
     *   second copy would need them twice), "recreate" otherwise; the `Service` resource's
     *   `update` input says which and why
     * @example "recreate"
     */
    update: z.enum(["blue-green", "recreate"]).optional(),
    /** When Docker restarts the container (compose's `restart`). @default "unless-stopped" */
    restart: z.enum(["no", "always", "on-failure", "unless-stopped"]).default(DEFAULT_RESTART),
    /** Log driver and options. @default { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } } */
    logging: z
      .strictObject({
        /** Docker log driver. @default "json-file" @example "journald" */
        driver: z.string().min(1).default("json-file"),
        /**
         * The driver's options; names the built-in json-file, local and journald drivers do not take are refused.
         * @default { "max-size": "10m", "max-file": "3" } for json-file and local, {} for other drivers
         */
        options: stringMap.optional(),
      })
      .superRefine((l, ctx) => {
        for (const [key, message] of logOptionProblems(l.driver, l.options ?? {})) refuse(ctx, ["options", key], message);
      })
      .transform(({ driver, options }): LogSettings => ({
        driver,
        options: options ?? ((ROTATING_LOG_DRIVERS as readonly string[]).includes(driver) ? { ...DEFAULT_LOG_OPTIONS } : {}),
      }))
      .default({ driver: "json-file", options: { ...DEFAULT_LOG_OPTIONS } }),
    /** CPU/memory limits and GPU requests. @default {} */
    resources: z
      .strictObject({
        /** CPU cores. @default none (no CPU limit) @example 2.5 */
        cpus: z.number().min(0.01).optional(),
        /** Memory limit (the Jetson's GPU shares this RAM). @default none (no memory limit) @example "4g" */
        memory: size("4g")
          .superRefine(
            checked((v) =>
              (parseSize(v) ?? MIN_MEMORY_BYTES) < MIN_MEMORY_BYTES
                ? `"${v}" is below Docker's minimum memory limit of 6m; expected at least 6m, e.g. 4g`
                : undefined,
            ),
          )
          .optional(),
        /** GPUs requested: "all" or a count (a Jetson has one integrated GPU). @default none (no GPU request) @example "all" */
        gpus: z.union([z.literal("all"), z.number().int().positive()]).optional(),
      })
      .default({}),
    /** Services that must start first, with the condition to wait for. @example { "mediamtx": "healthy" } */
    dependsOn: z.record(z.string(), z.enum(["started", "healthy"])).default({}),
    /** Container labels, for tooling that selects containers. @default {} @example { "com.example.team": "vision" } */
    labels: stringMap.default({}),
    /** User (and group) to run as. @default the image's `USER` @example "1000:1000" */
    user: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/, {
        error: (iss) => `${JSON.stringify(iss.input)} is not a user; expected NAME or UID, optionally with :GROUP or :GID, e.g. 1000:1000`,
      })
      .optional(),
    /** Mount the root filesystem read-only. @default false */
    readOnlyRootFilesystem: z.boolean().default(false),
    /** Linux capabilities added, without the `CAP_` prefix, or `ALL`. @default [] @example ["NET_BIND_SERVICE"] */
    capAdd: z.array(capability).superRefine(uniqueCapabilities("capAdd")).default([]),
    /** Linux capabilities dropped, without the `CAP_` prefix, or `ALL`. @default [] @example ["ALL"] */
    capDrop: z.array(capability).superRefine(uniqueCapabilities("capDrop")).default([]),
    /**
     * Docker security options (compose's `security_opt`).
     * @default ["no-new-privileges:true"]
     * @example ["no-new-privileges:true", "apparmor=unconfined"]
     */
    securityOpt: z
      .array(z.string().superRefine(checked(securityOptProblem)))
      .superRefine((list, ctx) =>
        refuseRepeats(list, ctx, (v, first) => `"${v}" is listed twice (also securityOpt[${first}]); expected each security option once`),
      )
      .default([...DEFAULT_SECURITY_OPT]),
  })
  // Runs even when a field failed, so one message lists every problem (see `StackConfig`).
  .superRefine((svc, ctx) => refineService(svc, ctx), { when: () => true });
export type ServiceSpec = z.infer<typeof ServiceSpec>;

/** The proxy each host runs for its `blue-green` services (HAProxy, images/proxy). */
export const ProxySpec = z
  .strictObject({
    /**
     * The proxy image, pinned like any service image (an exact version tag, resolved to its digest
     * at deploy time, or a digest). Exactly one of `image` and `build`.
     * @default none (set `build` instead)
     * @example "registry.lab:5000/fleet/proxy:2.6.12"
     */
    image: imageRef.optional(),
    /** Name of an `images` entry built by this stack (context `images/proxy`). @default none (set `image` instead) @example "proxy" */
    build: z.string().optional(),
    /**
     * How long the old version keeps the connections it has after a switch: the proxy sends it
     * nothing new at once, and ends what is still open when this passes.
     * @default "30s"
     */
    drainTimeout: healthDuration(false).default("30s"),
  })
  .superRefine((p, ctx) => {
    if ((p.image === undefined) === (p.build === undefined)) {
      refuse(ctx, [], 'expected exactly one of "image" (an external image) and "build" (the name of an images entry)');
    }
  });
export type ProxySpec = z.infer<typeof ProxySpec>;

/** Where and how services are deployed. */
export const DeploySpec = z.strictObject({
  /**
   * `compose`: a compose project per host through `@pulumi/command`; `containers`: one
   * `docker.Container` per service per host; `kubernetes`: DaemonSets on a k3s fleet.
   * @default "compose"
   */
  target: z.enum(["compose", "containers", "kubernetes"]).default("compose"),
  /** Rolling updates across hosts. */
  rollout: z
    .strictObject({
      /** Hosts updated at once: a count or a percentage of the fleet. @default 1 */
      maxUnavailable: z
        .union([
          z.number().int().min(1),
          z.string().regex(/^([1-9][0-9]?|100)%$/, {
            error: (iss) => `${JSON.stringify(iss.input)} is not a count or percentage; expected e.g. 1 or "25%"`,
          }),
        ])
        .default(1),
    })
    .default({ maxUnavailable: 1 }),
  /** The cluster, for `target: kubernetes` (k3s on the Jetsons). */
  kubernetes: z
    .strictObject({
      /** The cluster's kubeconfig. Must be a Pulumi secret. @example "(pulumi config set --secret --path deploy.kubernetes.kubeconfig < k3s.yaml)" */
      kubeconfig: z.string().min(1).optional(),
      /**
       * Write the manifests into this directory instead of applying them (a GitOps repository). No
       * Secret is written there: create `registry-credentials` and `<service>-environment` in the cluster apart.
       * @example "gitops/fleet"
       */
      renderYamlToDirectory: z.string().min(1).optional(),
      /** The namespace services run in. @default "jetson-fleet" */
      namespace: name("namespace").default("jetson-fleet"),
      /** Node labels that select the Jetsons services run on. @default { "kubernetes.io/arch": "arm64" } @example { "nvidia.com/gpu.present": "true" } */
      nodeSelector: stringMap.optional(),
      /**
       * How long `up` waits for one workload's rollout (every pod updated and Ready) before it
       * fails, leaving the pods not yet replaced on the previous version. @default "10m" @example "20m"
       */
      rolloutTimeout: duration.optional(),
    })
    .optional(),
});
export type DeploySpec = z.infer<typeof DeploySpec>;

/**
 * The stack configuration: the project's keys in `Pulumi.<stack>.yaml`, without the
 * `<project>:` prefix.
 */
export const StackConfigShape = {
  /** Marks a production stack: stricter pinning and host-key rules. @default false */
  production: z.boolean().default(false),
  /** The fleet. @default [] */
  hosts: z.array(HostSpec).default([]),
  /** Docker and NVIDIA runtime pins. */
  runtime: RuntimeSpec,
  /** Image registry. */
  registry: RegistrySpec.optional(),
  /** Images built by this stack. @default [] */
  images: z.array(ImageSpec).default([]),
  /** ONNX models delivered to every host, and the TensorRT engines their services build on each. @default [] */
  models: z.array(ModelSpec).default([]),
  /** Services deployed to every host. @default [] */
  services: z.array(ServiceSpec).default([]),
  /** The proxy of every host with a `blue-green` service. @default none (every service is updated `recreate`) */
  proxy: ProxySpec.optional(),
  /** Deploy target and rollout. @default { target: "compose" } */
  deploy: DeploySpec.default({ target: "compose", rollout: { maxUnavailable: 1 } }),
};

// `when: () => true` runs the cross-field rules even when some field already failed, so one
// message lists every problem; the rules therefore read the value defensively.
export const StackConfig = z.strictObject(StackConfigShape).superRefine(refineStackConfig, { when: () => true });
export type StackConfig = z.infer<typeof StackConfig>;
/** The stack config as written (before defaults). */
export type StackConfigInput = z.input<typeof StackConfig>;

/** A value's shape for messages, without echoing long or secret content. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return value.length <= 40 ? `the text ${JSON.stringify(value)}` : "a text";
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return `${typeof value} ${value}`;
  return typeof value;
}
