// tools/test.sh's closing line: passed, failed, skipped and todo counts from node --test's spec
// reporter, and a failed run when a test or suite is skipped for a reason tools/test-skips.txt does
// not list (or for none). Its tally and closing functions run in a real bash, on the logs of real
// node --test runs of test/fixtures/skips/ and on canned logs for what a real run rarely shows.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const PROJECT_DIR = join(import.meta.dirname, "..", "..", "..");
const SCRIPT = join(PROJECT_DIR, "tools", "test.sh");
const FIXTURES = join(PROJECT_DIR, "test", "fixtures", "skips");
const FIXTURE_SKIPS = join(FIXTURES, "test-skips.txt");

const scratch = mkdtempSync(join(tmpdir(), "jetson-fleet-test-sh-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
// bash runs in an empty directory below an empty one: a script that ran instead of only defining
// its functions finds no project there (nor one level up) and stops at once.
const cwd = join(scratch, "cwd");
mkdirSync(cwd);

let logs = 0;
/** A file holding `text`, for the functions to read. */
function file(text: string): string {
  const path = join(scratch, `log-${++logs}`);
  writeFileSync(path, text);
  return path;
}

/** The spec reporter's log of `node --test` on one fixture file, run as tools/test.sh runs a tier. */
function specLog(fixture: string): string {
  // Under node --test, NODE_TEST_CONTEXT would make the inner runner report to this one instead.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const run = spawnSync(process.execPath, ["--test", "--test-reporter=spec", join(FIXTURES, fixture)], {
    cwd: PROJECT_DIR,
    env,
    encoding: "utf8",
  });
  assert.equal(run.error, undefined);
  return file(run.stdout + run.stderr);
}

/** tools/test.sh sourced in bash, then `tally TIER LOG` for each entry and `closing`, against the skip list `skips`. */
function tally(skips: string, tiers: [tier: string, log: string][]): { status: number | null; stdout: string; stderr: string } {
  const script = 'source "$1"; skips_file=$2; shift 2; while (($#)); do tally "$1" "$2"; shift 2; done; closing';
  const run = spawnSync("bash", ["-c", script, "test-sh", SCRIPT, skips, ...tiers.flat()], { cwd, encoding: "utf8" });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("tools/test.sh", () => {
  it("defines its functions and runs nothing when sourced", () => {
    const run = spawnSync("bash", ["-c", 'source "$1"; declare -F tally closing; echo "passed=$passed"', "test-sh", SCRIPT], {
      cwd,
      encoding: "utf8",
    });
    assert.deepEqual([run.status, run.stdout, run.stderr], [0, "tally\nclosing\npassed=0\n", ""]);
  });

  it("passes a run whose skips all give a listed reason, and counts skipped tests, skipped suites and todos", () => {
    assert.deepEqual(tally(FIXTURE_SKIPS, [["unit", specLog("listed.fixture.ts")]]), {
      status: 0,
      stdout: "\n1 passed, 0 failed, 3 skipped, 1 todo\n",
      stderr: "",
    });
  });

  it("fails a run with a skip for an unlisted reason or for none, naming each with its tier", () => {
    const listed = specLog("listed.fixture.ts");
    const unlisted = specLog("unlisted.fixture.ts");
    assert.deepEqual(
      tally(FIXTURE_SKIPS, [
        ["unit", listed],
        ["integration", unlisted],
      ]),
      {
        status: 1,
        stdout: [
          "",
          `skipped without a reason ${FIXTURE_SKIPS} lists (list the reason there, or let the test run):`,
          '  integration: "is flaky" # flaky on CI',
          '  integration: "gives no reason" (no reason given)',
          '  integration: "is skipped with it.skip" (no reason given)',
          '  integration: "skips at run time" # docker is # not running',
          '  integration: "a suite" # later',
          "",
          // A failing todo fails nothing; the failing test does.
          "2 passed, 1 failed, 9 skipped (5 without a listed reason), 3 todo",
          "",
        ].join("\n"),
        stderr: "",
      },
    );
  });

  it("fails every skip when the list holds comments only", () => {
    const { status, stdout } = tally(file("# nothing may be skipped\n\n"), [["unit", specLog("listed.fixture.ts")]]);
    assert.equal(status, 1);
    assert.match(stdout, /\n1 passed, 0 failed, 3 skipped \(3 without a listed reason\), 1 todo\n$/);
  });

  it("refuses to tally without the skip list", () => {
    const missing = join(scratch, "no-such-list.txt");
    assert.deepEqual(tally(missing, [["unit", specLog("listed.fixture.ts")]]), {
      status: 1,
      stdout: "",
      stderr: `tools/test.sh: ${missing} is missing: it lists the reasons a test may be skipped for\n`,
    });
  });

  const summary = (counts: string) =>
    counts
      .split(" ")
      .map((pair) => `ℹ ${pair.replace("=", " ")}\n`)
      .join("");
  const canned: { name: string; logs: string[]; status: number; closing: string }[] = [
    {
      name: "a runner that died before its summary counts as a failure",
      logs: ["▶ suite\n  ✔ one (1ms)\n"],
      status: 1,
      closing: "0 passed, 1 failed, 0 skipped, 0 todo",
    },
    {
      name: "cancelled tests count as failed",
      logs: [summary("tests=5 pass=3 fail=0 cancelled=2 skipped=0 todo=0")],
      status: 1,
      closing: "3 passed, 2 failed, 0 skipped, 0 todo",
    },
    {
      name: "tiers add up",
      logs: [summary("tests=4 pass=3 fail=0 cancelled=0 skipped=0 todo=1"), summary("tests=8 pass=7 fail=0 cancelled=0 skipped=0 todo=1")],
      status: 0,
      closing: "10 passed, 0 failed, 0 skipped, 2 todo",
    },
    {
      name: "colours a CI forces on hide nothing",
      logs: [
        "\x1b[32m✔ one \x1b[90m(1ms)\x1b[39m\n" +
          "\x1b[90m﹣ skipped one \x1b[90m(0.1ms)\x1b[39m # flaky\x1b[39m\n" +
          "\x1b[34mℹ pass 1\x1b[39m\n\x1b[34mℹ fail 0\x1b[39m\n\x1b[34mℹ todo 0\x1b[39m\n",
      ],
      status: 1,
      closing: "1 passed, 0 failed, 1 skipped (1 without a listed reason), 0 todo",
    },
  ];
  for (const c of canned) {
    it(c.name, () => {
      const { status, stdout } = tally(
        FIXTURE_SKIPS,
        c.logs.map((log, i) => [`tier${i}`, file(log)]),
      );
      assert.deepEqual([status, stdout.split("\n").at(-2)], [c.status, c.closing]);
    });
  }

  it("the project's skip list names each reason once, with no stray spaces", () => {
    const reasons = readFileSync(join(PROJECT_DIR, "tools", "test-skips.txt"), "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"));
    assert.deepEqual(
      reasons.filter((r) => r !== r.trim()),
      [],
    );
    assert.equal(new Set(reasons).size, reasons.length);
  });
});
