// The dev stack's stand-ins for its external images (images/stand-ins/), run the way the dev stack
// runs them: built by images/stand-ins/build.sh, copied into a registry under the references
// Pulumi.dev.yaml names (as tools/dev-env.sh does), resolved to digests by the program's resolver,
// and started by docker-compose from the compose file the compose deploy mode renders for the dev
// stack's own service specs. Two changes keep parallel runs and the host's ports out of the way:
// mediamtx runs on a bridge network instead of the host's, and both publish on free loopback ports;
// the web UI's host directory is an empty scratch directory, as on a fresh host.
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { ServiceSpec, registryResolver, renderComposeFile } from "../../../components/index.ts";
import { PROJECT } from "../../support/fixtures.ts";
import { IMAGES_DIR, inspectImage, removeImages, waitUntil } from "../../support/images.ts";
import { docker, freePort, run, scratchDir, startRegistry, type Registry } from "../../support/services.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const DEV_REGISTRY = "127.0.0.1:5000";
const COMPOSE_PROJECT = `jetson-fleet-stand-ins-${process.pid}`;
/** The stand-in (images/stand-ins/NAME) each dev stack service runs. */
const STAND_IN_OF = { mediamtx: "mediamtx", "web-ui": "nginx" } as const;

/** The dev stack's services as the stack file writes them (before defaults). */
function devServices(): Record<string, Record<string, unknown>> {
  const config = (parse(readFileSync(join(ROOT, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> }).config;
  const services = config[`${PROJECT}:services`] as Record<string, unknown>[];
  return Object.fromEntries(services.map((s) => [String(s["name"]), s]));
}

function omit(obj: Record<string, unknown> | undefined, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj ?? {}).filter(([k]) => !keys.includes(k)));
}

interface RtspResponse {
  readonly status: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** One RTSP connection: requests one after another, each answer read to the end of its body. */
async function rtspConnection(port: number) {
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let buffer = Buffer.alloc(0);
  let cseq = 0;
  const request = (method: string, url: string, headers: Record<string, string> = {}, body = ""): Promise<RtspResponse> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`${method} ${url}: no complete answer in 5 s: ${buffer.toString()}`)), 5000);
      const onData = (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const [status = "", ...lines] = buffer.subarray(0, end).toString().split("\r\n");
        const hdrs = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
        const length = Number(hdrs["content-length"] ?? 0);
        if (buffer.length < end + 4 + length) return;
        const content = buffer.subarray(end + 4, end + 4 + length).toString();
        buffer = buffer.subarray(end + 4 + length);
        done(undefined, { status, headers: hdrs, body: content });
      };
      const done = (err?: Error, res?: RtspResponse) => {
        clearTimeout(timer);
        socket.off("data", onData).off("error", done);
        if (err) reject(err);
        else resolve(res as RtspResponse);
      };
      socket.on("data", onData).on("error", done);
      const all = { CSeq: String(++cseq), ...headers, ...(body ? { "Content-Length": String(Buffer.byteLength(body)) } : {}) };
      socket.write(
        `${method} ${url} RTSP/1.0\r\n${Object.entries(all)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("")}\r\n${body}`,
      );
    });
  return { request, close: () => socket.destroy() };
}

async function rtsp(port: number, method: string, url: string, headers: Record<string, string> = {}): Promise<RtspResponse> {
  const conn = await rtspConnection(port);
  try {
    return await conn.request(method, url, headers);
  } finally {
    conn.close();
  }
}

