// The engine tests' load generator: its figures by table (gaps, switch windows, p99, answers, an
// answer that never changes, nothing answering), and one real run against a local server that
// switches its answer and closes its kept-alive connections mid-run.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { curlLoadScript, formatFigures, loadFigures, loadLoop, p99, parseCurlSamples, startLoad, type Sample } from "../../support/load.ts";

/** An answered request starting at `t` taking `ms`. */
const ok = (t: number, answer: string, ms = 5): Sample => ({ t, ms, ok: true, answer });
const bad = (t: number, answer = "ECONNREFUSED", ms = 1): Sample => ({ t, ms, ok: false, answer });
const mark = (t: number) => [{ label: "up", t }];
/** Answered requests every `step` ms from `from` to before `to`. */
const every = (from: number, to: number, step: number, answer: string, ms = 5) =>
  Array.from({ length: Math.ceil((to - from) / step) }, (_, i) => ok(from + i * step, answer, ms));

describe("loadFigures: the longest gap", () => {
  const cases: { name: string; samples: Sample[]; mark?: number; end?: number; gap: number }[] = [
    {
      name: "between consecutive answers, by arrival, across workers",
      // Two workers interleaved; answers arrive at 15, 25, 115, 125, 300.
      samples: [ok(10, "1"), ok(20, "1"), ok(110, "1"), ok(120, "1"), ok(250, "1", 50)],
      gap: 175,
    },
    {
      name: "failures in between do not close a gap",
      samples: [ok(0, "1"), bad(100), bad(200), bad(300), ok(400, "1")],
      gap: 400,
    },
    {
      name: "from the first mark to the first answer after it",
      samples: [bad(0), bad(100), ok(600, "1", 10)],
      mark: 100,
      gap: 510,
    },
    {
      name: "from the last answer to the end (an outage the load ended in)",
      samples: [ok(0, "1"), ok(100, "1"), bad(200), bad(300)],
      end: 1_105,
      gap: 1_000,
    },
    {
      name: "to the last sample when no end is given",
      samples: [ok(0, "1"), bad(100), bad(700, "TIMEOUT", 300)],
      gap: 995,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(loadFigures(c.samples, c.mark === undefined ? [] : mark(c.mark), c.end).longestGapMs, c.gap);
    });
  }
});

describe("loadFigures: the switch window and p99", () => {
  const steady = every(0, 3_000, 10, "1.0.0", 4);
  const cases: {
    name: string;
    samples: Sample[];
    window: { from: number; to: number } | undefined;
    p99Steady: number;
    p99Switch: number;
  }[] = [
    {
      name: "a proxy switch: old and new overlap; from 1 s before the first new answer to 1 s after the last old one",
      samples: [...steady, ...every(3_000, 5_000, 10, "1.0.0", 4), ok(4_500, "2.0.0", 40), ...every(5_010, 8_000, 10, "2.0.0", 4)],
      window: { from: 3_500, to: 5_990 },
      p99Steady: 4,
      // 250 answers in the window, one of them 40 ms: the nearest rank of p99 is the 248th.
      p99Switch: 4,
    },
    {
      name: "stop then start: a hole of failures between old and new; the window spans both ends",
      samples: [
        ...steady,
        ...every(3_000, 4_000, 10, "1.0.0", 4),
        ...[4_000, 4_500].map((t) => bad(t)),
        ...every(5_000, 7_000, 10, "2.0.0", 30),
      ],
      window: { from: 2_990, to: 6_000 },
      p99Steady: 4,
      p99Switch: 30,
    },
    {
      name: "the answer never changes: the switch is every request after the mark",
      samples: [...steady, ...every(3_000, 4_000, 10, "1.0.0", 20)],
      window: undefined,
      p99Steady: 4,
      p99Switch: 20,
    },
    {
      name: "a broken release that answered: it counts as a change (and the window reaches the last old answer)",
      samples: [...steady, ok(3_500, "3.0.0", 8), ...every(3_600, 6_000, 10, "1.0.0", 4)],
      window: { from: 2_500, to: 6_990 },
      p99Steady: 4,
      p99Switch: 4,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = loadFigures(c.samples, mark(3_000));
      assert.deepEqual(f.switchWindow, c.window);
      assert.equal(f.p99SteadyMs, c.p99Steady);
      assert.equal(f.p99SwitchMs, c.p99Switch);
      assert.equal(f.p99Ratio, c.p99Switch / c.p99Steady);
      assert.equal(f.steadyAnswer, "1.0.0");
    });
  }

  it("p99 is the nearest rank", () => {
    const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    for (const [values, want] of [
      [range(100), 99],
      [range(200), 198],
      [range(1_000), 990],
      [[7], 7],
      [[3, 1, 2], 3],
      [[], NaN],
    ] as const) {
      assert.equal(p99(values), want, `p99 of ${values.length} values`);
    }
  });

  it("only the earliest mark splits steady state off, whatever the order marks are given in", () => {
    const samples = [...steady, ...every(3_000, 4_000, 10, "1.0.0", 20)];
    const f = loadFigures(samples, [
      { label: "later", t: 3_500 },
      { label: "up", t: 3_000 },
    ]);
    assert.equal(f.p99SteadyMs, 4);
  });
});

