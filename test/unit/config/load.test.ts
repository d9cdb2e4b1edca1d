import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_LOG_OPTIONS, StackConfigError, formatPath, parseStackConfig, securePathsInStackFile } from "../../../components/index.ts";
import { PROJECT, VALID_SECRET_PATHS, hostKey, rawValues, validConfig } from "../../support/fixtures.ts";

// Tests break configs in ways the types forbid, on purpose.
type Mutable = Record<string, any>;

function parse(mutate: (c: Mutable) => void = () => {}, secretPaths: ReadonlySet<string> = VALID_SECRET_PATHS, stack = "prod") {
  const config = validConfig() as Mutable;
  mutate(config);
  return parseStackConfig({ project: PROJECT, stack, values: rawValues(config), secretPaths });
}

function problems(mutate: (c: Mutable) => void, secretPaths?: ReadonlySet<string>): readonly string[] {
  try {
    parse(mutate, secretPaths);
  } catch (err) {
    assert.ok(err instanceof StackConfigError, `expected StackConfigError, got ${String(err)}`);
    return err.lines;
  }
  assert.fail("expected the config to be rejected");
}

const F = "Pulumi.prod.yaml: jetson-fleet:";

describe("parseStackConfig accepts a valid stack", () => {
  it("applies the documented defaults", () => {
    const cfg = parse();
    assert.equal(cfg.hosts[0]?.port, 22);
    assert.equal(cfg.hosts[0]?.arch, "arm64");
    assert.equal(cfg.runtime.docker.package, "docker-ce");
    assert.equal(cfg.runtime.nvidiaDefaultRuntime, true);
    assert.deepEqual(cfg.runtime.daemonJson, { "log-driver": "json-file", "log-opts": DEFAULT_LOG_OPTIONS });
    assert.equal(cfg.services[0]?.restart, "unless-stopped");
    assert.deepEqual(cfg.services[0]?.logging, { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } });
    assert.deepEqual(cfg.services[0]?.securityOpt, ["no-new-privileges:true"]);
    assert.deepEqual(cfg.deploy, { target: "compose", rollout: { maxUnavailable: 1 } });
    assert.equal(cfg.images[0]?.dockerfile, "Dockerfile");
    assert.deepEqual(cfg.images[0]?.platforms, ["linux/arm64"]);
  });

  it("ignores other namespaces' keys", () => {
    const values = { ...rawValues(validConfig()), "aws:region": "eu-west-1" };
    assert.doesNotThrow(() => parseStackConfig({ project: PROJECT, stack: "dev", values, secretPaths: VALID_SECRET_PATHS }));
  });

  it("accepts secrets given as a whole encrypted object", () => {
    assert.doesNotThrow(() => parse(() => {}, new Set(["hosts", "registry"])));
  });
});

