// Prints what the two per-host deploy modes cost under the real engine, in one run on the same
// three fresh simulated Jetsons each (made anew between the modes): first `up`, no-op `up` (and
// the SSH sessions it opened), a good release of one service under a request loop on every host
// (failed requests, longest gap), and a broken release (failed requests, how long the broken
// version answered on the first host, and whether the other hosts kept the previous version).
//   node bench/deploy-modes.ts      (JETSON_FLEET_PULUMI_BIN set, as tools/test.sh engine sets it)
// Figures are single runs on a shared machine: read them as ratios measured in the same run.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { engineStack } from "../test/support/engine.ts";
import { PROBE_PORT, devServicesWithProbe, pushProbe, startDevFleet } from "../test/support/fleet.ts";
import { loadLoop, type LoadFigures } from "../test/support/load.ts";

const probe = await pushProbe("bench");
const services = (image: string) => devServicesWithProbe(image, { resources: { cpus: 0.25, memory: "64m" } });
const load = (l: readonly LoadFigures[]) =>
  l.map((f, i) => `host ${i + 1}: ${f.failed}/${f.requests} failed, longest gap ${(f.longestGapMs / 1000).toFixed(2)} s`).join("; ");
const figures: Record<string, Record<string, number>> = {};

for (const target of ["compose", "containers"] as const) {
  const fleet = await startDevFleet({
    prefix: "jetson-bench-modes",
    addressNet: "127.0.7",
    portBase: 22600,
    publish: `8080 8554 8889 8189/udp 8088 ${PROBE_PORT}`,
  });
  const env = await engineStack({
    stack: `modes-${target}`,
    stackFile: "Pulumi.dev.yaml",
    config: { hosts: fleet.hostsConfig(), services: services(probe.v1), deploy: { target, rollout: { maxUnavailable: 1 } } },
    secrets: fleet.hostSecrets(),
    env: fleet.buildEnv,
  });
  const own: Record<string, number> = {};
  figures[target] = own;
  const up = async (what: string) => {
    const start = performance.now();
    const result = await env.stack.up({ color: "never" }).then(
      (r) => ({ ok: true, changes: r.summary.resourceChanges ?? {} }),
      (err: unknown) => ({ ok: false, changes: {}, error: String(err).slice(0, 300) }),
    );
    own[what] = (performance.now() - start) / 1000;
    console.log(`${target}: ${what}: ${own[what].toFixed(1)} s${result.ok ? "" : " (failed, as expected for a broken release)"}`);
    return result;
  };
  const setProbe = (image: string) => {
    const file = join(env.dir, `Pulumi.modes-${target}.yaml`);
    const doc = parse(readFileSync(file, "utf8")) as { config: Record<string, unknown> };
    doc.config["jetson-fleet:services"] = services(image);
    writeFileSync(file, stringify(doc));
  };
  const underLoad = async (what: string) => {
    const loops = fleet.hosts.map((h) => loadLoop(`http://${h.address}:${PROBE_PORT}/`));
    const result = await up(what);
    const figs = await Promise.all(loops.map((l) => l.stop()));
    console.log(`${target}: ${what} under load: ${load(figs)}`);
    return { result, figs };
  };
  try {
    await up("first up");
    const before = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
    const noop = await up("no-op up");
    const after = await Promise.all(fleet.hosts.map((h) => fleet.logins(h)));
    const changed = Object.entries(noop.changes).filter(([op]) => op !== "same");
    console.log(
      `${target}: no-op up changed ${JSON.stringify(changed)}, SSH sessions per host ${after.map((n, i) => n - (before[i] ?? 0)).join(", ")}`,
    );
    setProbe(probe.v2);
    await underLoad("good release");
    setProbe(probe.broken);
    const broken = await underLoad("broken release");
    const served = broken.figs[0]?.answeredFrom["3.0.0"];
    console.log(
      `${target}: broken release: answered by the broken version on host 1 for ${served ? ((served.last - served.first) / 1000).toFixed(1) : 0} s; ` +
        `hosts 2 and 3 answered only 2.0.0: ${broken.figs.slice(1).every((f) => Object.keys(f.answeredBy).every((b) => b === "2.0.0"))}`,
    );
  } finally {
    await env.dispose({ runProgram: true });
    await fleet.stop();
  }
}

const ratio = (what: string) => {
  const a = figures["containers"]?.[what];
  const b = figures["compose"]?.[what];
  return a && b ? (a / b).toFixed(2) : "?";
};
for (const what of ["first up", "no-op up", "good release", "broken release"]) console.log(`containers / compose, ${what}: ${ratio(what)}`);