describe("loadFigures: counts", () => {
  it("counts requests, failures by code, answers by body and when each answered", () => {
    const f = loadFigures(
      [
        ok(0, "1.0.0"),
        ok(10, "1.0.0"),
        bad(20),
        bad(30, "TIMEOUT"),
        bad(40, "HTTP 502"),
        ok(50, "2.0.0"),
        ok(60, "2.0.0"),
        ok(70, "2.0.0"),
      ],
      mark(25),
    );
    assert.equal(f.requests, 8);
    assert.equal(f.failed, 3);
    assert.deepEqual(f.answers, { "1.0.0": 2, "2.0.0": 3 });
    assert.equal(f.answeredBy, f.answers);
    assert.deepEqual(f.answeredFrom, { "1.0.0": { first: 5, last: 15 }, "2.0.0": { first: 55, last: 75 } });
    assert.deepEqual(f.failures, { ECONNREFUSED: 1, TIMEOUT: 1, "HTTP 502": 1 });
    assert.equal(f.retried, 0);
  });

  it("all failed: no answers, p99 not measurable, the gap runs from the mark to the end", () => {
    const f = loadFigures([bad(0), bad(100), bad(200), bad(300)], mark(150), 1_150);
    assert.deepEqual(
      { ...f },
      {
        requests: 4,
        failed: 4,
        longestGapMs: 1_000,
        answers: {},
        answeredBy: {},
        answeredFrom: {},
        failures: { ECONNREFUSED: 4 },
        retried: 0,
        p99SteadyMs: NaN,
        p99SwitchMs: NaN,
        p99Ratio: NaN,
      },
    );
    assert.match(
      formatFigures("x", f),
      /^x: 4 requests, 4 failed \(ECONNREFUSED=4\), longest gap 1000 ms, p99 n\/a .* \(n\/a\), answers none$/,
    );
  });

  it("no samples at all", () => {
    const f = loadFigures([], mark(0), 500);
    assert.equal(f.requests, 0);
    assert.equal(f.longestGapMs, 500);
    assert.ok(Number.isNaN(f.p99Ratio));
  });

  it("formats one line", () => {
    const f = loadFigures([...every(0, 1_000, 10, "1.0.0", 8), ...every(1_000, 2_000, 10, "2.0.0", 12)], mark(1_000), 2_005);
    assert.equal(
      formatFigures("blue-green compose jetson-engine-1 probe", f),
      "blue-green compose jetson-engine-1 probe: 200 requests, 0 failed, longest gap 14 ms, p99 12 ms during the switch vs 8.0 ms steady (1.50x), answers 1.0.0=100 2.0.0=100",
    );
  });
});

