// The compose mode on a simulated Jetson over real SSH, sent exactly as ComposeProject's apply step
// sends it: a spec using every compose field rendered by renderComposeFile runs on the host's real
// Docker engine as docker inspect shows; a no-op changes nothing; a good update switches digests;
// a broken release is rolled back to the previous digests and keeps serving, the step failing with
// the host, the service and the health output. Then what the host layer guarantees around it: the
// file on disk is the file sent, not the sudo password's line, when sudo asks for none (NOPASSWD,
// cached credentials); a health timeout names the service still pending; two stacks' projects on
// one host leave each other's services alone, and their applies take turns on the host's lock;
// an apply step's delete removes the project only while the host runs the file that step applied.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ServiceSpec, bindSources, composeProjectName, renderBindSources, renderComposeFile } from "../../../components/index.ts";
import { startServiceHosts, type ServiceHosts } from "../../support/service-hosts.ts";
import type { SimHost } from "../../support/jetson-sim.ts";

const probeHealth = { test: ["CMD", "/web-probe", "probe"], interval: "1s", timeout: "2s", retries: 2, startPeriod: "2s" };

function stack(web: string, edge: string): ServiceSpec[] {
  return [
    ServiceSpec.parse({
      name: "web",
      image: web,
      runtime: "nvidia",
      ports: [{ target: 8080, published: 18080, hostIp: "127.0.0.1" }],
      environment: { NVIDIA_VISIBLE_DEVICES: "all", NVIDIA_DRIVER_CAPABILITIES: "compute,utility,video" },
      volumes: [
        { source: "/opt/jf6/models", target: "/models", readOnly: true },
        { source: "/opt/jf6/output", target: "/output" },
        { type: "volume", source: "probe-cache", target: "/cache" },
        { type: "tmpfs", target: "/tmp" },
      ],
      devices: ["/dev/null:/dev/probe-null:r"],
      shmSize: "256m",
      ipc: "shareable",
      ulimits: { nofile: { soft: 1024, hard: 2048 } },
      healthcheck: probeHealth,
      logging: { options: { "max-size": "5m", "max-file": "2" } },
      resources: { cpus: 0.5, memory: "128m" },
      labels: { "fleet.role": "web" },
      user: "65534:65534",
      readOnlyRootFilesystem: true,
      capDrop: ["ALL"],
    }),
    ServiceSpec.parse({
      name: "edge",
      image: edge,
      network: "host",
      ports: [{ target: 18081 }],
      environment: { PORT: 18081 },
      healthcheck: probeHealth,
      restart: "always",
      dependsOn: { web: "healthy" },
    }),
  ];
}
const file = (web: string, edge: string) => renderComposeFile(stack(web, edge), { web, edge });
/** The apply step's BIND_SOURCES for `services`, as ComposeProject passes it. */
const binds = (services: readonly ServiceSpec[]) => ({ BIND_SOURCES: renderBindSources(bindSources(services)) });

interface Inspected {
  Id: string;
  Config: { Image: string; User: string; Labels: Record<string, string>; Env: string[] };
  State: { Status: string; Health?: { Status: string } };
  HostConfig: {
    Runtime: string;
    NetworkMode: string;
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null;
    RestartPolicy: { Name: string };
    LogConfig: { Type: string; Config: Record<string, string> };
    NanoCpus: number;
    Memory: number;
    ShmSize: number;
    IpcMode: string;
    Ulimits: { Name: string; Soft: number; Hard: number }[] | null;
    ReadonlyRootfs: boolean;
    CapDrop: string[] | null;
    SecurityOpt: string[] | null;
    Devices: { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }[] | null;
    Tmpfs?: Record<string, string>;
  };
  Mounts: { Type: string; Source: string; Destination: string; RW: boolean; Name?: string }[];
}

