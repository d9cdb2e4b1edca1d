import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ServiceSpec, serviceEndpointsAt } from "../../../components/index.ts";

const spec = (s: Record<string, unknown>) => ServiceSpec.parse({ image: "registry.lab:5000/x@sha256:" + "a".repeat(64), ...s });

describe("serviceEndpointsAt", () => {
  const table: { name: string; services: Record<string, unknown>[]; expected: Record<string, string[]> }[] = [
    {
      name: "a host-network service answers on its targets",
      services: [{ name: "mediamtx", network: "host", ports: [{ target: 8554 }, { target: 8189, protocol: "udp" }] }],
      expected: { mediamtx: ["10.0.0.5:8554/tcp", "10.0.0.5:8189/udp"] },
    },
    {
      name: "a bridge service answers on its published ports, or the target when none is published",
      services: [{ name: "web-ui", ports: [{ target: 80, published: 8088 }, { target: 9090 }] }],
      expected: { "web-ui": ["10.0.0.5:8088/tcp", "10.0.0.5:9090/tcp"] },
    },
    {
      name: "a port bound to one host address answers there; the wildcard means the host's address",
      services: [
        {
          name: "api",
          ports: [
            { target: 8080, published: 18080, hostIp: "127.0.0.1" },
            { target: 81, hostIp: "0.0.0.0" },
          ],
        },
      ],
      expected: { api: ["127.0.0.1:18080/tcp", "10.0.0.5:81/tcp"] },
    },
    { name: "a service without ports is left out", services: [{ name: "worker" }], expected: {} },
  ];
  for (const row of table) {
    it(row.name, () => assert.deepEqual(serviceEndpointsAt("10.0.0.5", row.services.map(spec)), row.expected));
  }

  it("brackets an IPv6 address", () => {
    assert.deepEqual(serviceEndpointsAt("fd00::5", [spec({ name: "web", ports: [{ target: 80 }] })]), { web: ["[fd00::5]:80/tcp"] });
  });
});
