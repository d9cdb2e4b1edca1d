// Prints the Kubernetes fleet's figures against a real API server: the kube-apiserver + kubectl
// build (cold on a fresh cache, else the cache lookup), the API server's start (certificates, etcd,
// kube-apiserver until /readyz), a fleet `up` of two services through the real engine, and a no-op `up`.
//   JETSON_FLEET_PULUMI_BIN=$(tools/toolchain.sh | tail -n 1) node bench/kubernetes-fleet.ts
import { rmSync } from "node:fs";
import { join } from "node:path";
import { engineStack } from "../test/support/engine.ts";
import { startKubeCluster } from "../test/support/kubernetes.ts";
import { run } from "../test/support/services.ts";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const digest = (hex: string) => `sha256:${hex.repeat(32)}`;

let start = performance.now();
await run(join(import.meta.dirname, "..", "tools", "kube-cluster.sh"), ["build"], { maxBuffer: 16 * 1024 * 1024 });
console.log(`kube-apiserver + kubectl build: ${seconds(performance.now() - start)}`);

const kube = await startKubeCluster();
console.log(`API server start: ${seconds(kube.startMs)}`);
const env = await engineStack({
  program: "test/engine/programs/kubernetes-fleet",
  stack: "bench",
  config: {
    services: [
      { name: "inference", build: "inference", runtime: "nvidia", network: "host", ports: [{ target: 8080 }], shmSize: "2g" },
      { name: "webui", image: `registry.lab:5000/fleet/webui@${digest("a1")}`, ports: [{ target: 3000 }] },
    ],
    images: { inference: `registry.lab:5000/fleet/inference@${digest("4f")}` },
    namespace: "bench",
    rollout: { maxUnavailable: 1 },
    registryServer: "registry.lab:5000",
    registryUsername: "fleet",
  },
  secrets: { kubeconfig: kube.kubeconfig, registryPassword: "bench-pull-pass" },
});
try {
  start = performance.now();
  await env.stack.up({ color: "never" });
  console.log(`fleet up: ${seconds(performance.now() - start)}`);
  start = performance.now();
  const noop = await env.stack.up({ color: "never" });
  console.log(`no-op up: ${seconds(performance.now() - start)} (${JSON.stringify(noop.summary.resourceChanges)})`);
} finally {
  await kube.stop();
  rmSync(env.dir, { recursive: true, force: true });
  rmSync(env.stateDir, { recursive: true, force: true });
}
