// A load generator for engine tests and benches of service rollouts: a few HTTP clients per
// target, from this machine, requesting back to back during a `pulumi up`, and the figures issue
// 15's proof reads off them: failed requests, the longest time without an answer, p99 latency
// during the switch against steady state, and which bodies (web-probe: its version) answered.
//
// It uses Node's `http` module (no dependencies, and unlike `fetch` it lets each worker choose its
// connection handling): half the workers keep one connection alive, as a browser or an upstream
// proxy would, the other half open a fresh connection per request, so a switch that drops
// established connections and one that refuses new ones both show.
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

/** One service to load: its name in the figures, and the URL requested (plain http). */
export interface LoadTarget {
  /** @example "jetson-engine-1 probe" */
  readonly name: string;
  /** @example "http://127.0.2.1:18080/" */
  readonly url: string;
}

export interface LoadOptions {
  /**
   * Concurrent clients per target. Even-numbered workers (the first, the third, ...) keep their
   * connection alive (an `http.Agent` with `keepAlive`); odd-numbered ones open a fresh connection
   * per request.
   * @default 2
   */
  readonly workers?: number;
  /** Per request, including reading the body; a request still running then fails with `TIMEOUT`. @default 2000 */
  readonly timeoutMs?: number;
  /** Between one worker's requests, so a refused connection does not spin. @default 10 */
  readonly pauseMs?: number;
}

/** The defaults of `LoadOptions`. */
export const LOAD_DEFAULTS = { workers: 2, timeoutMs: 2_000, pauseMs: 10 } as const;

/** The switch window reaches this far before the first new answer and after the last steady one. */
export const SWITCH_MARGIN_MS = 1_000;

/** One request. */
export interface Sample {
  /** When the request started, ms since the epoch. */
  readonly t: number;
  /** Its latency: from the start until the body was read or the request failed, in ms. */
  readonly ms: number;
  /** The answer was status 200. */
  readonly ok: boolean;
  /** The body, trimmed, for status 200; else `HTTP <status>` or the error's code (`ECONNREFUSED`, `ECONNRESET`, `TIMEOUT`). */
  readonly answer: string;
  /** Which kind of worker sent it. */
  readonly connection?: "keep-alive" | "fresh";
  /**
   * The kept-alive connection was closed under the request before any answer, and it was sent
   * again once on a new connection (what Go's and browsers' clients do for an idempotent GET);
   * `ms` covers both tries.
   */
  readonly retried?: boolean;
}

/** A point in time the caller named (`mark("up")` just before `pulumi up`). */
export interface Mark {
  readonly label: string;
  /** ms since the epoch. */
  readonly t: number;
}

/** What one target's samples say. */
export interface LoadFigures {
  requests: number;
  failed: number;
  /**
   * The longest time without an answer, in ms: between two consecutive answered requests (by the
   * time each answer arrived, across workers), from the first mark to the first answer after it,
   * and from the last answer to the end of the load (its stop).
   */
  longestGapMs: number;
  /** Answered requests by body (e.g. {"1.0.0": 812, "2.0.0": 400}); a broken release must not appear. */
  answers: Record<string, number>;
  /** @deprecated The same object as `answers`, for `loadLoop`'s callers. */
  answeredBy: Record<string, number>;
  /** When each body first and last answered (ms since the epoch, when the answer arrived). */
  answeredFrom: Record<string, { first: number; last: number }>;
  /** Failed requests by `answer` (error code or `HTTP <status>`). */
  failures: Record<string, number>;
  /** Requests sent again after their kept-alive connection was closed under them (see `Sample.retried`). */
  retried: number;
  /** The most frequent answer before the first mark (else the first answer at all); undefined when nothing answered. */
  steadyAnswer?: string;
  /** p99 latency of the answered requests before the first mark, ms; NaN without any. */
  p99SteadyMs: number;
  /** p99 latency of the answered requests during the switch (see `switchWindow`), ms; NaN without any. */
  p99SwitchMs: number;
  /** p99SwitchMs / p99SteadyMs; NaN when either is. */
  p99Ratio: number;
  /**
   * The requests (by start time) counted as "during the switch": from 1 s before the first request
   * after the first mark answered by another body than `steadyAnswer`, to 1 s after the last one
   * answered by `steadyAnswer`. Undefined when the answer never changed: the switch is then every
   * request from the first mark on.
   */
  switchWindow?: { from: number; to: number };
}

