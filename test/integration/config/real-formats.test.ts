// The config's format checks agree with the real tools that consume the values: OpenSSH for host
// and client keys, the Docker engine for image references, a registry for pushed digests.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { hostKeyProblem, imageReferenceProblem, parseImage, privateKeyProblem, unpinnedImageProblem } from "../../../components/index.ts";
import { clientKey } from "../../support/fixtures.ts";
import { DOCKER, docker, run, scratchDir, startRegistry, startSshd, type Registry, type Sshd } from "../../support/services.ts";

describe("host keys from a real sshd", () => {
  let sshd: Sshd;
  before(async () => (sshd = await startSshd(clientKey.publicKey)));
  after(() => sshd.stop());

  const keyscanTypes = { "ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa", "ssh-rsa": "rsa" } as const;
  for (const [type, scanType] of Object.entries(keyscanTypes) as [keyof typeof keyscanTypes, string][]) {
    it(`accepts what ssh-keyscan prints for ${type}`, async () => {
      const { stdout } = await run("ssh-keyscan", ["-p", String(sshd.port), "-t", scanType, "127.0.0.1"]);
      const line = stdout.trim().split(" ").slice(1).join(" ");
      assert.equal(line, sshd.hostKeys[type]);
      assert.equal(hostKeyProblem(line), undefined);
    });
  }

  it("accepts the key our fixture uses for a real login", async () => {
    const dir = scratchDir("key");
    const keyFile = join(dir, "id");
    writeFileSync(keyFile, clientKey.privateKey, { mode: 0o600 });
    const knownHosts = join(dir, "known_hosts");
    writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostKeys["ssh-ed25519"]}\n`);
    const { stdout } = await run("ssh", [
      "-i",
      keyFile,
      "-p",
      String(sshd.port),
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "root@127.0.0.1",
      "echo",
      "logged-in",
    ]);
    assert.equal(stdout.trim(), "logged-in");
  });
});

describe("private keys from ssh-keygen", () => {
  for (const type of ["ed25519", "ecdsa", "rsa"]) {
    it(`accepts an unencrypted ${type} key`, async () => {
      const file = join(scratchDir("key"), "id");
      await run("ssh-keygen", ["-q", "-t", type, "-N", "", "-f", file]);
      assert.equal(privateKeyProblem(readFileSync(file, "utf8")), undefined);
    });
  }

  it("explains that a passphrase-protected key cannot be used", async () => {
    const file = join(scratchDir("key"), "id");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "correct horse", "-f", file]);
    assert.equal(
      privateKeyProblem(readFileSync(file, "utf8")),
      "is encrypted with a passphrase; expected an unencrypted key (ssh-keygen -p -N '' -f KEYFILE removes the passphrase from a copy)",
    );
  });
});

describe("image references against the Docker engine", () => {
  const image = "jetson-fleet-test/empty:formats";
  before(async () => {
    // An empty image to tag: nothing has to be pulled.
    await run("sh", ["-c", `tar -cf - -T /dev/null | ${DOCKER} import - ${image}`]);
  });
  after(async () => {
    await docker("image", "rm", "-f", image);
  });

  const refs = [
    "nginx",
    "nginx:1.27",
    "registry.lab:5000/fleet/inference:0.1.0",
    "127.0.0.1:5000/inference:dev",
    "Upper/case:1",
    "repo:bad tag",
    "repo:-leadingdash",
    "a/b/c/d:1.0",
    "registry.lab:5000/:1",
  ];
  for (const ref of refs) {
    it(`agrees with docker tag on ${JSON.stringify(ref)}`, async () => {
      const accepted = await docker("tag", image, ref).then(
        async () => {
          await docker("image", "rm", ref);
          return true;
        },
        () => false,
      );
      assert.equal(imageReferenceProblem(ref) === undefined, accepted);
    });
  }
});

describe("digests from a real registry", () => {
  let registry: Registry;
  const image = "jetson-fleet-test/payload:digest";
  before(async () => {
    registry = await startRegistry();
    const dir = scratchDir("payload");
    writeFileSync(join(dir, "payload"), "payload\n");
    await run("sh", ["-c", `tar -C ${dir} -cf - payload | ${DOCKER} import - ${image}`]);
  });
  after(async () => {
    await docker("image", "rm", "-f", image, `${registry.server}/payload:1.0`);
    await registry.stop();
  });

  it("pins by the digest the registry reports", async () => {
    const ref = `${registry.server}/payload:1.0`;
    await docker("tag", image, ref);
    await docker("push", ref);
    const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${ref}`]);
    const digest = (JSON.parse(stdout) as { Digest: string }).Digest;
    const pinned = `${registry.server}/payload@${digest}`;
    assert.deepEqual(parseImage(pinned), { domain: registry.server, repository: "payload", digest });
    assert.equal(unpinnedImageProblem(pinned), undefined);
    // The registry serves the manifest by that digest.
    const res = await fetch(`http://${registry.server}/v2/payload/manifests/${digest}`, {
      headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    assert.equal(res.status, 200);
  });
});
