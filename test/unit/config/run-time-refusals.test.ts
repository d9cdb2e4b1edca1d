// What `docker compose` or the Docker daemon would refuse only when a deploy runs is refused when
// the stack config is read, with the key path: one table row per class of refusal, each naming
// every line the single error message must hold.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ServiceSpec, StackConfigError, parseStackConfig } from "../../../components/index.ts";
import { PROJECT, VALID_SECRET_PATHS, rawValues, validConfig } from "../../support/fixtures.ts";

// Tests break configs in ways the types forbid, on purpose.
type Mutable = Record<string, any>;

function parse(mutate: (c: Mutable) => void) {
  const config = validConfig() as Mutable;
  mutate(config);
  return parseStackConfig({ project: PROJECT, stack: "prod", values: rawValues(config), secretPaths: VALID_SECRET_PATHS });
}

function problems(mutate: (c: Mutable) => void): readonly string[] {
  try {
    parse(mutate);
  } catch (err) {
    assert.ok(err instanceof StackConfigError, `expected StackConfigError, got ${String(err)}`);
    return err.lines;
  }
  assert.fail("expected the config to be rejected");
}

const F = "Pulumi.prod.yaml: jetson-fleet:";
const webUi = (extra: Mutable = {}) => ({ name: "web-ui", image: "nginx:1.27", ...extra });

