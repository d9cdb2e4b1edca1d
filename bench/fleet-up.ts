// Prints what `pulumi up` of the dev stack costs under the real engine on simulated Jetsons: the
// first up (bootstrap of fresh hosts, image build, the default stack) for 1 host and for 3 (and
// their ratio: hosts bootstrap in parallel, services roll out one host at a time), a no-op up with
// the SSH sessions it opened, and a service update (one service's image) rolled over 3 hosts.
//   node bench/fleet-up.ts          (JETSON_FLEET_PULUMI_BIN set, as tools/test.sh engine sets it)
// Figures are single runs on a shared machine: read them as ratios measured in the same run.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { REPO, engineStack, type EngineStack } from "../test/support/engine.ts";
import { PROBE_PORT, devServicesWithProbe, startDevFleet, type DevFleet } from "../test/support/fleet.ts";
import { docker, pushedDigest, run } from "../test/support/services.ts";

async function probeRelease(version: string): Promise<string> {
  const tag = `127.0.0.1:5000/bench/web-probe:${version}`;
  await run(join(REPO, "images", "web-probe", "build.sh"), [tag, version, "true"]);
  await docker("push", "-q", tag);
  return pushedDigest(tag);
}

const services = (probe: string) => devServicesWithProbe(probe);

async function timed(what: string, fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  const seconds = (performance.now() - start) / 1000;
  console.log(`${what}: ${seconds.toFixed(1)} s`);
  return seconds;
}

async function stackOn(fleet: DevFleet, name: string, probe: string): Promise<EngineStack> {
  return engineStack({
    stack: name,
    stackFile: "Pulumi.dev.yaml",
    config: { hosts: fleet.hostsConfig(), services: services(probe) },
    secrets: fleet.hostSecrets(),
    env: fleet.buildEnv,
  });
}

const v1 = await probeRelease("1.0.0");
const v2 = await probeRelease("2.0.0");
const publish = `8080 8554 8889 8189/udp 8088 ${PROBE_PORT}`;
const figures: Record<string, number> = {};

for (const count of [1, 3]) {
  const fleet = await startDevFleet({
    prefix: `jetson-bench-${count}`,
    addressNet: `127.0.${3 + count}`,
    portBase: 22300 + 10 * count,
    count,
    publish,
  });
  const env = await stackOn(fleet, `bench${count}`, v1);
  try {
    figures[`first${count}`] = await timed(`first up, ${count} fresh host(s)`, () => env.stack.up({ color: "never" }));
    if (count === 3) {
      const before = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
      figures["noop"] = await timed("no-op up, 3 hosts", async () => {
        const r = await env.stack.up({ color: "never" });
        const changed = Object.entries(r.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
        if (changed.length > 0) throw new Error(`the no-op up changed ${JSON.stringify(changed)}`);
      });
      const after = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
      console.log(`no-op up: SSH sessions opened per host: ${after.map((n, i) => n - (before[i] ?? 0)).join(", ")}`);
      const file = join(env.dir, "Pulumi.bench3.yaml");
      const doc = parse(readFileSync(file, "utf8")) as { config: Record<string, unknown> };
      doc.config["jetson-fleet:services"] = services(v2);
      writeFileSync(file, stringify(doc));
      figures["update"] = await timed("service update (probe v1 -> v2), 3 hosts one at a time", () => env.stack.up({ color: "never" }));
    }
  } finally {
    await env.dispose();
    await fleet.stop();
  }
}

const ratio = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : "?");
console.log(`first up, 3 hosts / 1 host: ${ratio(figures["first3"], figures["first1"])}`);
console.log(`no-op up / first up (3 hosts): ${ratio(figures["noop"], figures["first3"])}`);
console.log(`service update / first up (3 hosts): ${ratio(figures["update"], figures["first3"])}`);