describe("startLoad against a local server", () => {
  /** A server answering `version`, counting the connections it accepted and the requests it answered. */
  const server = async (hang = false) => {
    const state = { version: "1.0.0", connections: 0, requests: 0 };
    const srv = http.createServer((_req, res) => {
      if (hang) return; // never answers: the request must time out or be dropped by stop()
      state.requests++;
      res.end(`${state.version}\n`);
    });
    srv.on("connection", () => state.connections++);
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
    const close = () => {
      srv.closeAllConnections();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    };
    return { srv, state, url, close };
  };

  it("sees a switch of the answer and kept-alive connections closed under it, without failures", async () => {
    const s = await server();
    try {
      const load = startLoad([{ name: "probe", url: s.url }], { pauseMs: 2 });
      await sleep(400);
      load.mark("up");
      await sleep(200);
      s.state.version = "2.0.0";
      // What a release's old server does when it goes: its idle kept-alive connections close.
      for (let i = 0; i < 5; i++) {
        s.srv.closeIdleConnections();
        await sleep(40);
      }
      await sleep(400);
      const started = performance.now();
      const figures = await load.stop();
      assert.ok(performance.now() - started < 500, "stop() is prompt");
      const f = figures["probe"];
      assert.ok(f);
      const samples = load.samples("probe");
      assert.equal(f.requests, samples.length);
      assert.equal(f.failed, 0, JSON.stringify(f.failures));
      assert.ok((f.answers["1.0.0"] ?? 0) > 10 && (f.answers["2.0.0"] ?? 0) > 10, JSON.stringify(f.answers));
      assert.equal((f.answers["1.0.0"] ?? 0) + (f.answers["2.0.0"] ?? 0), f.requests);
      // Requests stop() cut short are not counted; the server may have answered them.
      assert.ok(s.state.requests >= f.requests && s.state.requests <= f.requests + 2 + f.retried, `${s.state.requests} vs ${f.requests}`);
      // The fresh worker opened one connection per request, the kept-alive one a few.
      const fresh = samples.filter((x) => x.connection === "fresh").length;
      const kept = samples.filter((x) => x.connection === "keep-alive").length;
      assert.ok(fresh > 10 && kept > 10, `${fresh} fresh, ${kept} kept alive`);
      assert.ok(s.state.connections >= fresh && s.state.connections <= fresh + 2 + 5 + f.retried + 2, `${s.state.connections} connections`);
      assert.equal(f.steadyAnswer, "1.0.0");
      assert.ok(f.switchWindow, "the answer changed");
      assert.ok(f.longestGapMs < 1_000, `longest gap ${f.longestGapMs} ms`);
      assert.ok(Number.isFinite(f.p99Ratio));
    } finally {
      await s.close();
    }
  });

  it("counts a refused connection as failed, by its code, without throwing", async () => {
    const s = await server();
    const url = s.url;
    await s.close();
    const load = startLoad([{ name: "gone", url }], { pauseMs: 5 });
    load.mark("up");
    await sleep(200);
    const f = (await load.stop())["gone"];
    assert.ok(f && f.requests > 5);
    assert.equal(f.failed, f.requests);
    assert.deepEqual(Object.keys(f.failures), ["ECONNREFUSED"]);
    assert.ok(f.longestGapMs >= 190, `longest gap ${f.longestGapMs} ms`);
  });

  it("times out a request that gets no answer", async () => {
    const s = await server(true);
    try {
      const load = startLoad([{ name: "hangs", url: s.url }], { timeoutMs: 100 });
      await sleep(350);
      const f = (await load.stop())["hangs"];
      assert.ok(f && f.requests >= 2 && f.requests <= 8, `${f?.requests} requests`);
      assert.deepEqual(Object.keys(f.failures), ["TIMEOUT"]);
      for (const x of load.samples("hangs")) assert.ok(x.ms >= 99 && x.ms < 1_000, `${x.ms} ms`);
    } finally {
      await s.close();
    }
  });

  it("stop() drops the requests in flight at once instead of waiting for their timeout", async () => {
    const s = await server(true);
    try {
      const load = startLoad([{ name: "hangs", url: s.url }], { timeoutMs: 10_000 });
      await sleep(100);
      const started = performance.now();
      const f = (await load.stop())["hangs"];
      assert.ok(performance.now() - started < 1_000, "stop() is prompt");
      assert.equal(f?.requests, 0);
      assert.equal(await load.stop(), await load.stop(), "stop() twice is the same stop");
    } finally {
      await s.close();
    }
  });

  it("refuses bad arguments, and loadLoop still answers its callers", async () => {
    assert.throws(() => startLoad([{ name: "a", url: "https://127.0.0.1/" }]), /is not an http:\/\/ URL/);
    assert.throws(
      () =>
        startLoad([
          { name: "a", url: "http://127.0.0.1:1/" },
          { name: "a", url: "http://127.0.0.1:1/" },
        ]),
      /two targets are named "a"/,
    );
    const s = await server();
    try {
      const loop = loadLoop(s.url);
      await sleep(100);
      const f = await loop.stop();
      assert.ok(f.requests > 3 && f.failed === 0 && f.answeredBy["1.0.0"] === f.requests);
      assert.ok(f.answeredFrom["1.0.0"]);
    } finally {
      await s.close();
    }
  });
});