// Each row breaks one thing and names every line the single error message must hold.
const table: { name: string; mutate: (c: Mutable) => void; secretPaths?: ReadonlySet<string>; expected: string[] }[] = [
  {
    name: "wrong type (text for a port)",
    mutate: (c) => (c.hosts[0].port = "twenty-two"),
    expected: [`${F}hosts[0].port: got the text "twenty-two"; expected a port number from 1 to 65535`],
  },
  {
    name: "port out of range",
    mutate: (c) => (c.hosts[1].port = 70000),
    expected: [`${F}hosts[1].port: got number 70000; expected a port number from 1 to 65535`],
  },
  {
    name: "wrong type (text for a boolean)",
    mutate: (c) => (c.production = "yes"),
    expected: [`${F}production: got the text "yes"; expected true or false`],
  },
  {
    name: "wrong type (object for a list)",
    mutate: (c) => (c.hosts = { "jetson-01": {} }),
    expected: [`${F}hosts: got an object; expected a list`],
  },
  {
    name: "missing required section",
    mutate: (c) => delete c.runtime,
    expected: [`${F}runtime: is missing; expected an object (a map of keys)`],
  },
  {
    name: "value outside an enum",
    mutate: (c) => (c.services[0].runtime = "cuda"),
    expected: [`${F}services[0].runtime: got the text "cuda"; expected one of: "runc", "nvidia"`],
  },
  {
    name: "unknown host key with a did-you-mean",
    mutate: (c) => (c.hosts[0].adress = "10.0.0.1"),
    expected: [
      `${F}hosts[0].adress: unknown key "adress"; did you mean "address"? Expected one of: name, address, port, user, privateKey, sudoPassword, hostKey, l4tRelease, arch, labels`,
    ],
  },
  {
    name: "unknown top-level key with a did-you-mean",
    mutate: (c) => {
      c.servces = [];
    },
    expected: [
      `${F}servces: unknown key "servces"; did you mean "services"? Expected one of: production, hosts, runtime, registry, images, models, services, proxy, deploy`,
    ],
  },
  {
    name: "unknown key with nothing close",
    mutate: (c) => (c.deploy.strategy = "blue-green"),
    expected: [`${F}deploy.strategy: unknown key "strategy" Expected one of: target, rollout, kubernetes`],
  },
  {
    name: "kubernetes target without a cluster",
    mutate: (c) => (c.deploy.target = "kubernetes"),
    expected: [`${F}deploy.kubernetes: target kubernetes needs a cluster; expected kubeconfig (a secret) or renderYamlToDirectory`],
  },
  {
    name: "kubernetes target with both a cluster and a directory, kubeconfig in plain text",
    mutate: (c) => {
      c.deploy.target = "kubernetes";
      c.deploy.kubernetes = { kubeconfig: "apiVersion: v1", renderYamlToDirectory: "gitops" };
    },
    expected: [
      `${F}deploy.kubernetes: sets both kubeconfig and renderYamlToDirectory; expected one of them`,
      `${F}deploy.kubernetes.kubeconfig: is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'deploy.kubernetes.kubeconfig'`,
    ],
  },
  {
    name: "kubernetes rollout timeout that is not a duration",
    mutate: (c) => {
      c.deploy.target = "kubernetes";
      c.deploy.kubernetes = { renderYamlToDirectory: "gitops", rolloutTimeout: "soon" };
    },
    expected: [`${F}deploy.kubernetes.rolloutTimeout: "soon" is not a duration; expected e.g. 30s, 1m30s or 500ms`],
  },
  {
    name: "private key in plain text",
    mutate: () => {},
    secretPaths: new Set(["hosts[1].privateKey", "registry.password"]),
    expected: [
      `${F}hosts[0].privateKey: is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[0].privateKey'`,
    ],
  },
  {
    name: "registry password in plain text",
    mutate: () => {},
    secretPaths: new Set(["hosts[0].privateKey", "hosts[1].privateKey"]),
    expected: [
      `${F}registry.password: is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'registry.password'`,
    ],
  },
  {
    name: "private key missing: the message says how to store it as a secret",
    mutate: (c) => delete c.hosts[1].privateKey,
    expected: [
      `${F}hosts[1].privateKey: is missing; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[1].privateKey'`,
    ],
  },
  {
    name: "private key that is not a key (and not echoed)",
    mutate: (c) => (c.hosts[0].privateKey = "hunter2"),
    expected: [
      `${F}hosts[0].privateKey: is not a private key in OpenSSH or PEM form; expected the contents of a key file such as ~/.ssh/id_ed25519`,
    ],
  },
  {
    name: "duplicate host names",
    mutate: (c) => (c.hosts[1].name = "jetson-01"),
    expected: [`${F}hosts[1].name: duplicate host name "jetson-01" (also hosts[0]); expected every host name once`],
  },
  {
    name: "duplicate service names",
    mutate: (c) => c.services.push({ name: "mediamtx", image: "bluenviron/mediamtx:1.9.3" }),
    expected: [`${F}services[2].name: duplicate service name "mediamtx" (also services[1]); expected every service name once`],
  },
  {
    name: "malformed image reference",
    mutate: (c) => (c.services[1].image = "Bluenviron/MediaMTX:1.9"),
    expected: [
      `${F}services[1].image: "Bluenviron/MediaMTX:1.9" is not a valid image reference; expected [registry/]repository[:tag][@sha256:<64 hex digits>], lower-case`,
    ],
  },
  {
    name: "malformed digest",
    mutate: (c) => (c.services[1].image = "bluenviron/mediamtx@sha256:abc"),
    expected: [
      `${F}services[1].image: "bluenviron/mediamtx@sha256:abc" is not a valid image reference; expected [registry/]repository[:tag][@sha256:<64 hex digits>], lower-case`,
    ],
  },
  {
    name: "latest in production",
    mutate: (c) => {
      c.production = true;
      c.hosts[1].hostKey = hostKey.publicKey;
      c.images[0].baseImages.RUNTIME_BASE = `nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime@sha256:${"a".repeat(64)}`;
      c.services[1].image = "bluenviron/mediamtx:latest";
    },
    expected: [
      `${F}services[1].image: "bluenviron/mediamtx:latest" uses the tag "latest"; production stacks pin images: expected an exact version tag or @sha256:<digest>`,
    ],
  },
  {
    name: "untagged image, unpinned base image and unpinned host key in production",
    mutate: (c) => {
      c.production = true;
      c.services[1].image = "bluenviron/mediamtx";
    },
    expected: [
      `${F}hosts[1].hostKey: is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>`,
      `${F}images[0].baseImages.RUNTIME_BASE: "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime" is not pinned by digest; production base images are expected as repository:tag@sha256:<digest>`,
      `${F}services[1].image: "bluenviron/mediamtx" has no tag or digest; production stacks pin images: expected repository:version or repository@sha256:<digest>`,
    ],
  },
  {
    name: "malformed host key data",
    mutate: (c) => (c.hosts[0].hostKey = "ssh-ed25519 AAAAnotakey"),
    expected: [
      `${F}hosts[0].hostKey: the key data does not decode as a ssh-ed25519 public key; expected one OpenSSH public key such as "ssh-ed25519 AAAAC3Nza..." (ssh-keyscan -t ed25519 HOST prints it)`,
    ],
  },
  {
    name: "host key of an unknown type",
    mutate: (c) => (c.hosts[0].hostKey = "ssh-dss AAAAB3NzaC1kc3M="),
    expected: [
      `${F}hosts[0].hostKey: key type "ssh-dss" is not an SSH host key type; expected one OpenSSH public key such as "ssh-ed25519 AAAAC3Nza..." (ssh-keyscan -t ed25519 HOST prints it)`,
    ],
  },
  {
    name: "malformed addresses",
    mutate: (c) => {
      c.hosts[0].address = "300.1.1.1";
      c.hosts[1].address = "jetson_02!";
    },
    expected: [
      `${F}hosts[0].address: "300.1.1.1" is not an IP address or host name; expected e.g. 192.168.1.20, fe80::1 or jetson-01.lab`,
      `${F}hosts[1].address: "jetson_02!" is not an IP address or host name; expected e.g. 192.168.1.20, fe80::1 or jetson-01.lab`,
    ],
  },
  {
    name: "two host-network services on one port",
    mutate: (c) => (c.services[0].ports = [{ target: 8554 }]),
    expected: [
      `${F}services[1].ports[0]: host port 8554/tcp is already claimed by service "inference" (services[0]); expected each host port to be used by one service`,
    ],
  },
  {
    name: "a bridge service publishing a port a host-network service holds",
    mutate: (c) => c.services.push({ name: "webui", image: "nginx:1.27", ports: [{ target: 80, published: 8889 }] }),
    expected: [
      `${F}services[2].ports[0]: host port 8889/tcp is already claimed by service "mediamtx" (services[1]); expected each host port to be used by one service`,
    ],
  },
  {
    name: "dependency on an undefined service",
    mutate: (c) => (c.services[0].dependsOn = { webui: "healthy" }),
    expected: [`${F}services[0].dependsOn.webui: service "webui" is not defined; expected one of: mediamtx`],
  },
  {
    name: "build of an undefined image",
    mutate: (c) => (c.services[0].build = "detector"),
    expected: [`${F}services[0].build: image "detector" is not defined under images; expected one of: inference`],
  },
  {
    name: "both image and build",
    mutate: (c) => (c.services[0].image = "nginx:1.27"),
    expected: [`${F}services[0]: expected exactly one of "image" (an external image) and "build" (the name of an images entry)`],
  },
  {
    name: "daemon.json key the component owns",
    mutate: (c) => (c.runtime.daemonJson = { "default-runtime": "runc" }),
    expected: [
      `${F}runtime.daemonJson["default-runtime"]: "default-runtime" is managed by the host component; expected runtime.nvidiaDefaultRuntime instead`,
    ],
  },
  {
    name: "compose target with hosts and services but no compose tool",
    mutate: (c) => delete c.runtime.compose,
    expected: [
      `${F}runtime.compose: is missing; deploy.target compose runs a compose tool on every host: expected { package: "docker-compose-plugin", version: "<apt version>" } (or docker-compose-v2 / docker-compose)`,
    ],
  },
  {
    name: "compose tool of an unknown package",
    mutate: (c) => (c.runtime.compose = { package: "podman-compose" as "docker-compose", version: "1.0.6" }),
    expected: [
      `${F}runtime.compose.package: got the text "podman-compose"; expected one of: "docker-compose-plugin", "docker-compose-v2", "docker-compose"`,
    ],
  },
];

