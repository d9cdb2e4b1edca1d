// Simulated Jetsons started by tools/dev-env.sh exactly as the dev stack gets them (each at a loopback
// address of its own, the stack's service ports published there, the dev registry reachable from
// the sim's own 127.0.0.1:5000 through an SSH tunnel), under a prefix and address range of the
// test's own, so tests never touch the dev stack's sims. Commands inside a sim run through
// `docker exec`: they open no SSH session, so counting the sshd logins counts the stack's own.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./engine.ts";
import { stopSims, type SimHost } from "./jetson-sim.ts";
import { DOCKER, docker, pushedDigest, run } from "./services.ts";
import { parse } from "yaml";

export interface DevFleetOptions {
  /** Container name prefix of the sims. @example "jetson-engine" */
  readonly prefix: string;
  /** Three octets of the loopback range: sim i answers at NET.i. @example "127.0.2" */
  readonly addressNet: string;
  /** @default 3 */
  readonly count?: number;
  /** First SSH port - 1 (sim i's sshd is on BASE+i). @example 22100 */
  readonly portBase: number;
  /** Start from fresh sims (no earlier bootstrap), as a new Jetson is. @default true */
  readonly fresh?: boolean;
  /** Ports the sims publish on their address (`JETSON_SIM_PUBLISH`). @default the dev stack's service ports */
  readonly publish?: string;
  /**
   * Registries each sim reaches at its own 127.0.0.1:PORT through its tunnel, this machine's
   * 127.0.0.1:PORT (`JETSON_DEV_REGISTRIES`).
   * @default ["127.0.0.1:5000"] (the dev registry)
   * @example ["127.0.0.1:5000", authRegistry.server]
   */
  readonly registries?: readonly string[];
}

/** One container of a compose project, as `docker inspect` shows it. */
export interface ComposeContainer {
  readonly image: string;
  /** `running`, `running/healthy`, `exited`, ... */
  readonly status: string;
  readonly id: string;
}

export interface DevFleet {
  readonly hosts: readonly SimHost[];
  readonly privateKey: string;
  readonly sudoPassword: string;
  /** BUILDX_CONFIG and BUILDX_BUILDER for the engine (the dev buildkitd). */
  readonly buildEnv: Record<string, string>;
  /** The stack config's `hosts` for these sims (without secrets). */
  hostsConfig(): Record<string, unknown>[];
  /** The secrets of `hostsConfig()`, by `--path`. */
  hostSecrets(): Record<string, string>;
  /** A root shell command inside a sim (no SSH); rejects on a non-zero exit. */
  exec(host: SimHost, script: string): Promise<string>;
  /** The root shell command's exit code and output, never rejecting. */
  tryExec(host: SimHost, script: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** SSH logins the sim's sshd has accepted since it booted. */
  logins(host: SimHost): Promise<number>;
  /** The containers of compose project `project` on the sim, by service: image, status(/health), id. */
  composeContainers(host: SimHost, project: string): Promise<Record<string, ComposeContainer>>;
  stop(): Promise<void>;
}

const DEV_ENV = join(REPO, "tools", "dev-env.sh");
/** The sims run this machine's architecture. */
const SIM_ARCH = process.arch === "arm64" ? "arm64" : "amd64";

export async function startDevFleet(options: DevFleetOptions): Promise<DevFleet> {
  const env = {
    ...process.env,
    JETSON_SIM_PREFIX: options.prefix,
    JETSON_SIM_ADDRESS_NET: options.addressNet,
    JETSON_SIM_PORT_BASE: String(options.portBase),
    JETSON_DEV_HOSTS: String(options.count ?? 3),
    ...(options.publish !== undefined ? { JETSON_SIM_PUBLISH: options.publish } : {}),
    ...(options.registries !== undefined ? { JETSON_DEV_REGISTRIES: options.registries.join(" ") } : {}),
  };
  if (options.fresh ?? true) await stopSims(options.prefix);
  const { stdout } = await run(DEV_ENV, ["start"], { env, maxBuffer: 16 * 1024 * 1024, cwd: REPO });
  const exports = Object.fromEntries(
    [...(stdout.trim().split("\n").pop() ?? "").matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] ?? "", m[2] ?? ""]),
  );
  const simsFile = exports["JETSON_DEV_SIMS"];
  if (!simsFile || !exports["BUILDX_BUILDER"] || !exports["BUILDX_CONFIG"]) throw new Error(`tools/dev-env.sh start printed:\n${stdout}`);
  const hosts = readFileSync(simsFile, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as SimHost);
  const vars = Object.fromEntries(
    [...(await run(join(REPO, "tools", "jetson-sim.sh"), ["env"], { env })).stdout.matchAll(/^export (\w+)=(\S+)$/gm)].map((m) => [
      m[1] ?? "",
      m[2] ?? "",
    ]),
  );
  const privateKey = readFileSync(vars["JETSON_SIM_PRIVATE_KEY"] ?? "", "utf8");
  const sudoPassword = readFileSync(vars["JETSON_SIM_SUDO_PASSWORD_FILE"] ?? "", "utf8").trim();

  const tryExec = (host: SimHost, script: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(DOCKER, ["exec", "-i", host.name, "bash", "-s"], { stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.once("error", reject);
      child.once("close", (code) => resolve({ code: code ?? 1, stdout: out, stderr: err }));
      child.stdin.end(`set -euo pipefail\n${script}\n`);
    });
  const exec = async (host: SimHost, script: string) => {
    const r = await tryExec(host, script);
    if (r.code !== 0) throw new Error(`${host.name}: ${script}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  return {
    hosts,
    privateKey,
    sudoPassword,
    buildEnv: { BUILDX_CONFIG: exports["BUILDX_CONFIG"], BUILDX_BUILDER: exports["BUILDX_BUILDER"] },
    hostsConfig: () =>
      hosts.map((h) => ({
        name: h.name,
        address: h.address,
        port: h.port,
        user: h.user,
        hostKey: h.hostKey,
        l4tRelease: h.l4tRelease,
        arch: SIM_ARCH,
      })),
    hostSecrets: () =>
      Object.fromEntries(
        hosts.flatMap((_, i) => [[`hosts[${i}].privateKey`, privateKey] as const, [`hosts[${i}].sudoPassword`, sudoPassword] as const]),
      ),
    exec,
    tryExec,
    logins: async (host) =>
      Number((await exec(host, "journalctl -q -u ssh.service -o cat | grep -c '^Accepted publickey' || true")).trim()),
    composeContainers: async (host, project) => {
      const out = await exec(
        host,
        `docker ps -a --filter label=com.docker.compose.project=${project} --format '{{.ID}}' | xargs -r docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}} {{.State.Status}}{{if .State.Health}}/{{.State.Health.Status}}{{end}} {{.Id}}'`,
      );
      return Object.fromEntries(
        out
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((line) => {
            const [service = "", image = "", status = "", id = ""] = line.split(" ");
            return [service, { image, status, id }];
          }),
      );
    },
    stop: async () => {
      await run(DEV_ENV, ["stop-sims"], { env, cwd: REPO });
    },
  };
}