describe("dev stack stand-ins for the external images", { timeout: 15 * 60_000 }, () => {
  let registry: Registry;
  let composeFile: string;
  let webDir: string;
  const pinned: Record<string, string> = {};
  const built: Record<string, string> = {};
  const port = { rtsp: 0, rtspSource: 0, http: 0, web: 0 };

  const compose = (...args: string[]) => run("docker-compose", ["-p", COMPOSE_PROJECT, "-f", composeFile, ...args]);
  const containerOf = async (service: string) => (await compose("ps", "-q", service)).stdout.trim();
  const health = async (service: string) =>
    (await docker("inspect", "-f", "{{.State.Health.Status}}", await containerOf(service))).stdout.trim();

  // A cold first run makes the Debian minbase image and both stand-ins (a few minutes).
  before(
    async () => {
      const started = performance.now();
      const { stdout } = await run(join(IMAGES_DIR, "stand-ins", "build.sh"), [], { maxBuffer: 16 * 1024 * 1024 });
      for (const m of stdout.matchAll(/^STAND_IN_(\w+)=(\S+)$/gm)) built[(m[1] ?? "").toLowerCase()] = m[2] ?? "";
      console.log(`stand-ins: ${JSON.stringify(built)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);

      registry = await startRegistry();
      const specs = devServices();
      const resolve = registryResolver();
      for (const [service, name] of Object.entries(STAND_IN_OF)) {
        const ref = String(specs[service]?.["image"]);
        const image = built[name] ?? assert.fail(`build.sh printed no STAND_IN_${name.toUpperCase()}`);
        // tools/dev-env.sh pushes jetson-fleet/stand-in-NAME:VERSION-HASH as stand-in/NAME:VERSION.
        const version = /:(.+)-[0-9a-f]{12}$/.exec(image)?.[1];
        assert.equal(ref, `${DEV_REGISTRY}/stand-in/${name}:${version}`);
        const testRef = ref.replace(DEV_REGISTRY, registry.server);
        await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `docker-daemon:${image}`, `docker://${testRef}`]);
        pinned[service] = await resolve(testRef);
      }

      port.rtsp = await freePort();
      port.rtspSource = await freePort();
      port.http = await freePort();
      port.web = await freePort();
      webDir = scratchDir("stand-ins-web");
      // As a host's /opt/fleet/web: readable by nginx's non-root user (mkdtemp makes it 0700).
      chmodSync(webDir, 0o755);
      const loopback = (target: number, published: number) => ({ target, published, hostIp: "127.0.0.1" });
      // No inference here for the web UI to wait on.
      const webUi = omit(specs["web-ui"], "dependsOn");
      const services = [
        ServiceSpec.parse({
          ...omit(specs["mediamtx"], "network"),
          ports: [loopback(8554, port.rtsp), loopback(5545, port.rtspSource), loopback(8889, port.http)],
        }),
        ServiceSpec.parse({
          ...webUi,
          ports: [loopback(80, port.web)],
          volumes: (webUi["volumes"] as Record<string, unknown>[]).map((v) =>
            v["source"] === "/opt/fleet/web" ? { ...v, source: webDir } : v,
          ),
        }),
      ];
      composeFile = join(scratchDir("stand-ins-compose"), "docker-compose.yml");
      writeFileSync(composeFile, renderComposeFile(services, pinned));
      await compose("up", "-d");
      await waitUntil(
        "mediamtx and web-ui healthy",
        async () => (await health("mediamtx")) === "healthy" && (await health("web-ui")) === "healthy",
        90_000,
      );
    },
    { timeout: 12 * 60_000 },
  );

  after(async () => {
    if (composeFile) await compose("down", "-v", "--remove-orphans").catch((e: Error) => console.log(e.message));
    await registry?.stop();
    await removeImages(...Object.values(pinned));
  });

  it("are built from the project's minbase image, say they are stand-ins and stay small", async () => {
    for (const [service, name] of Object.entries(STAND_IN_OF)) {
      const ref = built[name] ?? "";
      const info = await inspectImage(ref);
      const labels = info.Config.Labels ?? {};
      assert.match(labels["org.opencontainers.image.description"] ?? "", /^Stand-in for /);
      assert.match(labels["org.opencontainers.image.base.name"] ?? "", /^jetson-fleet\/debian-minbase:bookworm-[0-9a-f]{12}$/);
      assert.ok(info.Config.Healthcheck?.Test.length, `${name} has a HEALTHCHECK`);
      // Compressed: what a host pulls from the registry.
      const { stdout } = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${pinned[service]}`]);
      const pulled = (JSON.parse(stdout) as { layers: { size: number }[] }).layers.reduce((sum, l) => sum + l.size, 0);
      console.log(`${ref}: ${(info.Size / 1e6).toFixed(0)} MB, ${(pulled / 1e6).toFixed(0)} MB compressed`);
      assert.ok(info.Size < 250e6, `${ref} is ${info.Size} bytes`);
    }
  });

  it("run non-root, the web UI on a read-only root filesystem, both healthy", async () => {
    const inspect = async (service: string) => {
      const { stdout } = await docker("inspect", await containerOf(service));
      return (
        JSON.parse(stdout) as { Config: { User: string }; HostConfig: { ReadonlyRootfs: boolean }; State: { Health: { Status: string } } }[]
      )[0];
    };
    const web = await inspect("web-ui");
    assert.equal(web?.HostConfig.ReadonlyRootfs, true);
    assert.equal(web?.Config.User, "33:33");
    assert.equal(web?.State.Health.Status, "healthy");
    const mediamtx = await inspect("mediamtx");
    assert.equal(mediamtx?.Config.User, "65534:65534");
    assert.equal(mediamtx?.State.Health.Status, "healthy");
  });

  it("web UI: nginx serves the image's status page while the host directory is empty, the host's page once there is one", async () => {
    const url = `http://127.0.0.1:${port.web}/`;
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("server") ?? "", /^nginx/);
    assert.match(await res.text(), /<title>jetson-fleet: host status<\/title>/);
    assert.equal((await fetch(`${url}missing.css`)).status, 404);

    writeFileSync(join(webDir, "index.html"), "<p>the fleet's own page</p>\n", { mode: 0o644 });
    assert.equal(await (await fetch(url)).text(), "<p>the fleet's own page</p>\n");
  });

  it("MediaMTX stand-in: RTSP answers OPTIONS; a path is 404 until published, then DESCRIBE returns its SDP", async () => {
    const readUrl = `rtsp://127.0.0.1:${port.rtsp}/cam`;
    const options = await rtsp(port.rtsp, "OPTIONS", readUrl);
    assert.equal(options.status, "RTSP/1.0 200 OK");
    assert.match(options.headers["public"] ?? "", /DESCRIBE/);
    assert.equal((await rtsp(port.rtsp, "DESCRIBE", readUrl, { Accept: "application/sdp" })).status, "RTSP/1.0 404 Not Found");

    const sdp =
      "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test pattern\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:streamid=0\r\n";
    const publisher = await rtspConnection(port.rtspSource);
    try {
      const announce = await publisher.request(
        "ANNOUNCE",
        `rtsp://127.0.0.1:${port.rtspSource}/cam`,
        { "Content-Type": "application/sdp" },
        sdp,
      );
      assert.equal(announce.status, "RTSP/1.0 200 OK");
      const describe = await rtsp(port.rtsp, "DESCRIBE", readUrl, { Accept: "application/sdp" });
      assert.equal(describe.status, "RTSP/1.0 200 OK");
      assert.equal(describe.headers["content-type"], "application/sdp");
      assert.equal(describe.body, sdp);
      const status = (await (await fetch(`http://127.0.0.1:${port.http}/health`)).json()) as { streams: string[] };
      assert.deepEqual(status.streams, ["/cam"]);
    } finally {
      publisher.close();
    }
  });

  it("MediaMTX stand-in: the WebRTC port answers a page and /health", async () => {
    const page = await fetch(`http://127.0.0.1:${port.http}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /<h1>MediaMTX stand-in<\/h1>/);
    const res = await fetch(`http://127.0.0.1:${port.http}/health`);
    assert.equal(res.status, 200);
    const { status, rtsp: rtspAddress, rtspSource } = (await res.json()) as Record<string, unknown>;
    assert.deepEqual({ status, rtspAddress, rtspSource }, { status: "ok", rtspAddress: "0.0.0.0:8554", rtspSource: "0.0.0.0:5545" });
  });
});