describe("parseStackConfig rejects bad config with one message listing every problem", () => {
  for (const row of table) {
    it(row.name, () => {
      assert.deepEqual(problems(row.mutate, row.secretPaths), row.expected);
    });
  }

  it("collects problems from every section into one message", () => {
    let caught: unknown;
    try {
      parse((c) => {
        c.hosts[0].port = 0;
        c.servces = [];
        c.services[0].dependsOn = { nope: "started" };
      }, new Set());
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof StackConfigError);
    assert.equal(
      caught.message,
      [
        "invalid stack config (6 problems); nothing was changed:",
        `${F}hosts[0].port: got number 0; expected a port number from 1 to 65535`,
        `${F}hosts[0].privateKey: is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[0].privateKey'`,
        `${F}hosts[1].privateKey: is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'hosts[1].privateKey'`,
        `${F}registry.password: is stored in plain text; expected a Pulumi secret: cat FILE | pulumi config set --stack prod --secret --path 'registry.password'`,
        `${F}servces: unknown key "servces"; did you mean "services"? Expected one of: production, hosts, runtime, registry, images, models, services, proxy, deploy`,
        `${F}services[0].dependsOn.nope: service "nope" is not defined; expected one of: mediamtx`,
      ].join("\n"),
    );
  });

  it("never repeats a secret value", () => {
    const lines = problems((c) => {
      c.hosts[0].privateKey = 12345;
      c.registry.password = ["hunter2-password"];
    }).join("\n");
    assert.doesNotMatch(lines, /12345|hunter2/);
    assert.match(lines, /hosts\[0\]\.privateKey: got a number; expected text/);
  });
});

