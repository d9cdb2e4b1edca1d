// Update strategies: which each service gets by default and why, and the explicit `blue-green`
// that validation refuses, naming the stack file, the key and the reason.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ServiceSpec, updatePlan, type UpdatePlan } from "../../../components/index.ts";
import { configProblems, validConfig } from "../../support/fixtures.ts";

// Tests write configs the types forbid, on purpose.
type Mutable = Record<string, any>;

const check = { test: ["CMD", "/web-probe", "probe"] };
const web = (extra: Mutable = {}) =>
  ServiceSpec.parse({ name: "web", image: "nginx:1.27.4", ports: [{ target: 80, published: 8088 }], healthcheck: check, ...extra });

describe("updatePlan: the default strategy and its reason", () => {
  const rows: { name: string; service: ServiceSpec; others?: ServiceSpec[]; proxy?: boolean; expected: UpdatePlan }[] = [
    {
      name: "a bridge service with a TCP port and a health check: blue-green",
      service: web(),
      expected: { strategy: "blue-green", reason: "publishes TCP port 8088 and has a health check" },
    },
    {
      name: "two TCP ports",
      service: web({ ports: [{ target: 80, published: 8088 }, { target: 443 }] }),
      expected: { strategy: "blue-green", reason: "publishes TCP ports 8088, 443 and has a health check" },
    },
    {
      name: "host networking",
      service: web({ network: "host", ports: [{ target: 8080 }] }),
      expected: { strategy: "recreate", reason: "uses host networking: two versions cannot listen on one host port at once" },
    },
    {
      name: "a UDP port",
      service: web({ ports: [{ target: 80 }, { target: 8189, protocol: "udp" }] }),
      expected: { strategy: "recreate", reason: "publishes UDP port 8189, which the proxy does not carry" },
    },
    {
      name: "no port",
      service: web({ ports: [] }),
      expected: { strategy: "recreate", reason: "publishes no TCP port for the proxy to switch" },
    },
    {
      name: "no health check",
      service: web({ healthcheck: undefined }),
      expected: { strategy: "recreate", reason: "has no health check to tell when the new version is ready" },
    },
    {
      name: "its health check turned off",
      service: web({ healthcheck: { test: ["NONE"] } }),
      expected: { strategy: "recreate", reason: "has no health check to tell when the new version is ready" },
    },
    {
      name: "another service joins its IPC namespace",
      service: web(),
      others: [ServiceSpec.parse({ name: "sidecar", image: "busybox:1.36.1", ipc: "service:web" })],
      expected: { strategy: "recreate", reason: 'service "sidecar" joins its IPC namespace, which one of two versions would then hold' },
    },
    {
      name: "no proxy in the stack",
      service: web(),
      proxy: false,
      expected: { strategy: "recreate", reason: "the stack has no proxy (jetson-fleet:proxy)" },
    },
    {
      name: "the GPU",
      service: web({ runtime: "nvidia", resources: { gpus: "all" } }),
      expected: { strategy: "recreate", reason: "uses the GPU: a second copy during the switch needs its memory twice" },
    },
    {
      name: "a camera",
      service: web({ devices: ["/dev/video0"] }),
      expected: { strategy: "recreate", reason: "passes devices through (/dev/video0), which two copies may not share" },
    },
    {
      name: "the GPU, blue-green asked for",
      service: web({ runtime: "nvidia", update: "blue-green" }),
      expected: { strategy: "blue-green", reason: "update: blue-green is set" },
    },
    {
      name: "recreate asked for",
      service: web({ update: "recreate" }),
      expected: { strategy: "recreate", reason: "update: recreate is set" },
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const services = [row.service, ...(row.others ?? [])];
      assert.deepEqual(updatePlan(row.service, services, row.proxy ?? true), row.expected);
    });
  }
});

function problems(mutate: (c: Mutable) => void): readonly string[] {
  const config = validConfig() as Mutable;
  config.proxy = { image: "registry.lab:5000/fleet/proxy:2.6.12" };
  mutate(config);
  return configProblems(config);
}

