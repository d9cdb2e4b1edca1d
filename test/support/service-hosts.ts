// Simulated Jetsons ready for services, for the services' integration tests and bench: bootstrapped
// with the JetsonHost step scripts (Docker engine, stand-in nvidia runtime), docker-compose
// installed, and a registry on this machine's loopback reachable from each host's own loopback
// through an SSH reverse tunnel (loopback registries need no TLS). The web-probe image
// (images/web-probe) is pushed there in three releases: v1, v2 and a broken v3 whose health check fails.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import {
  HOST_SCRIPTS,
  RuntimeSpec,
  hostCommand,
  hostStdin,
  renderHostScript,
  renderServiceScript,
  type HostScript,
  type HostStep,
} from "../../components/index.ts";
import { IMAGES_DIR, removeImages } from "./images.ts";
import { ssh, startSims, type SimFleet, type SimHost, type SshResult } from "./jetson-sim.ts";
import { docker, run, scratchDir, startRegistry, type Registry } from "./services.ts";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

/** The registry's address as every host sees it (its end of the tunnel). */
export const HOST_REGISTRY = "127.0.0.1:5000";

const runtime = RuntimeSpec.parse({
  docker: { package: "docker.io", version: "20.10.24+dfsg1-1+deb12u1" },
  nvidiaToolkitVersion: "1.16.2-1",
});
const STEP_ENV: Record<HostScript, Record<string, string>> = {
  facts: { DOCKER_PACKAGE: "docker.io", EXPECTED_L4T: "36.4.3" },
  "install-docker": { DOCKER_PACKAGE: "docker.io", DOCKER_VERSION: runtime.docker.version, APT_SOURCES: "" },
  "install-nvidia-toolkit": { NVIDIA_TOOLKIT_VERSION: runtime.nvidiaToolkitVersion, APT_SOURCES: "" },
  "configure-docker": { DAEMON_JSON: JSON.stringify(runtime.daemonJson), NVIDIA_DEFAULT_RUNTIME: "false" },
  verify: { NVIDIA_DEFAULT_RUNTIME: "false" },
};

/** The web-probe releases, as digest-pinned references the hosts pull (`127.0.0.1:5000/web-probe@sha256:…`). */
export interface ProbeReleases {
  readonly v1: string;
  readonly v2: string;
  /** Its /health answers 503: a release that must be rolled back. */
  readonly broken: string;
}