/** A running load. */
export interface Load {
  /** Records a named point in time; the first one splits steady state from the update. */
  mark(label: string): void;
  /** The marks so far, in order. */
  marks(): readonly Mark[];
  /** Stops every worker at once (requests in flight are dropped, not counted) and returns the figures by target name. */
  stop(): Promise<Record<string, LoadFigures>>;
  /** The samples of one target so far (the live list), in the order they finished. */
  samples(target: string): readonly Sample[];
}

/** The result of one try of a request; `aborted` when `stop()` cut it short. */
interface Attempt {
  readonly ok: boolean;
  readonly answer: string;
  readonly aborted: boolean;
  /** It failed on a reused kept-alive connection before any response: worth one more try. */
  readonly resetReused: boolean;
}

/** Bodies are versions and short texts; keeping more than this would only hold memory. */
const MAX_BODY = 4_096;

function errorCode(err: unknown): string {
  if (err && typeof err === "object") {
    const e = err as { code?: unknown; message?: unknown };
    if (typeof e.code === "string" && e.code) return e.code;
    if (typeof e.message === "string" && e.message) return e.message;
  }
  return String(err);
}

/** One GET; never rejects. */
function attempt(url: URL, agent: http.Agent | false, timeoutMs: number, stopped: AbortSignal): Promise<Attempt> {
  return new Promise((resolve) => {
    let settled = false;
    let responded = false;
    let req: http.ClientRequest | undefined;
    const finish = (a: Omit<Attempt, "aborted">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stopped.removeEventListener("abort", onStop);
      resolve({ ...a, aborted: stopped.aborted });
      // Whatever is left of the exchange (a body not read, a socket of a timed-out request) goes.
      if (!a.ok) req?.destroy();
    };
    const fail = (answer: string) => finish({ ok: false, answer, resetReused: false });
    const onStop = () => fail("STOPPED");
    const timer = setTimeout(() => fail("TIMEOUT"), timeoutMs);
    stopped.addEventListener("abort", onStop, { once: true });
    if (stopped.aborted) return onStop();
    try {
      req = http.get(url, { agent }, (res) => {
        responded = true;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (body.length < MAX_BODY) body += chunk;
        });
        res.once("error", (err) => fail(errorCode(err)));
        // A connection closed in the middle of the body ends the response without "end".
        res.once("close", () => {
          if (!res.complete) fail("ECONNRESET");
        });
        res.once("end", () => {
          if (res.statusCode === 200) finish({ ok: true, answer: body.slice(0, MAX_BODY).trim(), resetReused: false });
          else fail(`HTTP ${res.statusCode ?? "?"}`);
        });
      });
      req.once("error", (err) => {
        const code = errorCode(err);
        // Node's own advice for keep-alive clients: a reused socket the server closed just as the
        // request went out fails with ECONNRESET/EPIPE and no response; retry once.
        const resetReused = !responded && req?.reusedSocket === true && (code === "ECONNRESET" || code === "EPIPE");
        finish({ ok: false, answer: code, resetReused });
      });
    } catch (err) {
      fail(errorCode(err));
    }
  });
}