describe("the curl loop for a host's own services", () => {
  it("parses its lines", () => {
    const out = [
      "1700000000100 0 2.0.0 200 0.002",
      "1700000000200 7 000 0.000123",
      "1700000001300 28 000 1.000",
      "1700000001400 0 version 3.0.0: model failed 503 0.004",
      "1700000001500 0 2.0", // cut short when the loop stopped: skipped
      "",
      "garbage",
    ].join("\n");
    assert.deepEqual(parseCurlSamples(out), [
      { t: 1700000000098, ms: 2, ok: true, answer: "2.0.0" },
      { t: 1700000000200 - 0.000123 * 1_000, ms: 0.000123 * 1_000, ok: false, answer: "curl exit 7" },
      { t: 1700000000300, ms: 1000, ok: false, answer: "curl exit 28" },
      { t: 1700000001396, ms: 4, ok: false, answer: "HTTP 503" },
    ]);
  });

  it("refuses a URL or stop file that would need quoting", () => {
    assert.throws(() => curlLoadScript("http://x/'; rm -rf /"), /not a plain http:\/\/ URL/);
    assert.throws(() => curlLoadScript("http://127.0.0.1:1/", "/tmp/a b"), /not a plain absolute path/);
  });

  it("runs in sh against a local server and stops on its file", async () => {
    const state = { version: "1.0.0" };
    const srv = http.createServer((_req, res) => res.end(`${state.version}\n`));
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const dir = mkdtempSync(join(tmpdir(), "curl-load-"));
    const stop = join(dir, "stop");
    try {
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
      const child = spawn("sh", ["-c", curlLoadScript(url, stop)], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const done = new Promise<void>((resolve) => child.once("close", () => resolve()));
      await sleep(600);
      const up = Date.now();
      state.version = "2.0.0";
      await sleep(600);
      writeFileSync(stop, "");
      await done;
      assert.ok(existsSync(stop));
      const samples = parseCurlSamples(out);
      const f = loadFigures(samples, [{ label: "up", t: up }]);
      assert.equal(f.requests, out.trim().split("\n").length);
      assert.equal(f.failed, 0, JSON.stringify(f.failures));
      assert.ok((f.answers["1.0.0"] ?? 0) > 0 && (f.answers["2.0.0"] ?? 0) > 0, JSON.stringify(f.answers));
      assert.ok(samples.every((x) => x.ms >= 0 && x.ms < 1_000));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      srv.closeAllConnections();
      srv.close();
    }
  });
});
