// The compose renderer and the docker.Container mapping, field by field: each row changes one
// ServiceSpec field and states exactly what the compose file and the container inputs get.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import { ServiceSpec, composeService, containerArgs, renderComposeFile, type ServiceArgsError } from "../../../components/index.ts";
import { unwrap } from "../../support/mocks.ts";

const IMAGE = `registry.lab:5000/fleet/web@sha256:${"b".repeat(64)}`;
const base = { name: "web", image: "registry.lab:5000/fleet/web:2" };

/** What every service gets with nothing set: the safe defaults. */
const COMPOSE_DEFAULTS = {
  image: IMAGE,
  runtime: "runc",
  restart: "unless-stopped",
  logging: { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } },
  security_opt: ["no-new-privileges:true"],
};
const CONTAINER_DEFAULTS = {
  name: "web",
  image: IMAGE,
  envs: [],
  runtime: "runc",
  networkMode: "bridge",
  ports: [],
  mounts: [],
  devices: [],
  ulimits: [],
  restart: "unless-stopped",
  logDriver: "json-file",
  logOpts: { "max-size": "10m", "max-file": "3" },
  labels: [],
  readOnly: false,
  securityOpts: ["no-new-privileges:true"],
  mustRun: true,
};

const health = { test: ["CMD", "/web-probe", "probe"], interval: "5s", timeout: "2s", retries: 4, startPeriod: "20s" };

/** [field set, compose keys it adds or changes, container inputs it adds or changes] */
const TABLE: [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>][] = [
  [{}, {}, {}],
  [
    { entrypoint: ["/bin/app"], command: ["--port", "8080"] },
    { entrypoint: ["/bin/app"], command: ["--port", "8080"] },
    { entrypoints: ["/bin/app"], command: ["--port", "8080"] },
  ],
  [
    { environment: { NVIDIA_VISIBLE_DEVICES: "all", PORT: 8080, DEBUG: false } },
    { environment: { NVIDIA_VISIBLE_DEVICES: "all", PORT: "8080", DEBUG: "false" } },
    { envs: ["DEBUG=false", "NVIDIA_VISIBLE_DEVICES=all", "PORT=8080"] },
  ],
  [{ runtime: "nvidia" }, { runtime: "nvidia" }, { runtime: "nvidia" }],
  [{ network: "host", ports: [{ target: 8554 }, { target: 8889 }] }, { network_mode: "host" }, { networkMode: "host" }],
  [
    {
      ports: [
        { target: 80, published: 8088 },
        { target: 8189, protocol: "udp", hostIp: "127.0.0.1" },
      ],
    },
    { ports: ["0.0.0.0:8088:80/tcp", "127.0.0.1:8189:8189/udp"] },
    {
      ports: [
        { internal: 80, external: 8088, protocol: "tcp", ip: "0.0.0.0" },
        { internal: 8189, external: 8189, protocol: "udp", ip: "127.0.0.1" },
      ],
    },
  ],
  [
    {
      volumes: [
        { source: "/opt/fleet/models", target: "/models", readOnly: true },
        { source: "/opt/fleet/output", target: "/output" },
        { type: "volume", source: "cache", target: "/cache" },
        { type: "tmpfs", target: "/tmp" },
      ],
    },
    {
      volumes: [
        { type: "bind", source: "/opt/fleet/models", target: "/models", read_only: true },
        { type: "bind", source: "/opt/fleet/output", target: "/output", read_only: false },
        { type: "volume", source: "cache", target: "/cache", read_only: false },
        { type: "tmpfs", target: "/tmp" },
      ],
    },
    {
      mounts: [
        { type: "bind", source: "/opt/fleet/models", target: "/models", readOnly: true },
        { type: "bind", source: "/opt/fleet/output", target: "/output", readOnly: false },
        { type: "volume", source: "cache", target: "/cache", readOnly: false },
        { type: "tmpfs", target: "/tmp" },
      ],
    },
  ],
  [
    { devices: ["/dev/dri", "/dev/video0:/dev/video0:r"] },
    { devices: ["/dev/dri", "/dev/video0:/dev/video0:r"] },
    {
      devices: [
        { hostPath: "/dev/dri", containerPath: "/dev/dri", permissions: "rwm" },
        { hostPath: "/dev/video0", containerPath: "/dev/video0", permissions: "r" },
      ],
    },
  ],
  [{ shmSize: "2g" }, { shm_size: "2g" }, { shmSize: 2048 }],
  [{ ipc: "host" }, { ipc: "host" }, { ipcMode: "host" }],
  [{ ipc: "service:mediamtx" }, { ipc: "service:mediamtx" }, { ipcMode: "container:mediamtx" }],
  [
    { ulimits: { memlock: -1, nofile: { soft: 1024, hard: 4096 } } },
    { ulimits: { memlock: -1, nofile: { soft: 1024, hard: 4096 } } },
    {
      ulimits: [
        { name: "memlock", soft: -1, hard: -1 },
        { name: "nofile", soft: 1024, hard: 4096 },
      ],
    },
  ],
  [
    { healthcheck: health },
    { healthcheck: { test: health.test, interval: "5s", timeout: "2s", retries: 4, start_period: "20s" } },
    {
      healthcheck: { tests: health.test, interval: "5s", timeout: "2s", retries: 4, startPeriod: "20s" },
      wait: true,
      waitTimeout: 20 + 4 * 7 + 30,
    },
  ],
  [{ restart: "on-failure" }, { restart: "on-failure" }, { restart: "on-failure" }],
  [
    { logging: { driver: "journald", options: { tag: "web" } } },
    { logging: { driver: "journald", options: { tag: "web" } } },
    { logDriver: "journald", logOpts: { tag: "web" } },
  ],
  [{ resources: { cpus: 1.5, memory: "1g" } }, { cpus: 1.5, mem_limit: "1g" }, { cpus: "1.5", memory: 1024, memorySwap: 2048 }],
  [
    { resources: { gpus: "all" } },
    { deploy: { resources: { reservations: { devices: [{ driver: "nvidia", count: "all", capabilities: ["gpu"] }] } } } },
    { deviceRequests: [{ driver: "nvidia", count: -1, capabilities: ["gpu"] }] },
  ],
  [
    { resources: { gpus: 1 } },
    { deploy: { resources: { reservations: { devices: [{ driver: "nvidia", count: 1, capabilities: ["gpu"] }] } } } },
    { deviceRequests: [{ driver: "nvidia", count: 1, capabilities: ["gpu"] }] },
  ],
  [{ labels: { "fleet.role": "ui" } }, { labels: { "fleet.role": "ui" } }, { labels: [{ label: "fleet.role", value: "ui" }] }],
  [{ user: "10001:10001" }, { user: "10001:10001" }, { user: "10001:10001" }],
  [{ readOnlyRootFilesystem: true }, { read_only: true }, { readOnly: true }],
  [
    { capAdd: ["NET_BIND_SERVICE"], capDrop: ["ALL"] },
    { cap_add: ["NET_BIND_SERVICE"], cap_drop: ["ALL"] },
    { capabilities: { adds: ["NET_BIND_SERVICE"], drops: ["ALL"] } },
  ],
  [
    { securityOpt: ["no-new-privileges:true", "apparmor=unconfined"] },
    { security_opt: ["no-new-privileges:true", "apparmor=unconfined"] },
    { securityOpts: ["no-new-privileges:true", "apparmor=unconfined"] },
  ],
  [{ securityOpt: [] }, { security_opt: undefined }, { securityOpts: [] }],
];

