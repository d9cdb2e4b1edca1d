// The compose mode with a proxy, under Pulumi mocks: which services go behind it, the compose
// file's proxy service, the apply step's blue-green parameters, and each Service's update input.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ComposeDeployment,
  PROXY_CONFIG_DIR,
  ServiceSpec,
  proxyDirectory,
  proxyRoutes,
  renderComposeFile,
  renderProxyConfig,
  type ServiceHost,
} from "../../../components/index.ts";
import { readHostStdin } from "../../support/host-stdin.ts";
import { ResourceRecorder, unwrap, useMockStack } from "../../support/mocks.ts";
import { parse } from "yaml";

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const IMAGES = { inference: `registry.lab:5000/fleet/inference@${digest("1")}`, web: `registry.lab:5000/fleet/web@${digest("2")}` };
const PROXY = `registry.lab:5000/fleet/proxy@${digest("9")}`;
const check = { test: ["CMD", "/web-probe", "probe"], interval: "1s", timeout: "2s", retries: 2, startPeriod: "2s" };
const SERVICES = [
  ServiceSpec.parse({ name: "inference", build: "inference", network: "host", ports: [{ target: 8080 }], healthcheck: check }),
  ServiceSpec.parse({
    name: "web",
    image: "registry.lab:5000/fleet/web:1.0.0",
    ports: [{ target: 8080, published: 18080, appProtocol: "http" }],
    healthcheck: check,
  }),
];
const host: ServiceHost = {
  name: "orin-01",
  connection: { host: "192.168.50.11", port: 22, user: "root", privateKey: "unused" },
  elevation: "root",
  dockerHost: "ssh://root@192.168.50.11:22",
};

async function deploy(proxy?: { image: string; drainTimeoutSeconds?: number }) {
  const rec = useMockStack({ stack: "unit", config: {} }, new ResourceRecorder(() => ({ stdout: "updated\n", stderr: "" })));
  const d = new ComposeDeployment("services", { hosts: [host], services: SERVICES, images: IMAGES, ...(proxy ? { proxy } : {}) });
  await unwrap(d.results);
  await new Promise((r) => setTimeout(r, 100));
  const apply = rec.ofType("command:remote:Command")[0] ?? assert.fail("no apply step");
  return { rec, d, step: readHostStdin(String(apply.inputs["stdin"]), "root") };
}

describe("ComposeDeployment with a proxy", () => {
  it("puts the blue-green service behind the proxy: no port of its own, the proxy's service holding it", async () => {
    const { step } = await deploy({ image: PROXY, drainTimeoutSeconds: 12 });
    const file = parse(step.data ?? "") as { services: Record<string, Record<string, unknown>> };
    assert.deepEqual(Object.keys(file.services), ["inference", "web", "jetson-fleet-proxy"]);
    assert.equal(file.services["web"]?.["ports"], undefined);
    assert.equal(file.services["inference"]?.["network_mode"], "host");
    assert.deepEqual(file.services["jetson-fleet-proxy"], {
      image: PROXY,
      runtime: "runc",
      ports: ["0.0.0.0:18080:18080/tcp"],
      volumes: [{ type: "bind", source: proxyDirectory("jetson-fleet-unit"), target: PROXY_CONFIG_DIR, read_only: true }],
      restart: "unless-stopped",
      stop_grace_period: "5s",
      logging: { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } },
      depends_on: { web: { condition: "service_started" } },
      security_opt: ["no-new-privileges:true"],
    });
    assert.equal(step.create["BLUE_GREEN"], "web");
    assert.equal(step.create["PROXY_CONFIG"], renderProxyConfig(proxyRoutes([SERVICES[1] as ServiceSpec]), { drainTimeoutSeconds: 12 }));
  });

  it("registers each service's update plan as its update input", async () => {
    const { rec } = await deploy({ image: PROXY });
    const inputs = Object.fromEntries(rec.ofType("jetson:services:Service").map((s) => [s.name, s.inputs["update"]]));
    assert.deepEqual(inputs, {
      "services-orin-01-inference": {
        strategy: "recreate",
        reason: "uses host networking: two versions cannot listen on one host port at once",
      },
      "services-orin-01-web": { strategy: "blue-green", reason: "publishes TCP port 18080 and has a health check" },
    });
    const step = (await deploy({ image: PROXY })).step;
    assert.equal(step.create["PROXY_CONFIG"]?.includes("hard-stop-after 30s"), true, "the default drain timeout is 30 s");
  });

  it("without a proxy renders today's file, and every service is recreated", async () => {
    const { rec, step } = await deploy();
    assert.equal(step.data, renderComposeFile(SERVICES, IMAGES));
    assert.equal(step.create["BLUE_GREEN"], undefined);
    assert.equal(step.create["PROXY_CONFIG"], undefined);
    assert.deepEqual(
      rec.ofType("jetson:services:Service").map((s) => (s.inputs["update"] as { strategy: string }).strategy),
      ["recreate", "recreate"],
    );
  });

  it("refuses a proxy image that is not pinned by digest", () => {
    assert.throws(
      () => renderComposeFile(SERVICES, IMAGES, { image: "registry.lab:5000/fleet/proxy:2.6.12", project: "p", services: ["web"] }),
      { message: 'the proxy image "registry.lab:5000/fleet/proxy:2.6.12" is not pinned by digest; expected repository@sha256:<digest>' },
    );
  });
});
