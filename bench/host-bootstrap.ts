// Prints how long bootstrapping simulated Jetsons takes with the JetsonHost step scripts, sent over
// real SSH as the steps send them: one host, then three in parallel (the ratio shows how well a
// fleet parallelises on this machine), then a no-op re-run of the three.
//   node bench/host-bootstrap.ts
import { HOST_SCRIPTS, RuntimeSpec, hostCommand, hostStdin, renderHostScript, type HostScript } from "../components/index.ts";
import { ssh, startSims, type SimFleet, type SimHost } from "../test/support/jetson-sim.ts";

const runtime = RuntimeSpec.parse({
  docker: { package: "docker.io", version: "20.10.24+dfsg1-1+deb12u1" },
  nvidiaToolkitVersion: "1.16.2-1",
});
const env: Record<HostScript, Record<string, string>> = {
  facts: { DOCKER_PACKAGE: "docker.io", EXPECTED_L4T: "36.4.3" },
  "install-docker": { DOCKER_PACKAGE: "docker.io", DOCKER_VERSION: runtime.docker.version },
  "install-nvidia-toolkit": { NVIDIA_TOOLKIT_VERSION: runtime.nvidiaToolkitVersion },
  "configure-docker": { DAEMON_JSON: JSON.stringify(runtime.daemonJson), NVIDIA_DEFAULT_RUNTIME: "true" },
  verify: { NVIDIA_DEFAULT_RUNTIME: "true" },
};

async function bootstrap(fleet: SimFleet, host: SimHost): Promise<void> {
  for (const id of HOST_SCRIPTS) {
    const r = await ssh(fleet, host, hostCommand(id, "create", "sudo-password"), {
      input: hostStdin("sudo-password", fleet.sudoPassword, { script: renderHostScript(id), create: env[id] }),
    });
    if (r.code !== 0) throw new Error(`${host.name} ${id}: ${r.stderr}`);
  }
}

async function timed(label: string, fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  const seconds = (performance.now() - start) / 1000;
  console.log(`${label.padEnd(40)} ${seconds.toFixed(1)} s`);
  return seconds;
}

const one = await startSims(1, { prefix: "jetson-sim-bench-one" });
const three = await startSims(3, { prefix: "jetson-sim-bench-three" });
try {
  const t1 = await timed("first bootstrap, 1 host", () => bootstrap(one, one.hosts[0] as SimHost));
  const t3 = await timed("first bootstrap, 3 hosts in parallel", () => Promise.all(three.hosts.map((h) => bootstrap(three, h))));
  const noop = await timed("re-run (nothing to change), 3 hosts", () => Promise.all(three.hosts.map((h) => bootstrap(three, h))));
  console.log(`3 hosts / 1 host: ${(t3 / t1).toFixed(2)}; no-op re-run / first run (3 hosts): ${(noop / t3).toFixed(3)}`);
} finally {
  await one.stop();
  await three.stop();
}