describe("compose mode on a simulated Jetson", { timeout: 30 * 60_000 }, () => {
  let env: ServiceHosts;
  let host: SimHost;
  const inspect = async (service: string): Promise<Inspected> => {
    const id = (
      await env.sh(
        host,
        `docker ps -q --filter label=com.docker.compose.project=jetson-fleet --filter label=com.docker.compose.service=${service}`,
      )
    ).trim();
    return (JSON.parse(await env.sh(host, `docker inspect ${id}`)) as Inspected[])[0]!;
  };
  const serving = async (port: number) => (await env.sh(host, `curl -sf http://127.0.0.1:${port}/`)).trim();

  before(
    async () => {
      // A prefix of one's own keeps a run off everyone else's sims.
      env = await startServiceHosts(1, process.env["JETSON_SIM_PREFIX"] ?? "jf6-services");
      host = env.hosts[0]!;
      // A fresh host: the bind mount sources do not exist yet (a sim reused from an earlier run may have them).
      await env.sh(host, "rm -rf /opt/jf6 /opt/jf6-binds");
    },
    { timeout: 25 * 60_000 },
  );
  after(() => env?.stop());

  it("runs the rendered spec as docker inspect shows: runtime, mounts, limits, restart, logs, health", async () => {
    const { v1 } = env.releases;
    const r = await env.apply(host, file(v1, v1), binds(stack(v1, v1)));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated\nedge=${v1}\nweb=${v1}\n`);

    const web = await inspect("web");
    assert.equal(web.Config.Image, v1);
    assert.equal(web.State.Health?.Status, "healthy");
    assert.equal(web.HostConfig.Runtime, "nvidia");
    assert.equal(web.HostConfig.NetworkMode, "jetson-fleet_default");
    assert.deepEqual(web.HostConfig.PortBindings, { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "18080" }] });
    assert.deepEqual(web.Mounts.map((m) => [m.Type, m.Type === "volume" ? m.Name : m.Source, m.Destination, m.RW]).sort(), [
      ["bind", "/opt/jf6/models", "/models", false],
      ["bind", "/opt/jf6/output", "/output", true],
      ["tmpfs", "", "/tmp", true],
      ["volume", "jetson-fleet_probe-cache", "/cache", true],
    ]);
    assert.equal(web.HostConfig.RestartPolicy.Name, "unless-stopped");
    assert.deepEqual(web.HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "5m", "max-file": "2" } });
    assert.equal(web.HostConfig.NanoCpus, 500_000_000);
    assert.equal(web.HostConfig.Memory, 128 * 1024 ** 2);
    assert.equal(web.HostConfig.ShmSize, 256 * 1024 ** 2);
    assert.equal(web.HostConfig.IpcMode, "shareable");
    assert.deepEqual(web.HostConfig.Ulimits, [{ Name: "nofile", Soft: 1024, Hard: 2048 }]);
    assert.equal(web.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(web.HostConfig.CapDrop, ["ALL"]);
    assert.deepEqual(web.HostConfig.SecurityOpt, ["no-new-privileges:true"]);
    assert.deepEqual(web.HostConfig.Devices, [{ PathOnHost: "/dev/null", PathInContainer: "/dev/probe-null", CgroupPermissions: "r" }]);
    assert.equal(web.Config.User, "65534:65534");
    assert.equal(web.Config.Labels["fleet.role"], "web");
    assert.ok(web.Config.Env.includes("NVIDIA_VISIBLE_DEVICES=all"), web.Config.Env.join(" "));
    // The read-only root still has a writable /tmp.
    assert.equal((await env.sh(host, `docker exec ${web.Id} /web-probe probe`)).trim(), "200 version 1.0.0: ok");

    const edge = await inspect("edge");
    assert.equal(edge.HostConfig.NetworkMode, "host");
    assert.equal(edge.HostConfig.Runtime, "runc");
    assert.equal(edge.HostConfig.RestartPolicy.Name, "always");
    assert.deepEqual(edge.HostConfig.LogConfig, { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } });
    assert.equal(edge.State.Health?.Status, "healthy");
    assert.equal(await serving(18080), "1.0.0");
    assert.equal(await serving(18081), "1.0.0");
  });

  it("changes nothing when the same file is applied again", async () => {
    const { v1 } = env.releases;
    const before = [(await inspect("web")).Id, (await inspect("edge")).Id];
    const r = await env.apply(host, file(v1, v1), binds(stack(v1, v1)));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `unchanged\nedge=${v1}\nweb=${v1}\n`);
    assert.deepEqual([(await inspect("web")).Id, (await inspect("edge")).Id], before);
  });

  it("switches to new digests once they are healthy", async () => {
    const { v2 } = env.releases;
    const r = await env.apply(host, file(v2, v2), binds(stack(v2, v2)));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated\nedge=${v2}\nweb=${v2}\n`);
    assert.equal((await inspect("web")).Config.Image, v2);
    assert.equal(await serving(18080), "2.0.0");
    assert.equal(await serving(18081), "2.0.0");
  });

  it("rolls a broken release back to the previous digests, keeps serving, and fails naming host, service and health output", async () => {
    const { v2, broken } = env.releases;
    const r = await env.apply(host, file(broken, v2), binds(stack(broken, v2)));
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    const message = `host ${host.name}: service web is not healthy after the update to ${broken}; health output: 503 version 3.0.0: model failed to load`;
    assert.equal(
      r.stderr.trim().split("\n").at(-1),
      `compose-apply: ${message}; rolled back to the previous digests (edge=${v2} web=${v2}), healthy again`,
    );
    const web = await inspect("web");
    assert.equal(web.Config.Image, v2);
    assert.equal(web.State.Health?.Status, "healthy");
    assert.equal(await serving(18080), "2.0.0");
    // The host keeps the last good file: the next identical apply of it is a no-op.
    const again = await env.apply(host, file(v2, v2), binds(stack(v2, v2)));
    assert.equal(again.stdout, `unchanged\nedge=${v2}\nweb=${v2}\n`);
  });

  it("refuses to start when the host has no compose command, changing nothing", async () => {
    const { v2 } = env.releases;
    await env.sh(host, "mv /usr/bin/docker-compose /usr/bin/docker-compose.away");
    try {
      const r = await env.apply(host, file(v2, v2), binds(stack(v2, v2)));
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr.trim(),
        `compose-apply: host ${host.name}: neither 'docker compose' nor 'docker-compose' is installed; expected one of them; nothing was changed`,
      );
    } finally {
      await env.sh(host, "mv /usr/bin/docker-compose.away /usr/bin/docker-compose");
    }
  });
  it("creates the bind mount sources a host lacks, owned by the service's user when it writes there, and leaves existing paths alone", async () => {
    const { v1 } = env.releases;
    const project = "binds";
    const root = "/opt/jf6-binds";
    // Already there, as a user's data would be: a directory with its own owner and mode, and a file.
    await env.sh(
      host,
      `mkdir -p ${root}/kept && chown 1234:4321 ${root}/kept && chmod 0750 ${root}/kept
printf 'mine\\n' >${root}/config.txt && chown 1234:4321 ${root}/config.txt && chmod 0600 ${root}/config.txt`,
    );
    const writer = ServiceSpec.parse({
      name: "writer",
      image: v1,
      ports: [{ target: 8080, published: 18097, hostIp: "127.0.0.1" }],
      healthcheck: probeHealth,
      user: "65534:65534",
      volumes: [
        { source: `${root}/fresh/output`, target: "/output" },
        { source: `${root}/fresh/models`, target: "/models", readOnly: true },
        { source: `${root}/kept`, target: "/kept" },
        { source: `${root}/config.txt`, target: "/etc/probe.txt", readOnly: true },
      ],
    });
    const r = await env.apply(host, renderComposeFile([writer], { writer: v1 }), { PROJECT: project, ...binds([writer]) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated\nwriter=${v1}\n`);
    assert.deepEqual(r.stderr.trim().split("\n"), [
      `compose-apply: host ${host.name}: created the bind mount source ${root}/fresh/models (owner 0:0, mode 0755)`,
      `compose-apply: host ${host.name}: created the bind mount source ${root}/fresh/output (owner 65534:65534, mode 0755)`,
    ]);
    const stat = async (path: string) => (await env.sh(host, `stat -c '%F %u:%g %a' ${path}`)).trim();
    assert.equal(await stat(`${root}/fresh`), "directory 0:0 755", "a missing parent: root's");
    assert.equal(await stat(`${root}/fresh/output`), "directory 65534:65534 755");
    assert.equal(await stat(`${root}/fresh/models`), "directory 0:0 755");
    assert.equal(await stat(`${root}/kept`), "directory 1234:4321 750");
    assert.equal(await stat(`${root}/config.txt`), "regular file 1234:4321 600");
    assert.equal(await env.sh(host, `cat ${root}/config.txt`), "mine\n");
    // The service's user writes to its output, through the container's own mount: /proc/PID/root
    // is the container's filesystem, and the write runs with the service's uid and gid only.
    const id = (await env.sh(host, `docker ps -q --filter label=com.docker.compose.project=${project}`)).trim();
    await env.sh(
      host,
      `pid=$(docker inspect -f '{{.State.Pid}}' ${id})
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo written >/proc/$pid/root/output/probe"`,
    );
    assert.match(await stat(`${root}/fresh/output/probe`), /^regular file 65534:65534 \d+$/);
    assert.equal(await env.sh(host, `cat ${root}/fresh/output/probe`), "written\n");
    // Existing now, so a second apply creates nothing and changes no owner or mode.
    await env.sh(host, `chmod 0700 ${root}/fresh/output`);
    const again = await env.apply(host, renderComposeFile([writer], { writer: v1 }), { PROJECT: project, ...binds([writer]) });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr, "");
    assert.equal(await stat(`${root}/fresh/output`), "directory 65534:65534 700");
    await down(project);
  });

  // --- the host layer around compose-apply.sh ---------------------------------------------------
  const STATE = "/var/lib/jetson-fleet/compose";
  const LOCK = `${STATE}/apply.lock`;
  /** One web-probe service on a loopback port of the host. */
  const probe = (name: string, image: string, port: number, healthcheck = probeHealth) =>
    ServiceSpec.parse({ name, image, ports: [{ target: 8080, published: port, hostIp: "127.0.0.1" }], healthcheck });
  const one = (name: string, image: string, port: number) => renderComposeFile([probe(name, image, port)], { [name]: image });
  const down = (project: string, file = "current.yaml") =>
    env.sh(host, `docker-compose -p ${project} -f ${STATE}/${project}/${file} down -v --remove-orphans 2>/dev/null || true`);
  /** Runs `body` with a sudoers drop-in for jetson, removed afterwards with every cached credential. */
  const withSudoers = async (rule: string, body: () => Promise<void>) => {
    const file = "/etc/sudoers.d/90-jetson-fleet-test";
    await env.sh(
      host,
      `printf '%s\\n' '${rule}' >${file}.tmp && chmod 440 ${file}.tmp && visudo -cqf ${file}.tmp && mv ${file}.tmp ${file}`,
    );
    try {
      await body();
    } finally {
      await env.sh(host, `rm -f ${file}; rm -rf /run/sudo/ts/jetson`);
    }
  };
  /** Which of the host's state files hold the sudo password (the pattern on stdin, not in argv). */
  const filesWithPassword = async () =>
    (await env.sh(host, `grep -rlsF -f - ${STATE} <<'EOF' || true\n${env.fleet.sudoPassword}\nEOF`)).trim();

  it("writes the file sent, byte for byte, and never the password, when sudo asks for none (NOPASSWD)", async () => {
    const { v1 } = env.releases;
    const project = "nopasswd";
    const sent = one("web", v1, 18090);
    await withSudoers("jetson ALL=(ALL) NOPASSWD: ALL", async () => {
      // The elevation really takes no password now: a wrong one is not even looked at.
      const first = await env.apply(host, sent, { PROJECT: project }, "not-the-password");
      assert.equal(first.code, 0, first.stderr);
      const r = await env.apply(host, sent, { PROJECT: project });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `unchanged\nweb=${v1}\n`);
    });
    const kept = await env.sh(host, `cat ${STATE}/${project}/current.yaml`);
    assert.notEqual(kept.split("\n")[0], env.fleet.sudoPassword);
    assert.equal(kept, sent);
    assert.equal(await filesWithPassword(), "");
    await down(project);
  });

  it("writes the file sent when sudo has cached credentials, and a password it does not ask for goes nowhere", async () => {
    const { v1 } = env.releases;
    const project = "cached";
    const sent = one("web", v1, 18090);
    // One record for every session of jetson (the default is one per terminal or parent process).
    await withSudoers("Defaults:jetson timestamp_type=global, timestamp_timeout=5", async () => {
      await env.sh(host, "true"); // authenticates with the password: the record is fresh
      const r = await env.apply(host, sent, { PROJECT: project }, "not-the-password");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `updated\nweb=${v1}\n`);
    });
    assert.equal(await env.sh(host, `cat ${STATE}/${project}/current.yaml`), sent);
    assert.equal(await filesWithPassword(), "");
    // Without the record, the wrong password is refused again.
    const refused = await env.apply(host, sent, { PROJECT: project }, "not-the-password");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /incorrect password attempt/);
    await down(project);
  });

  it("names the service still pending when the health wait times out", async () => {
    const { v1 } = env.releases;
    const project = "timeout";
    // slow's first health check runs after an hour: it stays "starting"; quick is healthy in seconds.
    // (bash lists the two as "slow quick": the loop's last service is quick, the pending one is slow.)
    const services = [probe("quick", v1, 18092), probe("slow", v1, 18093, { ...probeHealth, interval: "1h" })];
    const r = await env.apply(host, renderComposeFile(services, { quick: v1, slow: v1 }), { PROJECT: project, HEALTH_TIMEOUT: "20" });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr.trim().split("\n").at(-1) ?? "",
      new RegExp(
        `^compose-apply: host ${host.name}: service slow is not healthy after the update to ${v1.replace(/[.]/g, "\\.")}; ` +
          `health output: not healthy after 20s \\(state: running\\|starting\\|[^)]+\\); no previous version on this host to roll back to$`,
      ),
    );
    await down(project, "next.yaml");
  });

  it("keeps two stacks' projects on one host apart: neither apply removes the other's services", async () => {
    const { v1 } = env.releases;
    const [a, b] = [composeProjectName("jetson-fleet", "staging"), composeProjectName("jetson-fleet", "prod")];
    assert.deepEqual([a, b], ["jetson-fleet-staging", "jetson-fleet-prod"]);
    // The same service name in both, as two stacks of one program have.
    const [fileA, fileB] = [one("web", v1, 18094), one("web", v1, 18095)];
    const ids = async () =>
      (
        await env.sh(
          host,
          `docker ps -q --no-trunc --filter label=com.docker.compose.project=${a}; echo --; docker ps -q --no-trunc --filter label=com.docker.compose.project=${b}`,
        )
      ).trim();
    assert.equal((await env.apply(host, fileA, { PROJECT: a })).code, 0);
    assert.equal((await env.apply(host, fileB, { PROJECT: b })).code, 0);
    const both = await ids();
    assert.match(both, /^[0-9a-f]{64}\n--\n[0-9a-f]{64}$/);
    const again = [await env.apply(host, fileA, { PROJECT: a }), await env.apply(host, fileB, { PROJECT: b })];
    assert.deepEqual(
      again.map((r) => r.stdout),
      [`unchanged\nweb=${v1}\n`, `unchanged\nweb=${v1}\n`],
    );
    assert.equal(await ids(), both);
    assert.deepEqual([await serving(18094), await serving(18095)], ["1.0.0", "1.0.0"]);
  });

  it("serializes concurrent applies on one host: both succeed, one after the other", async () => {
    const { v2 } = env.releases;
    const [a, b] = [composeProjectName("jetson-fleet", "staging"), composeProjectName("jetson-fleet", "prod")];
    const [ra, rb] = await Promise.all([
      env.apply(host, one("web", v2, 18094), { PROJECT: a }),
      env.apply(host, one("web", v2, 18095), { PROJECT: b }),
    ]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.deepEqual([ra.stdout, rb.stdout], [`updated\nweb=${v2}\n`, `updated\nweb=${v2}\n`]);
    // Exactly one of them found the lock held by the other, and took it once the other was done.
    const waited = [ra, rb].filter((r) => r.stderr.includes("waiting up to"));
    assert.equal(waited.length, 1, `${ra.stderr}\n---\n${rb.stderr}`);
    const [waiter, other] = waited[0] === ra ? [a, b] : [b, a];
    const lines = (waited[0]?.stderr ?? "").trim().split("\n");
    assert.match(
      lines[0] ?? "",
      new RegExp(
        `^compose-apply: host ${host.name}: waiting up to 900s for the apply holding ${LOCK} \\(project ${other}, pid \\d+, since \\S+Z\\)$`,
      ),
    );
    assert.match(lines[1] ?? "", new RegExp(`^compose-apply: host ${host.name}: took ${LOCK} after \\d+s$`));
    assert.match(await env.sh(host, `cat ${LOCK}`), new RegExp(`^project ${waiter}, pid \\d+, since \\S+Z\\n$`));
    assert.deepEqual([await serving(18094), await serving(18095)], ["2.0.0", "2.0.0"]);
    await down(a);
    await down(b);
  });

  it("deletes the project only from the step whose file the host runs: a replaced step's delete leaves it running", async () => {
    const { v1, v2 } = env.releases;
    const project = "destroy";
    const running = () => env.sh(host, `docker ps -aq --filter label=com.docker.compose.project=${project}`);
    /** web-probe with a named volume: data that must outlive the project. */
    const release = (image: string) =>
      renderComposeFile(
        [
          ServiceSpec.parse({
            name: "web",
            image,
            ports: [{ target: 8080, published: 18098, hostIp: "127.0.0.1" }],
            healthcheck: probeHealth,
            volumes: [{ type: "volume", source: "data", target: "/data" }],
          }),
        ],
        { web: image },
      );
    const [first, second] = [release(v1), release(v2)];
    const sha = (f: string) => createHash("sha256").update(f).digest("hex");
    const p = { PROJECT: project };
    // A replacement: the new step is created (applied) before the old one is deleted.
    assert.equal((await env.apply(host, first, p)).code, 0);
    assert.equal((await env.apply(host, second, p)).code, 0);
    const old = await env.remove(host, first, p);
    assert.equal(old.code, 0, old.stderr);
    assert.equal(
      old.stderr,
      `compose-apply: host ${host.name}: project ${project}: left running: the host runs a newer compose file (sha256 ${sha(second)}), not this step's (${sha(first)})\n`,
    );
    assert.equal(await serving(18098), "2.0.0");

    // A replacement that keeps the file (a new script, a new parameter): the old step's delete
    // finds the file claimed by the new one.
    assert.equal((await env.apply(host, second, p)).code, 0);
    const same = await env.remove(host, second, p);
    assert.equal(same.code, 0, same.stderr);
    assert.equal(
      same.stderr,
      `compose-apply: host ${host.name}: project ${project}: left running: another apply step applied this same file and still stands\n`,
    );
    assert.equal(await serving(18098), "2.0.0");

    // The surviving step's delete, the last claim: it removes the project.
    const last = await env.remove(host, second, p);
    assert.equal(last.code, 0, last.stderr);
    assert.equal(
      last.stderr,
      `compose-apply: host ${host.name}: project ${project}: removed its containers and networks; its named volumes and images stay on this host\n`,
    );
    assert.equal((await running()).trim(), "", "docker ps -a lists nothing of the project");
    assert.equal(
      (
        await env.sh(
          host,
          `docker network ls -q --filter label=com.docker.compose.project=${project}; ls -A ${STATE}/${project} 2>&1 || true`,
        )
      ).trim(),
      `ls: cannot access '${STATE}/${project}': No such file or directory`,
    );
    assert.equal(
      (await env.sh(host, `docker volume ls -q --filter name=^${project}_data$`)).trim(),
      `${project}_data`,
      "the named volume stays",
    );

    const again = await env.remove(host, second, p);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      again.stderr,
      `compose-apply: host ${host.name}: project ${project}: nothing to remove, no compose file was applied here\n`,
    );
    await env.sh(host, `docker volume rm ${project}_data >/dev/null`);
  });

  it("waits for the lock a bounded time, then fails saying who holds it, changing nothing", async () => {
    const { v1 } = env.releases;
    const project = "locked";
    const holder = (
      await env.sh(
        host,
        `setsid bash -c 'exec 9>>${LOCK}; flock 9; echo "project test-holder" >${LOCK}; exec sleep 120' </dev/null >/dev/null 2>&1 & echo $!
for _ in $(seq 1 50); do grep -q test-holder ${LOCK} && break; sleep 0.1; done`,
      )
    ).trim();
    try {
      const r = await env.apply(host, one("web", v1, 18096), { PROJECT: project, LOCK_TIMEOUT: "2" });
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `compose-apply: host ${host.name}: waiting up to 2s for the apply holding ${LOCK} (project test-holder)\n` +
          `compose-apply: host ${host.name}: another apply still holds ${LOCK} after 2s (project test-holder); nothing was changed\n`,
      );
      assert.equal(
        (
          await env.sh(
            host,
            `ls -A ${STATE}/${project} 2>/dev/null || true; docker ps -q --filter label=com.docker.compose.project=${project}`,
          )
        ).trim(),
        "",
      );
      // A delete takes the same lock.
      const d = await env.remove(host, one("web", v1, 18096), { PROJECT: project, LOCK_TIMEOUT: "2" });
      assert.equal(d.code, 1);
      assert.match(d.stderr, new RegExp(`another apply still holds ${LOCK} after 2s \\(project test-holder\\); nothing was changed\\n$`));
    } finally {
      await env.sh(host, `kill ${holder}`);
    }
  });
});
