// Prints what a health-gated compose update costs on a simulated Jetson over real SSH, sent as
// ComposeProject's apply step sends it: a host-network service on a fixed port (the case where
// old and new cannot run side by side) under a load loop on the host, during
//   1. a good update (v1 -> v2): failed requests and the longest gap between answered requests;
//   2. a broken release (v2 -> a release whose health check fails, though it still answers /): the
//      apply step's time until the host has rolled back and is healthy again (the rollback time),
//      how long the broken release answered, and the requests lost in the two switches.
// "apply" includes the pull, compose's own work (docker-compose 1.x: about a second per call) and
// waiting for health; "longest gap" is the longest time without an answer.
//   node bench/service-rollout.ts [ROUNDS]
import { ServiceSpec, renderComposeFile } from "../components/index.ts";
import { ssh } from "../test/support/jetson-sim.ts";
import { curlLoadScript, loadFigures, parseCurlSamples, type LoadFigures } from "../test/support/load.ts";
import { startServiceHosts } from "../test/support/service-hosts.ts";

const PORT = 18090;
const rounds = Number(process.argv[2] ?? 3);

const spec = (image: string) =>
  renderComposeFile(
    [
      ServiceSpec.parse({
        name: "probe",
        image,
        network: "host",
        ports: [{ target: PORT }],
        environment: { PORT },
        healthcheck: { test: ["CMD", "/web-probe", "probe"], interval: "1s", timeout: "2s", retries: 2, startPeriod: "2s" },
      }),
    ],
    { probe: image },
  );

// Requests back to back from the host itself (the port is the host's own, not published to this
// machine, so startLoad cannot reach it from here): each line says when a curl finished, what it
// answered and how long it took, until the stop file appears. (Each request is a curl process: on
// a busy machine that alone spaces them by a few hundred ms, which bounds how finely a gap is
// seen; the no-op rows show it.) loadFigures reads the lines as startLoad's samples; the apply's
// start is the mark: before it is steady state.
const LOAD = curlLoadScript(`http://127.0.0.1:${PORT}/`);

/** From the first to the last answer of the broken release (3.0.0), or 0. */
const brokenServedMs = (f: LoadFigures) => {
  const served = f.answeredFrom["3.0.0"];
  return served ? served.last - served.first : 0;
};

const env = await startServiceHosts(1, "jf6-bench");
try {
  const host = env.hosts[0]!;
  const { v1, v2, broken } = env.releases;
  const underLoad = async (file: string) => {
    const load = ssh(env.fleet, host, LOAD);
    await new Promise((r) => setTimeout(r, 1000));
    // The sim shares this machine's clock, so a mark taken here lines up with the host's `date`.
    const marks = [{ label: "apply", t: Date.now() }];
    const start = performance.now();
    const result = await env.apply(host, file);
    const seconds = (performance.now() - start) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    await ssh(env.fleet, host, "touch /tmp/load.stop");
    return { result, seconds, load: loadFigures(parseCurlSamples((await load).stdout), marks) };
  };
  const print = (label: string, r: Awaited<ReturnType<typeof underLoad>>) => {
    const broken = brokenServedMs(r.load);
    console.log(
      `${label.padEnd(38)} exit ${r.result.code}  apply ${r.seconds.toFixed(1).padStart(5)} s  requests ${String(r.load.requests).padStart(4)}  failed ${String(r.load.failed).padStart(3)}  longest gap ${(r.load.longestGapMs / 1000).toFixed(2)} s${broken ? `  broken release served ${(broken / 1000).toFixed(2)} s` : ""}`,
    );
  };
  for (let i = 1; i <= rounds; i++) {
    const first = await env.apply(host, spec(v1));
    if (first.code !== 0) throw new Error(`deploying v1 failed: ${first.stderr}`);
    print(`round ${i}: good update v1 -> v2`, await underLoad(spec(v2)));
    print(`round ${i}: no-op (v2 again)`, await underLoad(spec(v2)));
    const bad = await underLoad(spec(broken));
    if (bad.result.code === 0 || !/rolled back to the previous digests/.test(bad.result.stderr)) {
      throw new Error(`the broken release was not rolled back: ${bad.result.stderr}`);
    }
    print(`round ${i}: broken v2 -> v3, rolled back`, bad);
  }
} finally {
  await env.stop();
}