const table: { name: string; mutate: (c: Mutable) => void; expected: string[] }[] = [
  // Mounts: Docker refuses a second mount at one container path ("Duplicate mount point").
  {
    name: "two mounts at one container path, whatever their types and trailing slashes",
    mutate: (c) =>
      (c.services[0].volumes = [
        { source: "/opt/models", target: "/models", readOnly: true },
        { type: "tmpfs", target: "/models/" },
        { type: "volume", source: "engine-cache", target: "/cache" },
        { source: "/opt/cache", target: "/output/../cache" },
      ]),
    expected: [
      `${F}services[0].volumes[1].target: "/models/" is already mounted by volumes[0]; expected each container path mounted once`,
      `${F}services[0].volumes[3].target: "/output/../cache" is already mounted by volumes[2]; expected each container path mounted once`,
    ],
  },
  {
    name: "mounts Docker cannot make: the root, a bind without a source, a bad volume name, a tmpfs with a source",
    mutate: (c) =>
      (c.services[0].volumes = [
        { source: "/opt/root", target: "/" },
        { target: "/models" },
        { source: "./videos", target: "/videos" },
        { type: "volume", source: "x", target: "/cache" },
        { type: "volume", target: "/anonymous" },
        { type: "tmpfs", source: "/opt/scratch", target: "/scratch", readOnly: true },
      ]),
    expected: [
      `${F}services[0].volumes[0].target: "/" is the container's root; expected a path below it, such as /models`,
      `${F}services[0].volumes[1].source: is missing; a bind mount needs the host path: expected an absolute path such as /opt/models`,
      `${F}services[0].volumes[3].source: "x" is not a volume name; expected at least two letters, digits, "_", "." or "-", starting with a letter or digit`,
      `${F}services[0].volumes[4].source: is missing; a volume mount needs the volume's name: expected e.g. model-cache`,
      `${F}services[0].volumes[5].readOnly: a tmpfs mount is always writable; expected readOnly left out (or a bind or volume mount)`,
      `${F}services[0].volumes[5].source: a tmpfs mount has no source; expected source left out (or type "bind" or "volume")`,
    ],
  },
  {
    name: "a relative bind source where the daemon gets it (deploy.target containers; compose resolves it)",
    mutate: (c) => {
      c.deploy.target = "containers";
      c.services[0].volumes = [{ source: "./models", target: "/models" }];
    },
    expected: [
      `${F}services[0].volumes[0].source: "./models" is relative, and deploy.target containers hands it to the Docker daemon, which takes absolute host paths only; expected e.g. /opt/models`,
    ],
  },
  // Devices: a container path twice, paths outside /dev, permissions Docker does not read.
  {
    name: "devices: one container path twice, a path outside /dev, a repeated permission, no /dev at all",
    mutate: (c) =>
      (c.services[0].devices = ["/dev/video0", "/dev/video1:/dev/video0", "/dev/../etc/shadow", "/dev/dri:rr", "video0", "/dev/"]),
    expected: [
      `${F}services[0].devices[1]: "/dev/video1:/dev/video0" maps a container path devices[0] maps already; expected each container device path once`,
      `${F}services[0].devices[2]: "/dev/../etc/shadow" names "/dev/../etc/shadow", not a path below /dev; expected /dev/PATH[:/dev/PATH][:PERMISSIONS], permissions r, w and m each at most once (e.g. /dev/video0:/dev/video0:rw)`,
      `${F}services[0].devices[3]: "/dev/dri:rr" repeats a permission; expected /dev/PATH[:/dev/PATH][:PERMISSIONS], permissions r, w and m each at most once (e.g. /dev/video0:/dev/video0:rw)`,
      `${F}services[0].devices[4]: "video0" is not a device mapping; expected /dev/PATH[:/dev/PATH][:PERMISSIONS], permissions r, w and m each at most once (e.g. /dev/video0:/dev/video0:rw)`,
      `${F}services[0].devices[5]: "/dev/" is not a device mapping; expected /dev/PATH[:/dev/PATH][:PERMISSIONS], permissions r, w and m each at most once (e.g. /dev/video0:/dev/video0:rw)`,
    ],
  },
  // dependsOn: compose refuses a cycle and an unknown service, and gives up waiting for a health
  // status a container never gets.
  {
    name: "two services depending on each other",
    mutate: (c) => (c.services[1].dependsOn = { inference: "started" }),
    expected: [
      `${F}services[1].dependsOn.inference: services depend on each other in a cycle: inference -> mediamtx -> inference; expected no cycles in dependsOn`,
    ],
  },
  {
    name: "a cycle through three services, beside an unknown one and a self-dependency",
    mutate: (c) => {
      c.services[1].dependsOn = { "web-ui": "started", mediamtx: "started" };
      c.services.push(webUi({ dependsOn: { inference: "healthy", recorder: "started" } }));
    },
    expected: [
      `${F}services[1].dependsOn.mediamtx: service "mediamtx" depends on itself; expected other services' names`,
      `${F}services[2].dependsOn.inference: services depend on each other in a cycle: inference -> mediamtx -> web-ui -> inference; expected no cycles in dependsOn`,
      `${F}services[2].dependsOn.recorder: service "recorder" is not defined; expected one of: inference, mediamtx`,
    ],
  },
  {
    name: "waiting for the health of a service whose health check is off",
    mutate: (c) => (c.services[1].healthcheck = { test: ["NONE"] }),
    expected: [
      `${F}services[0].dependsOn.mediamtx: service "mediamtx" turns its health check off (healthcheck.test ["NONE"]); expected condition "started", or a health check on "mediamtx"`,
    ],
  },
  {
    name: "an IPC namespace shared with an unknown service or with itself",
    mutate: (c) => {
      c.services[0].ipc = "service:recorder";
      c.services[1].ipc = "service:mediamtx";
    },
    expected: [
      `${F}services[0].ipc: service "recorder" is not defined; expected one of: mediamtx`,
      `${F}services[1].ipc: "service:mediamtx" names the service itself; expected another service's name, or "shareable"`,
    ],
  },
  // Logging: the daemon refuses option names a driver does not take and values it cannot read.
  {
    name: "json-file options: a size with a space, no files, a misspelt name, compression without rotation",
    mutate: (c) => (c.services[0].logging = { options: { "max-size": "10 MB", "max-file": "0", "max-szie": "1m", compress: "true" } }),
    expected: [
      `${F}services[0].logging.options.compress: compresses rotated files, and nothing rotates; expected max-size and a max-file of at least 2 beside it`,
      `${F}services[0].logging.options["max-file"]: "0" is not a file count; expected a whole number of at least 1, e.g. 3`,
      `${F}services[0].logging.options["max-size"]: "10 MB" is not a size; expected a positive number with an optional unit b, k, m or g, e.g. 10m`,
      `${F}services[0].logging.options["max-szie"]: unknown option "max-szie" for the json-file log driver; did you mean "max-size"? Expected one of: max-size, max-file, compress, labels, labels-regex, env, env-regex, tag, mode, max-buffer-size`,
    ],
  },
  {
    name: "local and journald options: a zero size, a compress that is not a boolean, rotation journald does not do",
    mutate: (c) => {
      c.services[0].logging = { driver: "local", options: { "max-size": "0m", compress: "yes" } };
      c.services[1].logging = { driver: "journald", options: { "max-size": "10m", tag: "{{.Name}}" } };
    },
    expected: [
      `${F}services[0].logging.options.compress: "yes" is not true or false; expected "true" or "false"`,
      `${F}services[0].logging.options["max-size"]: "0m" is not a size; expected a positive number with an optional unit b, k, m or g, e.g. 10m`,
      `${F}services[1].logging.options["max-size"]: unknown option "max-size" for the journald log driver Expected one of: labels, labels-regex, env, env-regex, tag, mode, max-buffer-size`,
    ],
  },
  {
    name: "delivery options every driver takes: an unknown mode, a buffer without non-blocking",
    mutate: (c) => {
      c.services[0].logging = { options: { "max-size": "10m", mode: "async" } };
      c.services[1].logging = { driver: "syslog", options: { "max-buffer-size": "4m" } };
    },
    expected: [
      `${F}services[0].logging.options.mode: got "async"; expected "blocking" or "non-blocking"`,
      `${F}services[1].logging.options["max-buffer-size"]: is only used with mode "non-blocking"; expected mode: "non-blocking" as well`,
    ],
  },
  // Ports: one host address and port per protocol; Docker binds IP addresses only.
  {
    name: "a host port on a wildcard address and on one of its addresses, and a host name as the address",
    mutate: (c) => {
      c.services.push(webUi({ ports: [{ target: 80, published: 8088, hostIp: "127.0.0.1" }] }));
      c.services.push({ name: "grafana", image: "grafana/grafana:11.2.0", ports: [{ target: 3000, published: 8088 }] });
      c.services.push({ name: "prometheus", image: "prom/prometheus:v2.54.1", ports: [{ target: 9090, hostIp: "jetson-01.lab" }] });
    },
    expected: [
      `${F}services[3].ports[0]: host port 8088/tcp is already claimed by service "web-ui" (services[2]); expected each host port to be used by one service`,
      `${F}services[4].ports[0].hostIp: "jetson-01.lab" is not an IP address; expected the host address to bind, e.g. 127.0.0.1, 0.0.0.0 or ::`,
    ],
  },
  {
    name: "one port twice in a host-network service, and a host address a host-network service cannot use",
    mutate: (c) => (c.services[1].ports = [{ target: 8554 }, { target: 8554, hostIp: "127.0.0.1" }, { target: 8554, protocol: "udp" }]),
    expected: [
      `${F}services[1].ports[1]: host port 8554/tcp is already claimed by ports[0] of this service; expected each host port once`,
      `${F}services[1].ports[1].hostIp: a host-network service binds the addresses it listens on itself; expected hostIp left out`,
    ],
  },
  {
    name: "the same host port on two addresses of the host is no conflict; on one address it is",
    mutate: (c) => {
      c.services.push(webUi({ ports: [{ target: 80, published: 8088, hostIp: "127.0.0.1" }] }));
      c.services.push({
        name: "grafana",
        image: "grafana/grafana:11.2.0",
        ports: [{ target: 3000, published: 8088, hostIp: "192.168.50.11" }],
      });
      c.services.push({ name: "admin", image: "nginx:1.27", ports: [{ target: 80, published: 8088, hostIp: "127.0.0.1" }] });
    },
    expected: [
      `${F}services[4].ports[0]: host port 127.0.0.1:8088/tcp is already claimed by service "web-ui" (services[2]); expected each host port to be used by one service`,
    ],
  },
  // Names and values Docker refuses when it creates the container.
  {
    name: "environment variable names Docker and the shell cannot use",
    mutate: (c) => (c.services[1].environment = { "1ST": "a", "MY-VAR": "b", OK_1: "c" }),
    expected: [
      `${F}services[1].environment["1ST"]: "1ST" is not an environment variable name; expected letters, digits and "_", not starting with a digit`,
      `${F}services[1].environment["MY-VAR"]: "MY-VAR" is not an environment variable name; expected letters, digits and "_", not starting with a digit`,
    ],
  },
  {
    name: "a restart policy Docker does not have",
    mutate: (c) => (c.services[1].restart = "sometimes"),
    expected: [`${F}services[1].restart: got the text "sometimes"; expected one of: "no", "always", "on-failure", "unless-stopped"`],
  },
  {
    name: "health checks that run nothing, and durations the daemon refuses",
    mutate: (c) => {
      c.services[0].healthcheck = { test: [] };
      c.services[1].healthcheck = { test: ["CMD"], interval: "500us", timeout: "0s", startPeriod: "0s" };
      // Docker joins the words after CMD-SHELL into one command: services[2] is fine.
      c.services.push(webUi({ healthcheck: { test: ["CMD-SHELL", "curl -f localhost", "||", "exit 1"] } }));
      c.services.push({ name: "grafana", image: "grafana/grafana:11.2.0", healthcheck: { test: ["NONE", "curl"] } });
      c.services.push({ name: "admin", image: "nginx:1.27", healthcheck: { test: ["curl", "-f", "localhost"] } });
      c.services.push({ name: "probe", image: "nginx:1.27", healthcheck: { test: ["CMD-SHELL", " "] } });
    },
    expected: [
      `${F}services[0].healthcheck.test: is empty; expected ["CMD", "<program>", "<argument>"...], ["CMD-SHELL", "<shell command>"] or ["NONE"]`,
      `${F}services[1].healthcheck.interval: "500us" is shorter than 1ms; expected at least 1ms, e.g. 10s`,
      `${F}services[1].healthcheck.test: "CMD" is followed by no program; expected ["CMD", "<program>", "<argument>"...], e.g. ["CMD", "curl", "-f", "http://localhost:8080/health"]`,
      `${F}services[1].healthcheck.timeout: "0s" is shorter than 1ms; expected at least 1ms, e.g. 10s`,
      `${F}services[3].healthcheck.test: "NONE" turns the check off and takes nothing after it; expected ["NONE"]`,
      `${F}services[4].healthcheck.test: starts with "curl"; expected the first element to be "CMD", "CMD-SHELL" or "NONE"`,
      `${F}services[5].healthcheck.test: "CMD-SHELL" is followed by no command; expected ["CMD-SHELL", "<shell command>"]`,
    ],
  },
  {
    name: "ulimits Docker does not know",
    mutate: (c) => (c.services[0].ulimits = { files: 1024, nofle: 65536, memlock: -1 }),
    expected: [
      `${F}services[0].ulimits.files: "files" is not a ulimit name Expected one of: core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack`,
      `${F}services[0].ulimits.nofle: "nofle" is not a ulimit name; did you mean "nofile"? Expected one of: core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack`,
    ],
  },
  {
    name: "soft limits above hard ones, and limits below -1",
    mutate: (c) => {
      c.services[0].ulimits = { memlock: -1, nofile: { soft: 70000, hard: 65536 } };
      c.services[1].ulimits = { nproc: { soft: -1, hard: 4096 }, stack: -2, core: { soft: 0, hard: -1 } };
    },
    expected: [
      `${F}services[0].ulimits.nofile.soft: soft limit 70000 is above the hard limit 65536; expected soft at most hard (-1 is unlimited)`,
      `${F}services[1].ulimits.nproc.soft: soft limit -1 (unlimited) is above the hard limit 4096; expected soft at most hard (-1 is unlimited)`,
      `${F}services[1].ulimits.stack: got -2; expected -1 (unlimited) or a limit of 0 or more`,
    ],
  },
  {
    name: "capabilities Linux does not have, with the prefix, or twice (ALL is one for both lists)",
    mutate: (c) => {
      c.services[0].capAdd = ["NET_ADMINN", "CAP_SYS_NICE", "SYS_NICE", "SYS_NICE"];
      c.services[0].capDrop = ["ALL", "ALL"];
      c.services[1].capAdd = ["ALL"];
    },
    expected: [
      `${F}services[0].capAdd[0]: "NET_ADMINN" is not a Linux capability; did you mean "NET_ADMIN"? Expected a name from capabilities(7) without "CAP_", e.g. NET_ADMIN, or ALL`,
      `${F}services[0].capAdd[1]: "CAP_SYS_NICE" is not a Linux capability; did you mean "SYS_NICE"? Expected a name from capabilities(7) without "CAP_", e.g. NET_ADMIN, or ALL`,
      `${F}services[0].capAdd[3]: "SYS_NICE" is listed twice (also capAdd[2]); expected each capability once`,
      `${F}services[0].capDrop[1]: "ALL" is listed twice (also capDrop[0]); expected each capability once`,
    ],
  },
  {
    name: "security options Docker does not read, or twice",
    mutate: (c) => {
      c.services[0].securityOpt = ["no-new-privileges:yes", "seccomp", "selinux=enforcing", "systempaths=confined"];
      c.services[1].securityOpt = ["no-new-privileges:true", "apparmor=unconfined", "label=disable", "no-new-privileges:true"];
    },
    expected: [
      `${F}services[0].securityOpt[0]: "no-new-privileges:yes": no-new-privileges takes true or false; expected e.g. no-new-privileges=true`,
      `${F}services[0].securityOpt[1]: "seccomp" is not a security option; expected no-new-privileges[:true|false], apparmor=PROFILE, seccomp=PROFILE|unconfined, label=..., systempaths=unconfined or writable-cgroups=true|false`,
      `${F}services[0].securityOpt[2]: "selinux" is not a security option Expected no-new-privileges[:true|false], apparmor=PROFILE, seccomp=PROFILE|unconfined, label=..., systempaths=unconfined or writable-cgroups=true|false`,
      `${F}services[0].securityOpt[3]: "systempaths=confined": systempaths takes only unconfined; expected systempaths=unconfined`,
      `${F}services[1].securityOpt[3]: "no-new-privileges:true" is listed twice (also securityOpt[0]); expected each security option once`,
    ],
  },
  {
    name: "limits below what the daemon accepts, a user it cannot parse",
    mutate: (c) => {
      c.services[0].resources = { memory: "4m", cpus: 0.001 };
      c.services[1].user = "1000 1000";
    },
    expected: [
      `${F}services[0].resources.cpus: got number 0.001; expected at least 0.01`,
      `${F}services[0].resources.memory: "4m" is below Docker's minimum memory limit of 6m; expected at least 6m, e.g. 4g`,
      `${F}services[1].user: "1000 1000" is not a user; expected NAME or UID, optionally with :GROUP or :GID, e.g. 1000:1000`,
    ],
  },
  {
    name: "build argument names a Dockerfile cannot declare",
    mutate: (c) => (c.images[0].baseImages = { "RUNTIME-BASE": "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime" }),
    expected: [
      `${F}images[0].baseImages["RUNTIME-BASE"]: "RUNTIME-BASE" is not a build argument name; expected letters, digits and "_", not starting with a digit`,
    ],
  },
];