/**
 * Samples every process's command line on the hosts until stopped (`docker exec`, no SSH): what a
 * user on the host, or `ps`, would see while the stack works there.
 */
export function sampleProcessLists(fleet: DevFleet, intervalMs = 200): { stop(): Promise<string> } {
  let samples = "";
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const host of fleet.hosts) {
        const r = await fleet.tryExec(host, "ps -eo args= ; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' || true");
        samples += r.stdout;
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** The host port the engine tests and benches publish the web-probe service on. */
export const PROBE_PORT = 18080;
/** The web-probe's health check: its own probe command, quick enough for rollout tests. */
export const PROBE_HEALTHCHECK = { test: ["CMD", "/web-probe", "probe"], interval: "1s", timeout: "2s", retries: 2, startPeriod: "2s" };

/** The web-probe service running `image` on PROBE_PORT (HTTP: blue-green behind a stack's proxy), with `extra` settings (resources, environment). */
export function probeService(image: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "probe",
    image,
    ports: [{ target: 8080, published: PROBE_PORT, appProtocol: "http" }],
    healthcheck: PROBE_HEALTHCHECK,
    ...extra,
  };
}

/** The host port of a second web-probe beside the first (`recreatedProbe`, or a blue-green one). */
export const PROBE_SECOND_PORT = 18081;

/** A second web-probe, `probe-recreate` on PROBE_SECOND_PORT, updated `recreate`: what a gap costs beside blue-green. */
export function recreatedProbe(image: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return probeService(image, {
    name: "probe-recreate",
    ports: [{ target: 8080, published: PROBE_SECOND_PORT, appProtocol: "http" }],
    update: "recreate",
    ...extra,
  });
}

/** The dev stack's services (`Pulumi.dev.yaml`) and, last, `probeService(image, extra)`. */
export function devServicesWithProbe(image: string, extra: Record<string, unknown> = {}): Record<string, unknown>[] {
  const dev = parse(readFileSync(join(REPO, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
  return [...(dev.config["jetson-fleet:services"] as Record<string, unknown>[]), probeService(image, extra)];
}

/** web-probe releases pushed to the dev registry, by digest: two good ones and one whose health check fails. */
export interface Probe {
  readonly v1: string;
  readonly v2: string;
  readonly broken: string;
}

/** Builds and pushes the web-probe releases as `127.0.0.1:5000/<repository>/web-probe:<version>`. */
export async function pushProbe(repository: string): Promise<Probe> {
  const out: Record<string, string> = {};
  for (const [key, version, healthy] of [
    ["v1", "1.0.0", "true"],
    ["v2", "2.0.0", "true"],
    ["broken", "3.0.0", "false"],
  ] as const) {
    const tag = `127.0.0.1:5000/${repository}/web-probe:${version}`;
    await run(join(REPO, "images", "web-probe", "build.sh"), [tag, version, healthy]);
    await docker("push", "-q", tag);
    out[key] = await pushedDigest(tag);
  }
  return out as unknown as Probe;
}