export interface ServiceHosts {
  readonly fleet: SimFleet;
  readonly hosts: readonly SimHost[];
  readonly releases: ProbeReleases;
  /** The registry on this machine (its `server`, host:port here); the hosts reach it as HOST_REGISTRY. */
  readonly registry: Registry;
  /**
   * Runs compose-apply.sh on `host` exactly as ComposeProject's apply step does for a
   * sudo-password host: its create command line, and its standard input (`composeStep`): the
   * password (`password`, default the sims' own), the step, the file. `env` adds to or overrides
   * the create parameters; PROJECT defaults to "jetson-fleet".
   */
  apply(host: SimHost, composeFile: string, env?: Record<string, string>, password?: string): Promise<SshResult>;
  /**
   * The same step's delete command, with the same stdin (the provider sends a delete the stdin the
   * step was created with): ACTION=delete and the file's sha256. `env` adds to the delete parameters.
   */
  remove(host: SimHost, composeFile: string, env?: Record<string, string>): Promise<SshResult>;
  /** A root shell command on the host (sent on stdin through the same elevation); rejects on a non-zero exit. */
  sh(host: SimHost, command: string): Promise<string>;
  /** Pushes this machine's image `local` to the hosts' registry as `name:tag`; the reference the hosts pull it by, pinned by digest. */
  push(local: string, name: string, tag: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The apply step as `ComposeProject` renders it for `composeFile` on host `hostName`: the create
 * parameters (`env` over the defaults), the delete's (`deleteEnv`
 * over PROJECT, HOST_NAME, ACTION=delete and the file's sha256).
 */
export function composeStep(hostName: string, composeFile: string, env: Record<string, string> = {}, deleteEnv = env): HostStep {
  const create = { PROJECT: "jetson-fleet", HOST_NAME: hostName, HEALTH_TIMEOUT: "60", ...env };
  return {
    script: renderServiceScript("compose-apply"),
    create,
    delete: {
      PROJECT: create.PROJECT,
      HOST_NAME: hostName,
      ACTION: "delete",
      FILE_SHA256: createHash("sha256").update(composeFile).digest("hex"),
      ...deleteEnv,
    },
  };
}

async function buildReleases(registry: Registry, tags: string[]): Promise<ProbeReleases> {
  const build = join(IMAGES_DIR, "web-probe", "build.sh");
  const releases: [keyof ProbeReleases, string, string][] = [
    ["v1", "1.0.0", "true"],
    ["v2", "2.0.0", "true"],
    ["broken", "3.0.0", "false"],
  ];
  const out: Partial<Record<keyof ProbeReleases, string>> = {};
  for (const [key, version, healthy] of releases) {
    const tag = `${registry.server}/web-probe:${version}`;
    await run(build, [tag, version, healthy]);
    tags.push(tag);
    await docker("push", "-q", tag);
    const { stdout } = await docker("image", "inspect", "-f", "{{index .RepoDigests 0}}", tag);
    out[key] = `${HOST_REGISTRY}/web-probe@${stdout.trim().split("@")[1] ?? ""}`;
  }
  return out as ProbeReleases;
}

/** Starts `count` sims (prefix `prefix`), bootstraps them in parallel, installs docker-compose, opens the registry tunnels. */
export async function startServiceHosts(count: number, prefix: string): Promise<ServiceHosts> {
  const registry = await startRegistry();
  const tunnels: ChildProcess[] = [];
  const tags: string[] = [];
  let fleet: SimFleet | undefined;
  const stop = async () => {
    for (const t of tunnels) t.kill("SIGTERM");
    await fleet?.stop();
    await registry.stop();
    await removeImages(...tags);
  };
  try {
    const releases = await buildReleases(registry, tags);
    fleet = await startSims(count, { prefix });
    const f = fleet;
    // The same launcher and wrapper as every host step, so a host whose sudo does not ask
    // (NOPASSWD) runs the command, not the password's line.
    const sh = async (host: SimHost, command: string) => {
      const r = await ssh(f, host, hostCommand("test-shell", "create", "sudo-password"), {
        input: hostStdin("sudo-password", f.sudoPassword, { script: `set -euo pipefail\n${command}\n`, create: {} }),
      });
      if (r.code !== 0) throw new Error(`${host.name}: ${command}: exit ${r.code}: ${r.stderr}`);
      return r.stdout;
    };
    await Promise.all(
      f.hosts.map(async (host) => {
        for (const id of HOST_SCRIPTS) {
          const r = await ssh(f, host, hostCommand(id, "create", "sudo-password"), {
            input: hostStdin("sudo-password", f.sudoPassword, { script: renderHostScript(id), create: STEP_ENV[id] }),
          });
          if (r.code !== 0) throw new Error(`${host.name} ${id}: ${r.stderr}`);
        }
        await sh(
          host,
          "command -v docker-compose >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null",
        );
      }),
    );
    const knownHosts = join(scratchDir("tunnel"), "known_hosts");
    writeFileSync(knownHosts, f.hosts.map((h) => `[${h.address}]:${h.port} ${h.hostKey}`).join("\n") + "\n");
    for (const host of f.hosts) {
      const tunnel = spawn(
        "ssh",
        [
          ...[
            "-N",
            "-i",
            f.privateKeyFile,
            "-p",
            String(host.port),
            "-o",
            `UserKnownHostsFile=${knownHosts}`,
            "-o",
            "StrictHostKeyChecking=yes",
          ],
          ...["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-R", `${HOST_REGISTRY}:${registry.server}`],
          `${host.user}@${host.address}`,
        ],
        { stdio: "ignore" },
      );
      tunnels.push(tunnel);
    }
    for (const host of f.hosts) {
      await sh(host, `for i in $(seq 1 100); do curl -sf http://${HOST_REGISTRY}/v2/ >/dev/null && exit 0; sleep 0.2; done; exit 1`);
    }
    return {
      fleet: f,
      hosts: f.hosts,
      releases,
      registry,
      apply: (host, composeFile, env = {}, password = f.sudoPassword) =>
        ssh(f, host, hostCommand("compose-apply", "create", "sudo-password"), {
          input: hostStdin("sudo-password", password, composeStep(host.name, composeFile, env), composeFile),
        }),
      remove: (host, composeFile, env = {}) =>
        ssh(f, host, hostCommand("compose-apply", "delete", "sudo-password"), {
          input: hostStdin(
            "sudo-password",
            f.sudoPassword,
            composeStep(host.name, composeFile, { PROJECT: env["PROJECT"] ?? "jetson-fleet" }, env),
            composeFile,
          ),
        }),
      sh,
      push: async (local, name, tag) => {
        const remote = `${registry.server}/${name}:${tag}`;
        await docker("tag", local, remote);
        tags.push(remote);
        await docker("push", "-q", remote);
        const { stdout } = await docker("image", "inspect", "-f", "{{index .RepoDigests 0}}", remote);
        return `${HOST_REGISTRY}/${name}@${stdout.trim().split("@")[1] ?? ""}`;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