const F = "Pulumi.dev.yaml: jetson-fleet:";

describe("validation refuses blue-green where it cannot work", () => {
  const rows: { name: string; mutate: (c: Mutable) => void; expected: string[] }[] = [
    {
      name: "a host-network service (the default stack's inference)",
      mutate: (c) => (c.services[0].update = "blue-green"),
      expected: [
        `${F}services[0].update: "blue-green" cannot work for service "inference": it uses host networking: two versions cannot listen on one host port at once; expected "recreate"`,
      ],
    },
    {
      name: "a service without a health check, and one with a UDP port",
      mutate: (c) => {
        c.services.push({ name: "web", image: "nginx:1.27.4", ports: [{ target: 80 }], update: "blue-green" });
        c.services.push({
          name: "rtp",
          image: "nginx:1.27.4",
          ports: [{ target: 5004, protocol: "udp" }],
          healthcheck: check,
          update: "blue-green",
        });
      },
      expected: [
        `${F}services[2].update: "blue-green" cannot work for service "web": it has no health check to tell when the new version is ready; expected "recreate"`,
        `${F}services[3].update: "blue-green" cannot work for service "rtp": it publishes UDP port 5004, which the proxy does not carry; expected "recreate"`,
      ],
    },
    {
      name: "no proxy",
      mutate: (c) => {
        delete c.proxy;
        c.services.push({ name: "web", image: "nginx:1.27.4", ports: [{ target: 80 }], healthcheck: check, update: "blue-green" });
      },
      expected: [
        `${F}services[2].update: "blue-green" cannot work for service "web": the stack has no proxy (jetson-fleet:proxy); expected "recreate", or a proxy (proxy.image or proxy.build)`,
      ],
    },
    {
      name: "a proxy with both image and build, or a build that is not an images entry",
      mutate: (c) => (c.proxy = { image: "registry.lab:5000/fleet/proxy:2.6.12", build: "haproxy" }),
      expected: [
        `${F}proxy: expected exactly one of "image" (an external image) and "build" (the name of an images entry)`,
        `${F}proxy.build: image "haproxy" is not defined under images; expected one of: inference`,
      ],
    },
    {
      name: "a service taking the proxy's name, an appProtocol on a UDP port",
      mutate: (c) =>
        c.services.push({
          name: "jetson-fleet-proxy",
          image: "nginx:1.27.4",
          ports: [{ target: 5004, protocol: "udp", appProtocol: "http" }],
        }),
      expected: [
        `${F}services[2].name: "jetson-fleet-proxy" is the name of the stack's proxy on every host; expected another name`,
        `${F}services[2].ports[0].appProtocol: a UDP port carries no HTTP or TCP stream; expected appProtocol left out (or protocol tcp)`,
      ],
    },
    {
      name: "two blue-green services on one port number, at different host addresses",
      mutate: (c) => {
        c.services.push({
          name: "web",
          image: "nginx:1.27.4",
          ports: [{ target: 80, published: 8088, hostIp: "127.0.0.1" }],
          healthcheck: check,
        });
        c.services.push({ name: "api", image: "nginx:1.27.4", ports: [{ target: 8088, hostIp: "192.168.50.11" }], healthcheck: check });
        c.services.push({
          name: "old",
          image: "nginx:1.27.4",
          ports: [{ target: 8088, hostIp: "10.0.0.1" }],
          healthcheck: check,
          update: "recreate",
        });
      },
      expected: [
        `${F}services[3].ports[0]: port 8088 is also published by service "web" (services[2].ports[0]); both are blue-green, and their proxy carries one route per port number: expected distinct ports, or update "recreate" on one of them`,
      ],
    },
    {
      name: "blue-green on Kubernetes is left to the rollout: not refused",
      mutate: (c) => {
        c.services[0].update = "blue-green";
        c.deploy = { target: "kubernetes", kubernetes: { renderYamlToDirectory: "gitops" } };
        c.hosts = [];
      },
      expected: [],
    },
  ];
  for (const row of rows) {
    it(row.name, () => assert.deepEqual(problems(row.mutate), row.expected));
  }
});