/** Starts loading every target until `stop()`. Throws only for a bad argument (a duplicate name, a URL that is not http). */
export function startLoad(targets: readonly LoadTarget[], options: LoadOptions = {}): Load {
  const workers = options.workers ?? LOAD_DEFAULTS.workers;
  const timeoutMs = options.timeoutMs ?? LOAD_DEFAULTS.timeoutMs;
  const pauseMs = options.pauseMs ?? LOAD_DEFAULTS.pauseMs;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`startLoad: workers is ${workers}, expected a whole number of at least 1`);
  const byName = new Map<string, Sample[]>();
  const urls = targets.map((target) => {
    if (byName.has(target.name)) throw new Error(`startLoad: two targets are named "${target.name}"`);
    byName.set(target.name, []);
    const url = new URL(target.url);
    if (url.protocol !== "http:") throw new Error(`startLoad: ${target.name}: ${target.url} is not an http:// URL`);
    return url;
  });

  const stopper = new AbortController();
  const marks: Mark[] = [];
  const agents: http.Agent[] = [];

  const worker = async (url: URL, into: Sample[], index: number) => {
    const connection = index % 2 === 0 ? "keep-alive" : "fresh";
    // One socket per keep-alive worker, so its requests really share one connection; `false`
    // makes Node open (and close, with `Connection: close`) a connection per request.
    const agent = connection === "keep-alive" ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    if (agent) agents.push(agent);
    while (!stopper.signal.aborted) {
      try {
        const t = Date.now();
        const start = performance.now();
        let result = await attempt(url, agent, timeoutMs, stopper.signal);
        let retried = false;
        if (result.resetReused && !result.aborted) {
          retried = true;
          result = await attempt(url, agent, Math.max(1, timeoutMs - (performance.now() - start)), stopper.signal);
        }
        if (result.aborted) break;
        into.push({ t, ms: performance.now() - start, ok: result.ok, answer: result.answer, connection, ...(retried ? { retried } : {}) });
        await sleep(pauseMs, undefined, { signal: stopper.signal }).catch(() => undefined);
      } catch (err) {
        // Nothing above should throw; if something does, the loop goes on and the sample says why.
        into.push({ t: Date.now(), ms: 0, ok: false, answer: errorCode(err), connection });
        await sleep(pauseMs, undefined, { signal: stopper.signal }).catch(() => undefined);
      }
    }
  };

  const loops = targets.flatMap((target, i) => {
    const into = byName.get(target.name) ?? [];
    const url = urls[i];
    return url ? Array.from({ length: workers }, (_, w) => worker(url, into, w)) : [];
  });

  let stopping: Promise<Record<string, LoadFigures>> | undefined;
  return {
    mark(label) {
      marks.push({ label, t: Date.now() });
    },
    marks: () => marks,
    samples(target) {
      const samples = byName.get(target);
      if (!samples) throw new Error(`load: no target "${target}" (targets: ${[...byName.keys()].join(", ")})`);
      return samples;
    },
    stop() {
      stopping ??= (async () => {
        const end = Date.now();
        stopper.abort();
        await Promise.all(loops);
        for (const agent of agents) agent.destroy();
        return Object.fromEntries([...byName].map(([name, samples]) => [name, loadFigures(samples, marks, end)]));
      })();
      return stopping;
    },
  };
}

/** The p99 (nearest rank) of `values`; NaN for none. */
export function p99(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(0.99 * sorted.length) - 1] ?? NaN;
}

/**
 * The figures of one target's samples (pure). Only the earliest of `marks` counts: before it is
 * steady state. `end` is when the load stopped (default: when the last sample finished); the
 * time from the last answer to it counts as a gap, so an outage the load ended in is not lost.
 */
