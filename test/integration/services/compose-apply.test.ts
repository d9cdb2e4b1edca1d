// The compose mode on a simulated Jetson over real SSH, sent exactly as ComposeProject's apply step
// sends it: a spec using every compose field rendered by renderComposeFile runs on the host's real
// Docker engine as docker inspect shows; a no-op changes nothing; a good update switches digests;
// a broken release is rolled back to the previous digests and keeps serving, the step failing with
// the host, the service and the health output.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ServiceSpec, renderComposeFile } from "../../../components/index.ts";
import { startServiceHosts, type ServiceHosts } from "../../support/service-hosts.ts";
import type { SimHost } from "../../support/jetson-sim.ts";

const probeHealth = { test: ["CMD", "/web-probe", "probe"], interval: "1s", timeout: "2s", retries: 2, startPeriod: "2s" };

function stack(web: string, edge: string): ServiceSpec[] {
  return [
    ServiceSpec.parse({
      name: "web",
      image: web,
      runtime: "nvidia",
      ports: [{ target: 8080, published: 18080, hostIp: "127.0.0.1" }],
      environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video" },
      volumes: [
        { source: "/opt/jf6/models", target: "/models", readOnly: true },
        { source: "/opt/jf6/output", target: "/output" },
        { type: "volume", source: "probe-cache", target: "/cache" },
        { type: "tmpfs", target: "/tmp" },
      ],
      devices: ["/dev/null:/dev/probe-null:r"],
      shmSize: "256m",
      ipc: "shareable",
      ulimits: { nofile: { soft: 1024, hard: 2048 } },
      healthcheck: probeHealth,
      logging: { options: { "max-size": "5m", "max-file": "2" } },
      resources: { cpus: 0.5, memory: "128m" },
      labels: { "fleet.role": "web" },
      user: "65534:65534",
      readOnlyRootFilesystem: true,
      capDrop: ["ALL"],
    }),
    ServiceSpec.parse({
      name: "edge",
      image: edge,
      network: "host",
      ports: [{ target: 18081 }],
      environment: { PORT: 18081 },
      healthcheck: probeHealth,
      restart: "always",
      dependsOn: { web: "healthy" },
    }),
  ];
}
const file = (web: string, edge: string) => renderComposeFile(stack(web, edge), { web, edge });

interface Inspected {
  Id: string;
  Config: { Image: string; User: string; Labels: Record<string, string>; Env: string[] };
  State: { Status: string; Health?: { Status: string } };
  HostConfig: {
    Runtime: string;
    NetworkMode: string;
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null;
    RestartPolicy: { Name: string };
    LogConfig: { Type: string; Config: Record<string, string> };
    NanoCpus: number;
    Memory: number;
    ShmSize: number;
    IpcMode: string;
    Ulimits: { Name: string; Soft: number; Hard: number }[] | null;
    ReadonlyRootfs: boolean;
    CapDrop: string[] | null;
    SecurityOpt: string[] | null;
    Devices: { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }[] | null;
    Tmpfs?: Record<string, string>;
  };
  Mounts: { Type: string; Source: string; Destination: string; RW: boolean; Name?: string }[];
}

