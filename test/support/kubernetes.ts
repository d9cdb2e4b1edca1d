// A real Kubernetes API server (etcd + kube-apiserver from tools/kube-apiserver.sh) in a temp
// directory of its own, and kubectl to read objects back from it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./services.ts";

const SCRIPT = join(import.meta.dirname, "..", "..", "tools", "kube-apiserver.sh");

export interface KubeApiServer {
  /** The server's state directory (certificates, etcd data, logs); removed by `stop`. */
  readonly dir: string;
  /** The kubeconfig's path (cluster admin by client certificate). */
  readonly kubeconfigPath: string;
  /** The kubeconfig's contents, for a provider built from a stack secret. */
  readonly kubeconfig: string;
  /** Milliseconds from `start` until /readyz answered (certificates, etcd and the API server). */
  readonly startMs: number;
  /** Runs kubectl against the server; resolves to its stdout. */
  kubectl(...args: string[]): Promise<string>;
  /** Reads one object as JSON. */
  get<T = Record<string, unknown>>(...args: string[]): Promise<T>;
  stop(): Promise<void>;
}

export async function startKubeApiServer(): Promise<KubeApiServer> {
  const { stdout: binOut } = await run(SCRIPT, ["build"], { maxBuffer: 16 * 1024 * 1024 });
  const bin = binOut.trim().split("\n").pop() ?? "";
  const dir = mkdtempSync(join(tmpdir(), "kube-"));
  const started = performance.now();
  const { stdout } = await run(SCRIPT, ["start", dir]);
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
