// The services' pure helpers, by table: sizes, durations, health timeouts, devices, pinning,
// start order, rollout batches and the bind mount sources an apply creates.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  dockerCpus,
  goDuration,
  ServiceArgsError,
  ServiceSpec,
  batchSize,
  bindSources,
  checkComposeProject,
  composeProjectName,
  digestPinned,
  durationSeconds,
  healthTimeoutSeconds,
  manifestUrl,
  parseDevice,
  renderBindSources,
  repositoryOf,
  rolloutBatches,
  secretEnvironmentOf,
  serviceEnvironment,
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

  it("renders a service's environment once: sorted by name, values as text, secret keys marked", () => {
    const spec = ServiceSpec.parse({ name: "web", image: "web:1", environment: { b: 1, A: true, A1: "x", TOKEN: "t" } });
    assert.deepEqual(serviceEnvironment(spec, ["TOKEN", "MISSING"]), [
      { name: "A", value: "true", secret: false },
      { name: "A1", value: "x", secret: false },
      { name: "TOKEN", value: "t", secret: true },
      { name: "b", value: "1", secret: false },
    ]);
    assert.deepEqual(serviceEnvironment(ServiceSpec.parse({ name: "web", image: "web:1" })), []);
  });

  it("spells durations and CPUs as the Docker provider reads them back", () => {
    for (const [duration, go] of [
      ["30s", "30s"],
      ["1m", "1m0s"],
      ["90s", "1m30s"],
      ["1m30s", "1m30s"],
      ["1h", "1h0m0s"],
      ["2h5s", "2h0m5s"],
      ["500ms", "500ms"],
      ["1.5s", "1.5s"],
      ["1500ms", "1.5s"],
      ["250us", "250µs"],
      ["0s", "0s"],
    ] as const) {
      assert.equal(goDuration(duration), go, duration);
    }
    for (const [cpus, docker] of [
      [1, "1.0"],
      [4, "4.0"],
      [1.5, "1.5"],
      [0.25, "0.25"],
    ] as const) {
      assert.equal(dockerCpus(cpus), docker, String(cpus));
    }
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
    // Joining another service's IPC namespace starts after it, as compose does.
    const joined = startOrder([ServiceSpec.parse({ name: "worker", image: "x:1", ipc: "service:broker" }), svc("broker")]);
    assert.deepEqual(
      joined.map((s) => s.name),
      ["broker", "worker"],
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

describe("bindSources", () => {
  type Mount = { type?: "bind" | "volume" | "tmpfs"; source?: string; target: string; readOnly?: boolean };
  const svc = (name: string, volumes: Mount[], user?: string) =>
    ServiceSpec.parse({ name, image: "x:1", volumes, ...(user === undefined ? {} : { user }) });
  it("lists every absolute bind source once, parents first, owned by the first numeric user mounting it read-write", () => {
    const table: [string, ServiceSpec[], { path: string; owner: string }[]][] = [
      ["no volumes", [svc("a", [])], []],
      [
        "the default stack: models and videos read-only, output and logs by the inference user, web read-only",
        [
          svc(
            "inference",
            [
              { source: "/opt/fleet/models", target: "/models", readOnly: true },
              { source: "/opt/fleet/videos", target: "/videos", readOnly: true },
              { source: "/opt/fleet/output", target: "/output" },
              { source: "/opt/fleet/logs", target: "/logs" },
            ],
            "10001:10001",
          ),
          svc("web-ui", [{ source: "/opt/fleet/web", target: "/usr/share/nginx/html", readOnly: true }]),
        ],
        [
          { path: "/opt/fleet/logs", owner: "10001:10001" },
          { path: "/opt/fleet/models", owner: "0:0" },
          { path: "/opt/fleet/output", owner: "10001:10001" },
          { path: "/opt/fleet/videos", owner: "0:0" },
          { path: "/opt/fleet/web", owner: "0:0" },
        ],
      ],
      ["read-write without a user: root's", [svc("a", [{ source: "/data", target: "/d" }])], [{ path: "/data", owner: "0:0" }]],
      ["a uid alone keeps root's group", [svc("a", [{ source: "/data", target: "/d" }], "1000")], [{ path: "/data", owner: "1000" }]],
      [
        "a user by name cannot be resolved: root's",
        [svc("a", [{ source: "/data", target: "/d" }], "fleet")],
        [{ path: "/data", owner: "0:0" }],
      ],
      [
        "read-only by the user: root's",
        [svc("a", [{ source: "/data", target: "/d", readOnly: true }], "1000:1000")],
        [{ path: "/data", owner: "0:0" }],
      ],
      [
        "named volumes, tmpfs and relative sources are compose's, not listed",
        [
          svc("a", [
            { type: "volume", source: "cache", target: "/c" },
            { type: "tmpfs", target: "/tmp" },
            { source: "./rel", target: "/r" },
          ]),
        ],
        [],
      ],
      [
        "one path in four spellings, shared: the first read-write mount with a numeric user decides",
        [
          svc("reader", [{ source: "/srv/out/", target: "/o", readOnly: true }], "7:7"),
          svc("rootwriter", [{ source: "/srv//out", target: "/o" }]),
          svc("writer", [{ source: "/srv/./out", target: "/o" }], "1000:1000"),
          svc("other", [{ source: "/srv/x/../out", target: "/o" }], "2000:2000"),
        ],
        [{ path: "/srv/out", owner: "1000:1000" }],
      ],
      [
        "a parent comes before its children (and before a sibling sorting between them)",
        [
          svc(
            "a",
            [
              { source: "/a/b", target: "/b" },
              { source: "/a-b", target: "/ab" },
              { source: "/a", target: "/a" },
            ],
            "5:5",
          ),
        ],
        [
          { path: "/a", owner: "5:5" },
          { path: "/a-b", owner: "5:5" },
          { path: "/a/b", owner: "5:5" },
        ],
      ],
    ];
    for (const [what, services, expected] of table) assert.deepEqual(bindSources(services), expected, what);
  });

  it("renders one OWNER PATH line each, and refuses a path that would break the lines", () => {
    assert.equal(
      renderBindSources([
        { path: "/opt/fleet/models", owner: "0:0" },
        { path: "/opt/with space", owner: "10001:10001" },
      ]),
      "0:0 /opt/fleet/models\n10001:10001 /opt/with space\n",
    );
    assert.equal(renderBindSources([]), "");
    assert.throws(() => bindSources([svc("a", [{ source: "/opt/x\ny", target: "/x" }])]), {
      name: "ServiceArgsError",
      message: 'service "a": bind mount source "/opt/x\\ny" holds a line break or NUL; expected a plain host path',
    });
  });
});