describe("compose mode on a simulated Jetson", { timeout: 30 * 60_000 }, () => {
  let env: ServiceHosts;
  let host: SimHost;
  const inspect = async (service: string): Promise<Inspected> => {
    const id = (
      await env.sh(
        host,
        `docker ps -q --filter label=com.docker.compose.project=jetson-fleet --filter label=com.docker.compose.service=${service}`,
      )
    ).trim();
    return (JSON.parse(await env.sh(host, `docker inspect ${id}`)) as Inspected[])[0]!;
  };
  const serving = async (port: number) => (await env.sh(host, `curl -sf http://127.0.0.1:${port}/`)).trim();

  before(
    async () => {
      env = await startServiceHosts(1, "jf6-services");
      host = env.hosts[0]!;
      await env.sh(host, "mkdir -p /opt/jf6/models /opt/jf6/output");
    },
    { timeout: 25 * 60_000 },
  );
  after(() => env?.stop());

  it("runs the rendered spec as docker inspect shows: runtime, mounts, limits, restart, logs, health", async () => {
    const { v1 } = env.releases;
    const r = await env.apply(host, file(v1, v1));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated\nedge=${v1}\nweb=${v1}\n`);

    const web = await inspect("web");
    assert.equal(web.Config.Image, v1);
    assert.equal(web.State.Health?.Status, "healthy");
    assert.equal(web.HostConfig.Runtime, "nvidia");
    assert.equal(web.HostConfig.NetworkMode, "jetson-fleet_default");
    assert.deepEqual(web.HostConfig.PortBindings, { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "18080" }] });
    assert.deepEqual(web.Mounts.map((m) => [m.Type, m.Type === "volume" ? m.Name : m.Source, m.Destination, m.RW]).sort(), [
      ["bind", "/opt/jf6/models", "/models", false],
      ["bind", "/opt/jf6/output", "/output", true],
      ["tmpfs", "", "/tmp", true],
      ["volume", "jetson-fleet_probe-cache", "/cache", true],
    ]);
    assert.equal(web.HostConfig.RestartPolicy.Name, "unless-stopped");
    assert.deepEqual(web.HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "5m", "max-file": "2" } });
    assert.equal(web.HostConfig.NanoCpus, 500_000_000);
    assert.equal(web.HostConfig.Memory, 128 * 1024 ** 2);
    assert.equal(web.HostConfig.ShmSize, 256 * 1024 ** 2);
    assert.equal(web.HostConfig.IpcMode, "shareable");
    assert.deepEqual(web.HostConfig.Ulimits, [{ Name: "nofile", Soft: 1024, Hard: 2048 }]);
    assert.equal(web.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(web.HostConfig.CapDrop, ["ALL"]);
    assert.deepEqual(web.HostConfig.SecurityOpt, ["no-new-privileges:true"]);
    assert.deepEqual(web.HostConfig.Devices, [{ PathOnHost: "/dev/null", PathInContainer: "/dev/probe-null", CgroupPermissions: "r" }]);
    assert.equal(web.Config.User, "65534:65534");
    assert.equal(web.Config.Labels["fleet.role"], "web");
    assert.ok(web.Config.Env.includes("NVIDIA_VISIBLE_DEVICES=all"), web.Config.Env.join(" "));
    // The read-only root still has a writable /tmp.
    assert.equal((await env.sh(host, `docker exec ${web.Id} /web-probe probe`)).trim(), "200 version 1.0.0: ok");

    const edge = await inspect("edge");
    assert.equal(edge.HostConfig.NetworkMode, "host");
    assert.equal(edge.HostConfig.Runtime, "runc");
    assert.equal(edge.HostConfig.RestartPolicy.Name, "always");
    assert.deepEqual(edge.HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } });
    assert.equal(edge.State.Health?.Status, "healthy");
    assert.equal(await serving(18080), "1.0.0");
    assert.equal(await serving(18081), "1.0.0");
  });

  it("changes nothing when the same file is applied again", async () => {
    const { v1 } = env.releases;
    const before = [(await inspect("web")).Id, (await inspect("edge")).Id];
    const r = await env.apply(host, file(v1, v1));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `unchanged\nedge=${v1}\nweb=${v1}\n`);
    assert.deepEqual([(await inspect("web")).Id, (await inspect("edge")).Id], before);
  });

  it("switches to new digests once they are healthy", async () => {
    const { v2 } = env.releases;
    const r = await env.apply(host, file(v2, v2));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated\nedge=${v2}\nweb=${v2}\n`);
    assert.equal((await inspect("web")).Config.Image, v2);
    assert.equal(await serving(18080), "2.0.0");
    assert.equal(await serving(18081), "2.0.0");
  });

  it("rolls a broken release back to the previous digests, keeps serving, and fails naming host, service and health output", async () => {
    const { v2, broken } = env.releases;
    const r = await env.apply(host, file(broken, v2));
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    const message = `host ${host.name}: service web is not healthy after the update to ${broken}; health output: 503 version 3.0.0: model failed to load`;
    assert.equal(
      r.stderr.trim().split("\n").at(-1),
      `compose-apply: ${message}; rolled back to the previous digests (edge=${v2} web=${v2}), healthy again`,
    );
    const web = await inspect("web");
    assert.equal(web.Config.Image, v2);
    assert.equal(web.State.Health?.Status, "healthy");
    assert.equal(await serving(18080), "2.0.0");
    // The host keeps the last good file: the next identical apply of it is a no-op.
    const again = await env.apply(host, file(v2, v2));
    assert.equal(again.stdout, `unchanged\nedge=${v2}\nweb=${v2}\n`);
  });

  it("refuses to start when the host has no compose command, changing nothing", async () => {
    const { v2 } = env.releases;
    await env.sh(host, "mv /usr/bin/docker-compose /usr/bin/docker-compose.away");
    try {
      const r = await env.apply(host, file(v2, v2));
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr.trim(),
        `compose-apply: host ${host.name}: neither 'docker compose' nor 'docker-compose' is installed; expected one of them; nothing was changed`,
      );
    } finally {
      await env.sh(host, "mv /usr/bin/docker-compose.away /usr/bin/docker-compose");
    }
  });
});
