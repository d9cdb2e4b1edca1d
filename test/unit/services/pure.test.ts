// The services' pure helpers, by table: sizes, durations, health timeouts, devices, pinning,
// start order and rollout batches.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ServiceArgsError,
  ServiceSpec,
  batchSize,
  checkComposeProject,
  composeProjectName,
  digestPinned,
  durationSeconds,
  healthTimeoutSeconds,
  manifestUrl,
  parseDevice,
  repositoryOf,
  rolloutBatches,
  secretEnvironmentOf,
  sizeBytes,
  sizeMegabytes,
  startOrder,
} from "../../../components/index.ts";

const D = `sha256:${"a".repeat(64)}`;

describe("services: pure helpers", () => {
  it("reads sizes and durations as Docker does", () => {
    const sizes: [string, number, number][] = [
      ["2g", 2 * 1024 ** 3, 2048],
      ["512m", 512 * 1024 ** 2, 512],
      ["1.5G", 1.5 * 1024 ** 3, 1536],
      ["64k", 65536, 1],
      ["1048576", 1048576, 1],
    ];
    for (const [size, bytes, mb] of sizes) assert.deepEqual([sizeBytes(size), sizeMegabytes(size)], [bytes, mb], size);
    const durations: [string, number][] = [
      ["10s", 10],
      ["1m30s", 90],
      ["500ms", 0.5],
      ["1h", 3600],
    ];
    for (const [d, s] of durations) assert.equal(durationSeconds(d), s, d);
    assert.throws(() => sizeBytes("2 GB"), { message: '"2 GB" is not a size; expected e.g. 2g or 512m' });
  });

  it("waits for the worst health check case plus a margin", () => {
    const h = (interval: string, timeout: string, retries: number, startPeriod: string) => ({
      healthcheck: { test: ["CMD", "true"], interval, timeout, retries, startPeriod },
    });
    const table: [Parameters<typeof healthTimeoutSeconds>[0], number][] = [
      [[], 30],
      [[{ healthcheck: undefined }], 30],
      [[h("10s", "5s", 3, "10s")], 10 + 3 * 15 + 30],
      [[h("1s", "2s", 2, "2s"), h("30s", "5s", 3, "1m")], 60 + 3 * 35 + 30],
    ];
    for (const [services, seconds] of table) assert.equal(healthTimeoutSeconds(services), seconds);
  });

  it("splits device mappings", () => {
    const table: [string, ReturnType<typeof parseDevice>][] = [
      ["/dev/dri", { hostPath: "/dev/dri", containerPath: "/dev/dri", permissions: "rwm" }],
      ["/dev/video0:/dev/video1", { hostPath: "/dev/video0", containerPath: "/dev/video1", permissions: "rwm" }],
      ["/dev/video0:/dev/video0:r", { hostPath: "/dev/video0", containerPath: "/dev/video0", permissions: "r" }],
      ["/dev/video0:rw", { hostPath: "/dev/video0", containerPath: "/dev/video0", permissions: "rw" }],
    ];
    for (const [mapping, parts] of table) assert.deepEqual(parseDevice(mapping), parts, mapping);
  });

  it("pins by digest only: a tag is dropped beside a digest, a tag alone needs resolving", () => {
    const table: [string, string | undefined][] = [
      [`registry.lab:5000/fleet/inference@${D}`, `registry.lab:5000/fleet/inference@${D}`],
      [`bluenviron/mediamtx:1.9.3@${D}`, `bluenviron/mediamtx@${D}`],
      ["bluenviron/mediamtx:1.9.3", undefined],
      ["registry.lab:5000/web:2", undefined],
    ];
    for (const [ref, pinned] of table) assert.equal(digestPinned(ref), pinned, ref);
    assert.equal(repositoryOf("registry.lab:5000/web:2"), "registry.lab:5000/web");
    assert.equal(repositoryOf("registry.lab:5000/web"), "registry.lab:5000/web");
  });

  it("finds the registry API of a reference", () => {
    const table: [string, string, string][] = [
      ["bluenviron/mediamtx:1.9.3", "https://registry-1.docker.io/v2/bluenviron/mediamtx/manifests/1.9.3", "docker.io"],
      ["nginx:1.27.4-alpine", "https://registry-1.docker.io/v2/library/nginx/manifests/1.27.4-alpine", "docker.io"],
      ["registry.lab:5000/fleet/ui:2.1", "https://registry.lab:5000/v2/fleet/ui/manifests/2.1", "registry.lab:5000"],
      ["127.0.0.1:5000/web:1", "http://127.0.0.1:5000/v2/web/manifests/1", "127.0.0.1:5000"],
      ["localhost:5000/web:1", "http://localhost:5000/v2/web/manifests/1", "localhost:5000"],
    ];
    for (const [ref, url, registry] of table) assert.deepEqual(manifestUrl(ref), { url, registry }, ref);
  });

  it("orders services after their dependencies and refuses cycles", () => {
    const svc = (name: string, dependsOn: Record<string, "started" | "healthy"> = {}) =>
      ServiceSpec.parse({ name, image: "x:1", dependsOn });
    const order = startOrder([svc("ui", { inference: "healthy" }), svc("inference", { mediamtx: "started" }), svc("mediamtx")]);
    assert.deepEqual(
      order.map((s) => s.name),
      ["mediamtx", "inference", "ui"],
    );
    assert.throws(() => startOrder([svc("a", { b: "started" }), svc("b", { a: "healthy" })]), {
      name: "ServiceArgsError",
      message: "services depend on each other in a cycle: a -> b -> a; expected no cycles in dependsOn",
    });
  });

  it("splits hosts into batches by count or percentage", () => {
    const hosts = (n: number) => Array.from({ length: n }, (_, i) => `h${i + 1}`);
    const table: [number, number | string, number, string[][]][] = [
      [3, 1, 1, [["h1"], ["h2"], ["h3"]]],
      [3, 2, 2, [["h1", "h2"], ["h3"]]],
      [3, 5, 3, [["h1", "h2", "h3"]]],
      [4, "25%", 1, [["h1"], ["h2"], ["h3"], ["h4"]]],
      [
        4,
        "50%",
        2,
        [
          ["h1", "h2"],
          ["h3", "h4"],
        ],
      ],
      [3, "50%", 1, [["h1"], ["h2"], ["h3"]]],
      [3, "10%", 1, [["h1"], ["h2"], ["h3"]]],
      [10, "30%", 3, [["h1", "h2", "h3"], ["h4", "h5", "h6"], ["h7", "h8", "h9"], ["h10"]]],
      [3, "100%", 3, [["h1", "h2", "h3"]]],
      [0, "25%", 0, []],
    ];
    for (const [n, max, size, batches] of table) {
      assert.equal(batchSize(n, max), size, `${n} hosts, ${max}`);
      assert.deepEqual(rolloutBatches(hosts(n), max), batches, `${n} hosts, ${max}`);
    }
    assert.throws(() => batchSize(3, 0), ServiceArgsError);
    assert.throws(() => batchSize(3, "0%"), {
      message: 'deploy.rollout.maxUnavailable is "0%"; expected a count or a percentage such as "25%"',
    });
  });
});

