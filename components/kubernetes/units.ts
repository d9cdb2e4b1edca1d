// Docker's units as Kubernetes spells them: durations as whole probe seconds, sizes as binary
// quantities, CPUs as cores or millicores. Parsing happens once (config/formats.ts, through the
// services' `durationSeconds` and `sizeBytes`, which say what is expected when a value is wrong).
import { durationSeconds, sizeBytes } from "../services/spec.ts";

/** Whole seconds (at least 1, rounded up), as probes take them, of a Docker duration such as `1m30s` or `500ms`. */
export function probeSeconds(duration: string): number {
  return Math.max(1, Math.ceil(durationSeconds(duration) - 1e-9));
}

const BINARY_SUFFIXES: readonly [string, number][] = [
  ["Gi", 1024 ** 3],
  ["Mi", 1024 ** 2],
  ["Ki", 1024],
];

/**
 * A Docker size (`2g`, `512m`, `1.5g`, `1024`; Docker's units are binary) as a Kubernetes quantity
 * in the canonical form the API server stores: the largest binary suffix that divides the bytes
 * exactly (`1.5g` is `1536Mi`), else plain bytes.
 */
export function quantity(size: string): string {
  const bytes = sizeBytes(size);
  for (const [suffix, factor] of BINARY_SUFFIXES) if (bytes > 0 && bytes % factor === 0) return `${bytes / factor}${suffix}`;
  return String(bytes);
}

/** CPU cores as a Kubernetes quantity: whole cores as `2`, the rest in millicores (`1500m`). */
export function cpuQuantity(cpus: number): string {
  const milli = Math.round(cpus * 1000);
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}