export function loadFigures(samples: readonly Sample[], marks: readonly Mark[], end?: number): LoadFigures {
  const byStart = [...samples].sort((a, b) => a.t - b.t);
  const mark = marks.length > 0 ? Math.min(...marks.map((m) => m.t)) : undefined;
  const at = (s: Sample) => s.t + s.ms;
  const answered = byStart.filter((s) => s.ok);

  const answers: Record<string, number> = {};
  const answeredFrom: Record<string, { first: number; last: number }> = {};
  for (const s of answered) {
    answers[s.answer] = (answers[s.answer] ?? 0) + 1;
    const seen = answeredFrom[s.answer];
    answeredFrom[s.answer] = { first: Math.min(seen?.first ?? at(s), at(s)), last: Math.max(seen?.last ?? at(s), at(s)) };
  }
  const failures: Record<string, number> = {};
  for (const s of byStart) if (!s.ok) failures[s.answer] = (failures[s.answer] ?? 0) + 1;

  // Gaps run between arrivals of answers, whichever worker got them.
  const arrivals = answered.map(at).sort((a, b) => a - b);
  // A loop over the samples, not Math.max(...spread): minutes of load are more arguments than a call takes.
  const last = end ?? byStart.reduce((latest, s) => Math.max(latest, at(s)), mark ?? -Infinity);
  let longestGapMs = 0;
  for (let i = 1; i < arrivals.length; i++) longestGapMs = Math.max(longestGapMs, (arrivals[i] ?? 0) - (arrivals[i - 1] ?? 0));
  if (mark !== undefined) {
    const firstAfter = arrivals.find((a) => a >= mark);
    longestGapMs = Math.max(longestGapMs, (firstAfter ?? last) - mark);
  }
  const lastArrival = arrivals.at(-1) ?? mark ?? byStart[0]?.t;
  if (lastArrival !== undefined && Number.isFinite(last)) longestGapMs = Math.max(longestGapMs, last - lastArrival);

  const before = mark === undefined ? answered : answered.filter((s) => s.t < mark);
  const steadyAnswer = mostFrequent(before.map((s) => s.answer)) ?? answered[0]?.answer;
  const after = mark === undefined ? answered : answered.filter((s) => s.t >= mark);
  const firstOther = after.find((s) => s.answer !== steadyAnswer);
  const lastSteady = answered.findLast((s) => s.answer === steadyAnswer);
  let switchWindow: { from: number; to: number } | undefined;
  let during: readonly Sample[];
  if (firstOther) {
    // Old and new may overlap (a proxy switching) or leave a hole between them (stop, then
    // start): either way the window covers both ends.
    const edges = [firstOther.t, lastSteady?.t ?? firstOther.t];
    switchWindow = { from: Math.min(...edges) - SWITCH_MARGIN_MS, to: Math.max(...edges) + SWITCH_MARGIN_MS };
    const w = switchWindow;
    during = answered.filter((s) => s.t >= w.from && s.t <= w.to);
  } else during = mark === undefined ? [] : after;

  const p99SteadyMs = p99((mark === undefined ? answered : before).map((s) => s.ms));
  const p99SwitchMs = p99(during.map((s) => s.ms));
  return {
    requests: samples.length,
    failed: samples.length - answered.length,
    longestGapMs,
    answers,
    answeredBy: answers,
    answeredFrom,
    failures,
    retried: samples.filter((s) => s.retried).length,
    ...(steadyAnswer === undefined ? {} : { steadyAnswer }),
    p99SteadyMs,
    p99SwitchMs,
    p99Ratio: p99SteadyMs > 0 ? p99SwitchMs / p99SteadyMs : NaN,
    ...(switchWindow ? { switchWindow } : {}),
  };
}

/** The most frequent value (the first seen on a tie), or undefined for none. */
function mostFrequent(values: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: string | undefined;
  for (const [v, n] of counts) if (best === undefined || n > (counts.get(best) ?? 0)) best = v;
  return best;
}