describe("parseStackConfig refuses what docker compose or the daemon would refuse at run time", () => {
  for (const row of table) {
    it(row.name, () => {
      assert.deepEqual(problems(row.mutate), row.expected);
    });
  }
});

describe("what Docker accepts stays accepted", () => {
  it("a valid service using every checked field parses, with its values as given", () => {
    const cfg = parse((c) => {
      c.services[1] = {
        ...c.services[1],
        volumes: [
          { source: "/opt/models", target: "/models", readOnly: true },
          { type: "volume", source: "engine-cache", target: "/cache" },
          { type: "tmpfs", target: "/scratch" },
        ],
        devices: ["/dev/dri", "/dev/video0:/dev/video0:rw", "/dev/video1:/dev/video2"],
        ulimits: { memlock: -1, nofile: { soft: 1024, hard: 65536 }, core: { soft: 0, hard: -1 } },
        capAdd: ["NET_BIND_SERVICE", "SYS_NICE"],
        capDrop: ["ALL"],
        securityOpt: ["no-new-privileges:true", "apparmor=unconfined", "label=disable", "seccomp=unconfined"],
        logging: {
          driver: "json-file",
          options: { "max-size": "10m", "max-file": "5", compress: "true", mode: "non-blocking", "max-buffer-size": "4m" },
        },
        healthcheck: { test: ["CMD-SHELL", "wget -qO- localhost:8889 || exit 1"], startPeriod: "0s" },
        resources: { memory: "6m", cpus: 0.01 },
        user: "1000:1000",
      };
      c.services.push(webUi({ ports: [{ target: 80, published: 8088, hostIp: "127.0.0.1" }], dependsOn: { mediamtx: "healthy" } }));
      c.services.push({
        name: "grafana",
        image: "grafana/grafana:11.2.0",
        ports: [{ target: 3000, published: 8088, hostIp: "192.168.50.11" }],
      });
      c.services.push({
        name: "dns",
        image: "coredns/coredns:1.11.3",
        ports: [{ target: 53, published: 8088, protocol: "udp" }],
        ipc: "service:grafana",
      });
    });
    assert.equal(cfg.services.length, 5);
    assert.deepEqual(cfg.services[1]?.devices, ["/dev/dri", "/dev/video0:/dev/video0:rw", "/dev/video1:/dev/video2"]);
    assert.equal(cfg.services[1]?.logging.options["compress"], "true");
  });

  it("the users' 10m × 3 rotation goes only to drivers that rotate files; others get no options", () => {
    const cfg = parse((c) => {
      c.services[0].logging = { driver: "journald" };
      c.services[1].logging = { driver: "local" };
    });
    assert.deepEqual(cfg.services[0]?.logging, { driver: "journald", options: {} });
    assert.deepEqual(cfg.services[1]?.logging, { driver: "local", options: { "max-size": "10m", "max-file": "3" } });
    assert.deepEqual(ServiceSpec.parse({ name: "a", image: "nginx:1.27" }).logging, {
      driver: "json-file",
      options: { "max-size": "10m", "max-file": "3" },
    });
  });

  it("ServiceSpec alone refuses the same things (other repositories parse services with it)", () => {
    const result = ServiceSpec.safeParse({
      name: "a",
      image: "nginx:1.27",
      volumes: [
        { source: "/a", target: "/data" },
        { source: "/b", target: "/data" },
      ],
      logging: { driver: "journald", options: { "max-file": "3" } },
    });
    assert.equal(result.success, false);
    assert.deepEqual(
      result.error?.issues.map((i) => [i.path.join("."), i.message]),
      [
        [
          "logging.options.max-file",
          'unknown option "max-file" for the journald log driver Expected one of: labels, labels-regex, env, env-regex, tag, mode, max-buffer-size',
        ],
        ["volumes.1.target", '"/data" is already mounted by volumes[0]; expected each container path mounted once'],
      ],
    );
  });
});