/** `with` over `base`, with undefined meaning "left out". */
function merged(base: Record<string, unknown>, changes: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base, ...changes };
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out;
}

describe("services: compose and container rendering", () => {
  it("renders each spec field into compose keys and docker.Container inputs", () => {
    for (const [fields, compose, container] of TABLE) {
      const spec = ServiceSpec.parse({ ...base, ...fields });
      const label = JSON.stringify(fields);
      assert.deepEqual(composeService(spec, IMAGE), merged(COMPOSE_DEFAULTS, compose), label);
      assert.deepEqual(containerArgs(spec, { image: IMAGE }), merged(CONTAINER_DEFAULTS, container), label);
    }
  });

  it("orders dependencies with their conditions", () => {
    const spec = ServiceSpec.parse({ ...base, dependsOn: { inference: "healthy", mediamtx: "started" } });
    assert.deepEqual(composeService(spec, IMAGE)["depends_on"], {
      inference: { condition: "service_healthy" },
      mediamtx: { condition: "service_started" },
    });
  });

  it("keeps secret environment values secret in the container inputs", async () => {
    const spec = ServiceSpec.parse({ ...base, environment: { API_TOKEN: "t0ken", MODE: "live" } });
    const args = containerArgs(spec, { image: IMAGE, secretEnvironment: ["API_TOKEN"] });
    assert.ok(pulumi.Output.isInstance(args.envs));
    assert.equal(await pulumi.isSecret(args.envs as pulumi.Output<string[]>), true);
    assert.deepEqual(await unwrap(args.envs as pulumi.Output<string[]>), ["API_TOKEN=t0ken", "MODE=live"]);
    assert.deepEqual(containerArgs(spec, { image: IMAGE, secretEnvironment: ["OTHER"] }).envs, ["API_TOKEN=t0ken", "MODE=live"]);
  });

  it("renders a whole stack as a compose file with named volumes declared", () => {
    const services = [
      ServiceSpec.parse({ name: "mediamtx", image: "bluenviron/mediamtx:1.9.3", network: "host", ports: [{ target: 8554 }] }),
      ServiceSpec.parse({ ...base, volumes: [{ type: "volume", source: "cache", target: "/cache" }], dependsOn: { mediamtx: "started" } }),
    ];
    const mediamtx = `bluenviron/mediamtx@sha256:${"c".repeat(64)}`;
    const text = renderComposeFile(services, { mediamtx, web: IMAGE });
    assert.equal(
      text,
      `services:
  mediamtx:
    image: ${mediamtx}
    runtime: runc
    network_mode: host
    restart: unless-stopped
    logging:
      driver: json-file
      options:
        max-size: 10m
        max-file: "3"
    security_opt:
      - no-new-privileges:true
  web:
    image: ${IMAGE}
    runtime: runc
    volumes:
      - type: volume
        source: cache
        target: /cache
        read_only: false
    restart: unless-stopped
    logging:
      driver: json-file
      options:
        max-size: 10m
        max-file: "3"
    depends_on:
      mediamtx:
        condition: service_started
    security_opt:
      - no-new-privileges:true
volumes:
  cache: {}
`,
    );
    assert.deepEqual(Object.keys((parseYaml(text) as { services: object }).services), ["mediamtx", "web"]);
  });

  it("refuses an image that is missing or not pinned by digest", () => {
    const spec = ServiceSpec.parse(base);
    const expect = (message: string) => (err: unknown) => {
      assert.equal((err as ServiceArgsError).name, "ServiceArgsError");
      assert.equal((err as Error).message, message);
      return true;
    };
    assert.throws(() => renderComposeFile([spec], {}), expect('service "web" has no pinned image; expected images["web"]'));
    assert.throws(
      () => renderComposeFile([spec], { web: "registry.lab:5000/fleet/web:2" }),
      expect('service "web": "registry.lab:5000/fleet/web:2" is not pinned by digest; expected repository@sha256:<digest>'),
    );
  });
});
