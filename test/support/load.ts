// A request loop against an HTTP service during an update: requests back to back from this
// machine, each with a short timeout, counting failures, the longest time without an answer,
// and which body (the web-probe answers its version) answered how often.

export interface LoadFigures {
  readonly requests: number;
  readonly failed: number;
  /** The longest time between two answered requests (or from the start to the first one), in ms. */
  readonly longestGapMs: number;
  /** Answered requests by the answer's body, trimmed (web-probe: its version). */
  readonly answeredBy: Readonly<Record<string, number>>;
  /** When each body was first and last answered (ms since the epoch). */
  readonly answeredFrom: Readonly<Record<string, { readonly first: number; readonly last: number }>>;
}

export interface LoadLoop {
  stop(): Promise<LoadFigures>;
}

/** Starts requesting `url` until `stop()`. */
export function loadLoop(url: string, timeoutMs = 1_000): LoadLoop {
  let running = true;
  let requests = 0;
  let failed = 0;
  let longestGapMs = 0;
  let lastAnswer = Date.now();
  const answeredBy: Record<string, number> = {};
  const answeredFrom: Record<string, { first: number; last: number }> = {};
  const loop = (async () => {
    while (running) {
      requests++;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        const body = (await res.text()).trim();
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const now = Date.now();
        longestGapMs = Math.max(longestGapMs, now - lastAnswer);
        lastAnswer = now;
        answeredBy[body] = (answeredBy[body] ?? 0) + 1;
        answeredFrom[body] = { first: answeredFrom[body]?.first ?? now, last: now };
      } catch {
        failed++;
        // A refused connection returns at once: do not spin.
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      longestGapMs = Math.max(longestGapMs, Date.now() - lastAnswer);
      return { requests, failed, longestGapMs, answeredBy, answeredFrom };
    },
  };
}
