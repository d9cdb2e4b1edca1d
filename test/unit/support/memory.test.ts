// The container memory figures' parsing, by table: cgroup v1 and v2 reports, with and without
// the page-cache lines, and /proc/<pid>/status of a container's processes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  containerMemoryBytes,
  containerMemoryScript,
  parseContainerMemory,
  parseProcessStatus,
  processRssBytes,
  processStatusScript,
} from "../../support/memory.ts";

const v1Stat = [
  "cache 8192000",
  "rss 4096000",
  "inactive_file 1000000",
  "total_cache 8192000",
  "total_inactive_file 2000000",
  "total_rss 4096000",
];
const v2Stat = ["anon 5242880", "file 3145728", "active_file 1048576", "inactive_file 2097152", "shmem 0"];
const report = (version: number, usage: number, stat: string[]) =>
  [`version ${version}`, "dir /sys/fs/cgroup/x/docker-abc.scope", `usage ${usage}`, ...stat.map((l) => `stat ${l}`)].join("\n") + "\n";

describe("parseContainerMemory", () => {
  const cases: { name: string; output: string; bytes: number; usage: number; inactive: number; file: number; source: string }[] = [
    {
      name: "cgroup v1: usage minus total_inactive_file, as docker stats",
      output: report(1, 20_000_000, v1Stat),
      bytes: 18_000_000,
      usage: 20_000_000,
      inactive: 2_000_000,
      file: 8_192_000,
      source: "cgroup v1 memory.usage_in_bytes - total_inactive_file",
    },
    {
      name: "cgroup v1 without the total_ lines: inactive_file and cache",
      output: report(1, 20_000_000, ["cache 7000000", "inactive_file 1000000"]),
      bytes: 19_000_000,
      usage: 20_000_000,
      inactive: 1_000_000,
      file: 7_000_000,
      source: "cgroup v1 memory.usage_in_bytes - inactive_file",
    },
    {
      name: "cgroup v2: memory.current minus inactive_file",
      output: report(2, 9_000_000, v2Stat),
      bytes: 9_000_000 - 2_097_152,
      usage: 9_000_000,
      inactive: 2_097_152,
      file: 3_145_728,
      source: "cgroup v2 memory.current - inactive_file",
    },
    {
      name: "no page-cache lines: the usage as it is, and the source says so",
      output: report(2, 9_000_000, ["anon 5242880"]),
      bytes: 9_000_000,
      usage: 9_000_000,
      inactive: 0,
      file: 0,
      source: "cgroup v2 memory.current (memory.stat has no inactive_file: page cache included)",
    },
    {
      name: "never below zero (the two files are read a moment apart)",
      output: report(2, 1_000_000, ["inactive_file 2000000"]),
      bytes: 0,
      usage: 1_000_000,
      inactive: 2_000_000,
      file: 0,
      source: "cgroup v2 memory.current - inactive_file",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const m = parseContainerMemory(c.output);
      assert.deepEqual(
        { bytes: m.bytes, usage: m.usageBytes, inactive: m.inactiveFileBytes, file: m.fileBytes, source: m.source },
        { bytes: c.bytes, usage: c.usage, inactive: c.inactive, file: c.file, source: c.source },
      );
      assert.equal(m.cgroup, "/sys/fs/cgroup/x/docker-abc.scope");
    });
  }

  it("keeps the whole memory.stat, skipping lines that are not a key and a number", () => {
    const m = parseContainerMemory(report(2, 1, [...v2Stat, "weird line here", "nonnumeric x"]));
    assert.deepEqual(m.stat, { anon: 5242880, file: 3145728, active_file: 1048576, inactive_file: 2097152, shmem: 0 });
    assert.equal(m.cgroupVersion, 2);
  });

  for (const [name, output] of [
    ["empty", ""],
    ["no usage", "version 2\ndir /x\n"],
    ["a usage that is not a number", "version 1\ndir /x\nusage max\n"],
    ["an unknown version", "version 3\ndir /x\nusage 1\n"],
  ] as const) {
    it(`refuses output with ${name}`, () => {
      assert.throws(() => parseContainerMemory(output), /^Error: unexpected output of the container memory script/);
    });
  }
});

describe("parseProcessStatus", () => {
  const cases: { name: string; output: string; want: { pid: number; name: string; rssBytes: number }[] }[] = [
    {
      name: "two processes, kB as KiB",
      output: "pid 4242\nName:\tkamal-proxy\nVmRSS:\t   12345 kB\npid 4300\nName:\tsh\nVmRSS:\t     800 kB\n",
      want: [
        { pid: 4242, name: "kamal-proxy", rssBytes: 12345 * 1024 },
        { pid: 4300, name: "sh", rssBytes: 800 * 1024 },
      ],
    },
    {
      name: "a process without VmRSS (a zombie) counts 0",
      output: "pid 7\nName:\tweb-probe\npid 8\nName:\tx\nVmRSS:\t1 kB\n",
      want: [
        { pid: 7, name: "web-probe", rssBytes: 0 },
        { pid: 8, name: "x", rssBytes: 1024 },
      ],
    },
    { name: "nothing listed", output: "", want: [] },
    {
      name: "lines before the first pid are ignored",
      output: "VmRSS:\t5 kB\npid 1\nVmRSS: 2 kB\n",
      want: [{ pid: 1, name: "", rssBytes: 2048 }],
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(parseProcessStatus(c.output), c.want));
  }
});

describe("the host scripts", () => {
  it("refuse what is not a container name, before anything runs", async () => {
    let ran = 0;
    const exec = (_script: string) => {
      ran++;
      return Promise.resolve("");
    };
    for (const bad of ["", "a b", "x;rm -rf /", "$(id)", "-f"]) {
      await assert.rejects(containerMemoryBytes(exec, bad), /is not a Docker container name or id/);
      await assert.rejects(processRssBytes(exec, bad), /is not a Docker container name or id/);
    }
    assert.equal(ran, 0);
  });

  it("name the container and the files they read", () => {
    const mem = containerMemoryScript("jetson-fleet-proxy");
    assert.match(mem, /docker inspect -f '\{\{\.State\.Pid\}\}' jetson-fleet-proxy/);
    assert.match(mem, /memory\.current/);
    assert.match(mem, /memory\.usage_in_bytes/);
    assert.match(processStatusScript("web_probe.1"), /^docker top web_probe\.1 -o pid/);
  });

  it("sum the processes' VmRSS and take the cgroup figure through exec", async () => {
    const outputs: Record<string, string> = {
      "docker top": "pid 1\nName:\ta\nVmRSS:\t100 kB\npid 2\nName:\tb\nVmRSS:\t28 kB\n",
      "docker inspect": report(1, 5_000, ["total_inactive_file 1000"]),
    };
    const exec = (script: string) => Promise.resolve(Object.entries(outputs).find(([k]) => script.includes(k))?.[1] ?? "");
    assert.equal(await processRssBytes(exec, "p"), 128 * 1024);
    assert.equal(await containerMemoryBytes(exec, "p"), 4_000);
  });
});
