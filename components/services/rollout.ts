// Rolling updates across hosts: which hosts update together. Each batch starts only after every
// host of the previous batch reported its services healthy.
import { ServiceArgsError } from "./spec.ts";

/** Hosts updated at once: a count, or a percentage of the fleet such as `"25%"` (as `deploy.rollout.maxUnavailable`). */
export type MaxUnavailable = number | string;

/**
 * How many hosts one batch holds. A percentage rounds down (like Kubernetes' maxUnavailable) but
 * is at least one host, so a rollout always makes progress; a count larger than the fleet is the fleet.
 */
export function batchSize(hostCount: number, maxUnavailable: MaxUnavailable): number {
  if (hostCount === 0) return 0;
  if (typeof maxUnavailable === "number") {
    if (!Number.isInteger(maxUnavailable) || maxUnavailable < 1) {
      throw new ServiceArgsError(`deploy.rollout.maxUnavailable is ${maxUnavailable}; expected a whole number of hosts, at least 1`);
    }
    return Math.min(maxUnavailable, hostCount);
  }
  const m = /^([1-9][0-9]?|100)%$/.exec(maxUnavailable);
  if (!m)
    throw new ServiceArgsError(`deploy.rollout.maxUnavailable is "${maxUnavailable}"; expected a count or a percentage such as "25%"`);
  return Math.max(1, Math.floor((hostCount * Number(m[1])) / 100));
}

/** The hosts in update order, split into batches of `batchSize` (the last one may be smaller). */
export function rolloutBatches<T>(hosts: readonly T[], maxUnavailable: MaxUnavailable): T[][] {
  const size = batchSize(hosts.length, maxUnavailable);
  const batches: T[][] = [];
  for (let i = 0; i < hosts.length; i += size) batches.push(hosts.slice(i, i + size));
  return batches;
}