describe("composeProjectName", () => {
  it("makes <Pulumi project>-<stack> a compose project name", () => {
    const rows: [string, string, string][] = [
      ["jetson-fleet", "dev", "jetson-fleet-dev"],
      ["jetson-fleet", "prod", "jetson-fleet-prod"],
      ["jetson-fleet", "Prod.EU", "jetson-fleet-prod-eu"],
      ["Fleet_Infra", "site-7", "fleet_infra-site-7"],
      ["_fleet", "dev", "fleet-dev"],
    ];
    for (const [project, stack, name] of rows) {
      assert.equal(composeProjectName(project, stack), name, `${project}/${stack}`);
      assert.equal(checkComposeProject(name), name);
    }
  });
});

describe("secretEnvironmentOf", () => {
  it("finds the secret environment keys of each service from the stack file's secure paths", () => {
    const services = [
      ServiceSpec.parse({ name: "inference", image: "x:1", environment: { API_TOKEN: "t", MODE: "live", DB_PASSWORD: "p" } }),
      ServiceSpec.parse({ name: "ui", image: "y:1", environment: { SESSION_KEY: "k" } }),
    ];
    const table: [string[], Record<string, string[]>][] = [
      [[], {}],
      [["hosts[0].privateKey", "registry.password"], {}],
      [["services[0].environment.API_TOKEN"], { inference: ["API_TOKEN"] }],
      [['services[0].environment["DB_PASSWORD"]', "services[0].environment.API_TOKEN"], { inference: ["API_TOKEN", "DB_PASSWORD"] }],
      [["services[1].environment"], { ui: ["SESSION_KEY"] }],
      [["services[1]"], { ui: ["SESSION_KEY"] }],
      [["services"], { inference: ["API_TOKEN", "DB_PASSWORD", "MODE"], ui: ["SESSION_KEY"] }],
      [["services[0].environment.NOT_SET", "services[7].environment.X"], {}],
    ];
    for (const [paths, expected] of table) assert.deepEqual(secretEnvironmentOf(services, paths), expected, paths.join(", "));
  });
});
