// Tags resolve to the digest a real registry serves (distribution, on loopback), with and without
// basic auth; a missing tag or missing credentials fail with a clear message; a registry that
// accepts connections and never answers fails within the resolver's timeout, named.
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { type Server, type Socket, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { REGISTRY_TIMEOUT_SECONDS, registryResolver } from "../../../components/index.ts";
import { IMAGES_DIR, removeImages } from "../../support/images.ts";
import { docker, freePort, run, startAuthRegistry, startRegistry, type AuthRegistry, type Registry } from "../../support/services.ts";

const tags: string[] = [];
async function push(server: string, version: string): Promise<string> {
  const tag = `${server}/web-probe:${version}`;
  await run(join(IMAGES_DIR, "web-probe", "build.sh"), [tag, version]);
  tags.push(tag);
  await docker("push", "-q", tag);
  // The engine lists the image's digest in every registry it was pushed to: take this one's.
  const digests = (await docker("image", "inspect", "-f", "{{json .RepoDigests}}", tag)).stdout;
  return (JSON.parse(digests) as string[]).find((d) => d.startsWith(`${server}/web-probe@`)) ?? assert.fail(digests);
}

describe("registryResolver against a real registry", { timeout: 5 * 60_000 }, () => {
  let plain: Registry;
  let auth: AuthRegistry;
  before(async () => {
    plain = await startRegistry();
    auth = await startAuthRegistry("fleet", "s3cret");
  });
  after(async () => {
    await plain?.stop();
    await auth?.stop();
    await removeImages(...tags);
  });

  it("resolves a tag to the pushed digest; the same digest under another tag pins identically", async () => {
    const pinned = await push(plain.server, "1.0.0");
    await docker("tag", `${plain.server}/web-probe:1.0.0`, `${plain.server}/web-probe:stable`);
    tags.push(`${plain.server}/web-probe:stable`);
    await docker("push", "-q", `${plain.server}/web-probe:stable`);
    const resolve = registryResolver();
    assert.equal(await resolve(`${plain.server}/web-probe:1.0.0`), pinned);
    assert.equal(await resolve(`${plain.server}/web-probe:stable`), pinned);
    await assert.rejects(resolve(`${plain.server}/web-probe:9.9.9`), {
      name: "ServiceArgsError",
      message: `cannot resolve ${plain.server}/web-probe:9.9.9 to a digest: the registry answered HTTP 404; expected the tag to exist`,
    });
  });

  it("names an unreachable registry in one sentence", async () => {
    const port = await freePort();
    const ref = `127.0.0.1:${port}/web-probe:1.0.0`;
    await assert.rejects(registryResolver()(ref), (err: Error) => {
      assert.match(
        err.message,
        new RegExp(
          `^cannot resolve 127\\.0\\.0\\.1:${port}/web-probe:1\\.0\\.0 to a digest: its registry 127\\.0\\.0\\.1:${port} cannot be reached \\(.*ECONNREFUSED.*\\); expected a registry this machine reaches, or the image pinned by digest$`,
        ),
      );
      return true;
    });
  });

  it("answers a registry's basic-auth challenge with the stack's credentials", async () => {
    await docker("login", "-u", auth.username, "-p", auth.password, auth.server);
    try {
      const pinned = await push(auth.server, "2.0.0");
      const ref = `${auth.server}/web-probe:2.0.0`;
      assert.equal(await registryResolver({ [auth.server]: { username: "fleet", password: "s3cret" } })(ref), pinned);
      await assert.rejects(registryResolver()(ref), {
        message: `cannot resolve ${ref} to a digest: ${auth.server} asks for credentials (HTTP 401); expected it as registry.server with registry.username and registry.password`,
      });
      await assert.rejects(registryResolver({ [auth.server]: { username: "fleet", password: "wrong" } })(ref), {
        message: `cannot resolve ${ref} to a digest: ${auth.server} refused the stack's credentials (HTTP 401); expected registry.username and registry.password that may pull it`,
      });
    } finally {
      await docker("logout", auth.server);
    }
  });
});

/** A TCP server on loopback that accepts every connection and never sends a byte. */
async function silentServer(): Promise<{ port: number; accepted: () => number; stop: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return {
    port: address.port,
    accepted: () => accepted,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Runs `work`, returning how long it took to settle (ms) and what it rejected with. */
async function timed(work: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  try {
    await work;
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
  return assert.fail("expected the resolution to fail");
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// No Docker needed: the servers here are plain sockets.
describe("registryResolver against a registry that hangs", { timeout: 60_000 }, () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;
  before(async () => {
    silent = await silentServer();
  });
  after(async () => {
    await silent?.stop();
  });

  it("has a default timeout that a stack can live with", () => {
    assert.equal(REGISTRY_TIMEOUT_SECONDS, 30);
  });

  it("fails within the timeout, naming the registry and the config key", async () => {
    const ref = `127.0.0.1:${silent.port}/web-probe:1.0.0`;
    const before = silent.accepted();
    const { ms, error } = await timed(registryResolver({}, { timeoutSeconds: 1 })(ref, "services[1].image"));
    assert.ok(silent.accepted() > before, "the resolver connected to the silent registry");
    assert.ok(ms >= 900 && ms < 5_000, `settled after ${Math.round(ms)}ms; expected about 1s`);
    assert.ok(error instanceof Error);
    assert.equal(error.name, "ServiceArgsError");
    assert.equal(
      error.message,
      `cannot resolve ${ref} (services[1].image) to a digest: its registry 127.0.0.1:${silent.port} did not answer within 1s; expected a registry that answers, or the image pinned by digest (repository@sha256:<digest>)`,
    );
  });

  it("names registry.server when the silent registry is the stack's own", async () => {
    const server = `127.0.0.1:${silent.port}`;
    const ref = `${server}/fleet/inference:2.0.0`;
    const { error } = await timed(
      registryResolver({ [server]: { username: "fleet", password: "s3cret" } }, { timeoutSeconds: 1 })(ref, "services[0].image"),
    );
    assert.ok(error instanceof Error);
    assert.equal(
      error.message,
      `cannot resolve ${ref} (services[0].image) to a digest: its registry ${server} (registry.server) did not answer within 1s; expected a registry that answers, or the image pinned by digest (repository@sha256:<digest>)`,
    );
    assert.doesNotMatch(error.message, /s3cret/);
  });

  it("times the token request too: a registry whose token service hangs fails within the same deadline", async () => {
    // The registry answers its challenge at once and sends the client to a token realm that never answers.
    const registry = createHttpServer((_req, res) => {
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://127.0.0.1:${silent.port}/token",service="registry"` });
      res.end();
    });
    await new Promise<void>((resolve) => registry.listen(0, "127.0.0.1", resolve));
    const address = registry.address();
    assert.ok(address !== null && typeof address === "object");
    try {
      const ref = `127.0.0.1:${address.port}/web-probe:1.0.0`;
      const before = silent.accepted();
      const { ms, error } = await timed(registryResolver({}, { timeoutSeconds: 1 })(ref));
      assert.ok(silent.accepted() > before, "the resolver asked the silent token service");
      assert.ok(ms >= 900 && ms < 5_000, `settled after ${Math.round(ms)}ms; expected about 1s`);
      assert.ok(error instanceof Error);
      assert.match(
        error.message,
        new RegExp(
          `^cannot resolve ${escape(ref)} to a digest: its registry ${escape(`127.0.0.1:${address.port}`)} did not answer within 1s;`,
        ),
      );
    } finally {
      registry.closeAllConnections();
      await new Promise((resolve) => registry.close(resolve));
    }
  });
});
