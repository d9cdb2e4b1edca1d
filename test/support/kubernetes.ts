// A real Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager
// from tools/kube-cluster.sh) in a temp directory of its own, kubectl to read objects back from it,
// and simulated Jetsons joined to it as nodes (tools/kube-node.sh).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { docker, run } from "./services.ts";

const SCRIPT = join(import.meta.dirname, "..", "..", "tools", "kube-cluster.sh");
const NODE_SCRIPT = join(import.meta.dirname, "..", "..", "tools", "kube-node.sh");

export interface KubeCluster {
  /** The server's state directory (certificates, etcd data, logs); removed by `stop`. */
  readonly dir: string;
  /** The kubeconfig's path (cluster admin by client certificate). */
  readonly kubeconfigPath: string;
  /** The kubeconfig's contents, for a provider built from a stack secret. */
  readonly kubeconfig: string;
  /** Milliseconds from `start` until /readyz answered and the scheduler and controller manager ran. */
  readonly startMs: number;
  /** Runs kubectl against the server; resolves to its stdout. */
  kubectl(...args: string[]): Promise<string>;
  /** Reads one object as JSON. */
  get<T = Record<string, unknown>>(...args: string[]): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts a control plane. `address` is where the API server listens: this machine's loopback
 * (default), or the Docker bridge's gateway (`dockerBridgeGateway()`) for nodes in containers.
 */
export async function startKubeCluster(address = "127.0.0.1"): Promise<KubeCluster> {
  const { stdout: binOut } = await run(SCRIPT, ["build"], { maxBuffer: 16 * 1024 * 1024 });
  const bin = binOut.trim().split("\n").pop() ?? "";
  await run(SCRIPT, ["build-cluster"], { maxBuffer: 16 * 1024 * 1024 });
  const dir = mkdtempSync(join(tmpdir(), "kube-"));
  const started = performance.now();
  const { stdout } = await run(SCRIPT, ["start", dir, address]);
  const startMs = performance.now() - started;
  const kubeconfigPath = stdout.trim().split("\n").pop() ?? "";
  const kubectl = async (...args: string[]) =>
    (await run(join(bin, "kubectl"), ["--kubeconfig", kubeconfigPath, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  return {
    dir,
    kubeconfigPath,
    kubeconfig: readFileSync(kubeconfigPath, "utf8"),
    startMs,
    kubectl,
    async get<T>(...args: string[]) {
      return JSON.parse(await kubectl("get", "-o", "json", ...args)) as T;
    },
    async stop() {
      await run(SCRIPT, ["stop", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The Docker bridge's gateway address: this machine as containers on the default bridge reach it. */
export async function dockerBridgeGateway(): Promise<string> {
  const { stdout } = await docker("network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}");
  return stdout.trim();
}

/**
 * Joins running sims to the cluster as nodes and waits until all are Ready; resolves to the
 * milliseconds it took. `registries`: host:port each sim pulls from over plain HTTP (its ends of
 * the registry tunnels).
 */
export async function joinNodes(kube: KubeCluster, sims: readonly string[], registries: readonly string[]): Promise<number> {
  const started = performance.now();
  await run(NODE_SCRIPT, ["join", kube.dir, ...sims], {
    env: { ...process.env, KUBE_NODE_REGISTRIES: registries.join(" ") },
    maxBuffer: 16 * 1024 * 1024,
  });
  return performance.now() - started;
}
