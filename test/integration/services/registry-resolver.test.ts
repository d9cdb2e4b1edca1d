// Tags resolve to the digest a real registry serves (distribution, on loopback), with and without
// basic auth; a missing tag or missing credentials fail with a clear message.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { registryResolver } from "../../../components/index.ts";
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