const ms = (v: number) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} ms` : "n/a");
const tally = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, n]) => `${k}=${n}`)
    .join(" ");

/**
 * One line for a test's or bench's console.log, e.g. "blue-green compose jetson-engine-1 probe:
 * 1234 requests, 0 failed, longest gap 45 ms, p99 12 ms during the switch vs 8 ms steady (1.50x),
 * answers 1.0.0=800 2.0.0=434".
 */
export function formatFigures(name: string, f: LoadFigures): string {
  const ratio = Number.isFinite(f.p99Ratio) ? `${f.p99Ratio.toFixed(2)}x` : "n/a";
  return (
    `${name}: ${f.requests} requests, ${f.failed} failed${f.failed > 0 ? ` (${tally(f.failures)})` : ""}, ` +
    `longest gap ${ms(f.longestGapMs)}, p99 ${ms(f.p99SwitchMs)} during the switch vs ${ms(f.p99SteadyMs)} steady (${ratio}), ` +
    `answers ${tally(f.answers) || "none"}${f.retried > 0 ? `, ${f.retried} retried after a kept-alive connection closed` : ""}`
  );
}

/**
 * The same kind of samples from a loop on a host itself, for a service only the host reaches (host
 * network, port not published to this machine): a POSIX shell loop requesting `url` with curl
 * back to back until `stopFile` exists, one line per request, `<end ms> <curl exit> <body>
 * <status> <seconds>`. Each request is a curl process, so on a busy host requests are spaced by
 * tens to hundreds of ms: that bounds how finely a gap is seen. Parse with `parseCurlSamples`.
 */
export function curlLoadScript(url: string, stopFile = "/tmp/load.stop", timeoutSeconds = 1): string {
  if (!/^http:\/\/[\w.:[\]/-]+$/.test(url)) throw new Error(`curlLoadScript: ${url} is not a plain http:// URL`);
  if (!/^\/[\w./-]+$/.test(stopFile)) throw new Error(`curlLoadScript: ${stopFile} is not a plain absolute path`);
  // -w prints the status and time even when curl fails; $r unquoted joins the body's lines.
  return `rm -f ${stopFile}; while [ ! -e ${stopFile} ]; do
  e=0; r=$(curl -s -m ${timeoutSeconds} -w ' %{http_code} %{time_total}' '${url}') || e=$?
  echo "$(date +%s%3N) $e" $r
done
`;
}

/** Parses `curlLoadScript`'s lines into samples (a curl failure's answer: `curl exit <code>`, 7 refused, 28 timed out). */
export function parseCurlSamples(output: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of output.split("\n")) {
    const words = line.trim().split(/\s+/);
    const [endText, exitText] = words;
    if (!endText || !/^\d+$/.test(endText) || !exitText || !/^\d+$/.test(exitText)) continue;
    // -w's two words end every line curl finished; a line without them was cut short by the stop.
    const status = words.at(-2) ?? "";
    const seconds = words.at(-1) ?? "";
    if (words.length < 4 || !/^\d{3}$/.test(status) || !/^\d+(\.\d+)?$/.test(seconds)) continue;
    const exit = Number(exitText);
    // Not rounded: on the host's loopback a request takes well under a millisecond.
    const ms = Number(seconds) * 1_000;
    const ok = exit === 0 && status === "200";
    const answer = ok ? words.slice(2, -2).join(" ") : exit !== 0 ? `curl exit ${exit}` : `HTTP ${status}`;
    samples.push({ t: Number(endText) - ms, ms, ok, answer });
  }
  return samples;
}

/** What `loadLoop` returns. */
export interface LoadLoop {
  stop(): Promise<LoadFigures>;
}

/**
 * Starts requesting `url` from one kept-alive client until `stop()`; the gap counts from the start.
 * @deprecated Use `startLoad` (several targets, both connection kinds, marks for steady state).
 */
export function loadLoop(url: string, timeoutMs = 1_000): LoadLoop {
  const load = startLoad([{ name: url, url }], { workers: 1, timeoutMs });
  // A mark at once: no steady state, and the longest gap counts from the start, as it always did.
  load.mark("start");
  return {
    async stop() {
      const figures = (await load.stop())[url];
      if (!figures) throw new Error(`loadLoop: no figures for ${url}`);
      return figures;
    },
  };
}