describe("securePathsInStackFile", () => {
  it("finds exactly the paths Pulumi encrypted", () => {
    const text = [
      "encryptionsalt: v1:abc",
      "config:",
      "  jetson-fleet:production: true",
      "  jetson-fleet:registry:",
      "    server: registry.lab:5000",
      "    password:",
      "      secure: v1:AAAA",
      "  jetson-fleet:hosts:",
      "    - name: a",
      "      privateKey:",
      "        secure: v1:BBBB",
      "    - name: b",
      "  jetson-fleet:token:",
      "    secure: v1:CCCC",
      "  aws:secretKey:",
      "    secure: v1:DDDD",
    ].join("\n");
    assert.deepEqual([...securePathsInStackFile(text, PROJECT)].sort(), ["hosts[0].privateKey", "registry.password", "token"]);
  });
});

describe("formatPath", () => {
  const rows: [PropertyKey[], string][] = [
    [["hosts", 0, "port"], "hosts[0].port"],
    [["runtime", "daemonJson", "log-opts"], 'runtime.daemonJson["log-opts"]'],
    [["services", 2, "environment", "NVIDIA_VISIBLE_DEVICES"], "services[2].environment.NVIDIA_VISIBLE_DEVICES"],
    [["production"], "production"],
  ];
  for (const [path, expected] of rows) it(expected, () => assert.equal(formatPath(path), expected));
});
