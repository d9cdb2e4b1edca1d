// The library as another repository gets it: `npm pack` (which builds dist/ through prepack), the
// tarball installed into a fresh project outside this repository, and there a consumer program
// type-checked against the shipped declarations, run under Pulumi mocks, and previewed by the
// real engine (test/engine/library-consumer/ holds the consumer's files).
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { copyFileSync, existsSync, globSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, PulumiCommand, type EngineEvent } from "@pulumi/pulumi/automation/index.js";
import sshpk from "sshpk";
import { stringify } from "yaml";
import { hostCommand, hostStdin, renderHostScript } from "../../components/index.ts";
import { REPO, engineEnv, pulumiBin } from "../support/engine.ts";
import { run } from "../support/services.ts";

const CONSUMER_FILES = join(REPO, "test", "engine", "library-consumer");
const manifest = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
/** What the packed tarball must hold, derived from the sources: nothing missing, nothing extra. */
function expectedTarballFiles(): string[] {
  const sources = globSync("components/**/*.ts", { cwd: REPO });
  const compiled = sources.flatMap((src) => {
    const out = `dist/${src.slice("components/".length, -".ts".length)}`;
    return [src, `${out}.js`, `${out}.js.map`, `${out}.d.ts`, `${out}.d.ts.map`];
  });
  const scripts = globSync("components/**/scripts/*.sh", { cwd: REPO }).map((s) => `dist/${s.slice("components/".length)}`);
  return [...compiled, ...scripts, "CHANGELOG.md", "README.md", "package.json"].sort();
}

describe("the packed library in a consumer project", { timeout: 15 * 60_000 }, () => {
  let root: string;
  let consumer: string;
  let tarball: string;

  before(() => {
    root = mkdtempSync(join(tmpdir(), "jetson-fleet-consumer-"));
    consumer = join(root, "consumer");
    mkdirSync(consumer);
    for (const file of readdirSync(CONSUMER_FILES)) copyFileSync(join(CONSUMER_FILES, file), join(consumer, file));
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("npm pack builds the library and ships exactly dist/, the sources its maps point at and the docs", async () => {
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", root], { cwd: REPO, maxBuffer: 16 << 20 });
    const [info] = JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string; files: { path: string }[] }[];
    assert.ok(info);
    assert.equal(info.filename, `${manifest.name}-${manifest.version}.tgz`);
    assert.deepEqual(info.files.map((f) => f.path).sort(), expectedTarballFiles());
    tarball = join(root, info.filename);
  });

  it("installs from the tarball beside the consumer's own @pulumi/pulumi, sharing one copy", async () => {
    assert.ok(tarball, "the tarball was packed");
    const pkg = {
      name: "fleet-consumer",
      private: true,
      type: "module",
      dependencies: { [manifest.name]: `file:${tarball}`, "@pulumi/pulumi": manifest.dependencies["@pulumi/pulumi"] },
      devDependencies: { typescript: manifest.devDependencies["typescript"], "@types/node": manifest.devDependencies["@types/node"] },
    };
    writeFileSync(join(consumer, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
    // Install scripts stay off as in this repository: the provider packages' scripts download plugins.
    await run("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: consumer });
    const installed = JSON.parse(readFileSync(join(consumer, "node_modules", manifest.name, "package.json"), "utf8")) as {
      version: string;
    };
    assert.equal(installed.version, manifest.version);
    // Two copies of the SDK would mean two runtimes: mocks and config set on one, resources on the other.
    assert.equal(existsSync(join(consumer, "node_modules", manifest.name, "node_modules", "@pulumi", "pulumi")), false);
  });

  it("the consumer's program type-checks against the shipped declarations (libraries included)", async () => {
    const result = await run(join(consumer, "node_modules", ".bin", "tsc"), ["-p", consumer], { cwd: consumer }).catch(
      (e: { stdout: string; code: number }) => e,
    );
    assert.equal("code" in result ? result.code : 0, 0, result.stdout);
  });

  it("runs under mocks: components registered from dist/, host scripts read from the package", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const key = sshpk.parsePrivateKey(privateKey.export({ type: "pkcs8", format: "pem" }), "pem").toString("ssh-private");
    const { stdout } = await run(process.execPath, ["mocks.ts"], { cwd: consumer, env: { ...process.env, CONSUMER_PRIVATE_KEY: key } });
    const { registered, outputs } = JSON.parse(stdout) as {
      registered: { type: string; name: string; inputs: Record<string, unknown> }[];
      outputs: unknown;
    };
    assert.deepEqual(registered.map((r) => `${r.type} ${r.name}`).sort(), [
      ...["jetson-01", "jetson-02"].flatMap((h) =>
        ["configure-docker", "facts", "install-docker", "install-nvidia-toolkit", "verify"].map((s) => `command:remote:Command ${h}-${s}`),
      ),
      "consumer:index:AddressLease jetson-02-address",
      "docker-build:index:Image inference-build",
      "jetson:host:JetsonHost jetson-01",
      "jetson:host:JetsonHost jetson-02",
      "jetson:image:GpuImage inference",
    ]);
    // The host given as outputs (an address from another resource, key and sudo password from
    // `config.requireSecret`): its steps reach that address with that key, kept secret, and the
    // password leads their standard input, a secret too.
    const secret = (value: unknown) => ({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value });
    const outputsHost = registered.find((r) => r.name === "jetson-02-facts");
    assert.deepEqual(
      outputsHost?.inputs["connection"],
      secret({ host: "10.0.0.22", port: 22, user: "ubuntu", privateKey: key, perDialTimeout: 20, dialErrorLimit: 6 }),
    );
    assert.deepEqual(
      outputsHost?.inputs["stdin"],
      secret(
        hostStdin("sudo-password", "consumer-sudo-5d1e", {
          script: renderHostScript("facts"),
          create: { DOCKER_PACKAGE: "docker-ce", EXPECTED_L4T: "36.4.3" },
        }),
      ),
    );
    const facts = registered.find((r) => r.name === "jetson-01-facts");
    assert.equal(facts?.inputs["create"], hostCommand("facts", "create", "sudo"));
    // The script, as read from the installed package, and its parameters travel on stdin (a secret).
    assert.equal(
      (facts?.inputs["stdin"] as { value?: unknown } | undefined)?.value,
      hostStdin("sudo", undefined, { script: renderHostScript("facts"), create: { DOCKER_PACKAGE: "docker-ce", EXPECTED_L4T: "36.4.3" } }),
    );
    const hostFacts = {
      l4tRelease: "36.4.3",
      os: "Ubuntu 22.04.5 LTS",
      arch: "aarch64",
      kernel: "5.15.148-tegra",
      dockerVersion: "",
      nvidiaToolkitVersion: "",
      runtimes: ["runc"],
      defaultRuntime: "runc",
      dockerDataRoot: "",
      freeBytes: 21474836480,
      gpu: "nvidia,p3768-0000+p3767-0000,nvidia,p3767-0000,nvidia,tegra234",
    };
    assert.deepEqual(outputs, {
      ref: `registry.lab:5000/fleet/inference@sha256:${"c".repeat(64)}`,
      dockerHosts: ["ssh://ubuntu@192.168.50.11:22", "ssh://ubuntu@10.0.0.22:22"],
      facts: [hostFacts, hostFacts],
      verification: ["nvidia runtime ok", "nvidia runtime ok"],
    });
  });

  it("pulumi preview of the consumer's program shows exactly the image it would build", async () => {
    const stateDir = join(root, "state");
    mkdirSync(stateDir);
    mkdirSync(join(consumer, "image"));
    writeFileSync(join(consumer, "image", "Dockerfile"), "FROM scratch AS runtime\nCOPY Dockerfile /\n");
    writeFileSync(
      join(consumer, "Pulumi.pr.yaml"),
      stringify({
        config: {
          "buildkit:builder": "consumer-builder",
          "fleet-consumer:registry": { server: "registry.lab:5000" },
          "fleet-consumer:runtime": { docker: { version: "27.5.1" }, nvidiaToolkitVersion: "1.16.2-1" },
          "fleet-consumer:images": [
            { name: "inference", context: "image", target: "runtime", baseImages: { RUNTIME_BASE: "registry.lab:5000/l4t:r36.4.3" } },
          ],
        },
      }),
    );
    const pulumiCommand = await PulumiCommand.get({ root: dirname(pulumiBin()), skipVersionCheck: false });
    // No builder has to exist: without buildOnPreview the provider builds nothing on preview.
    const stack = await LocalWorkspace.createStack(
      { stackName: "pr", workDir: consumer },
      { pulumiCommand, envVars: { ...engineEnv(stateDir), BUILDX_CONFIG: join(root, "buildx") } },
    );
    try {
      const events: EngineEvent[] = [];
      const result = await stack.preview({ color: "never", onEvent: (e) => events.push(e) });
      assert.deepEqual(result.changeSummary, { create: 3 }); // the default provider is not counted
      const steps = events.flatMap((e) => (e.resourcePreEvent ? [e.resourcePreEvent.metadata] : []));
      assert.deepEqual(steps.map((s) => `${s.op} ${s.type} ${s.urn.split("::").pop() ?? ""}`).sort(), [
        "create docker-build:index:Image inference-build",
        "create jetson:image:GpuImage inference",
        `create pulumi:providers:docker-build default_${(manifest.dependencies["@pulumi/docker-build"] ?? "").replaceAll(".", "_")}`,
        "create pulumi:pulumi:Stack fleet-consumer-pr",
      ]);
      const image = steps.find((s) => s.type === "docker-build:index:Image")?.new?.inputs ?? {};
      assert.deepEqual(
        {
          tags: image["tags"],
          platforms: image["platforms"],
          target: image["target"],
          buildArgs: image["buildArgs"],
          context: image["context"],
          dockerfile: image["dockerfile"],
          push: image["push"],
          registryExportPushes: (image["exports"] as { registry?: { push?: boolean } }[] | undefined)?.map((e) => e.registry?.push),
          buildOnPreview: image["buildOnPreview"],
          builder: image["builder"],
        },
        {
          tags: ["registry.lab:5000/inference:1.0.0"],
          platforms: ["linux/arm64"],
          target: "runtime",
          buildArgs: { RUNTIME_BASE: "registry.lab:5000/l4t:r36.4.3" },
          context: { location: "image" },
          // The provider's check fills in the unset inline Dockerfile.
          dockerfile: { inline: "", location: "image/Dockerfile" },
          // Pushed through a registry export (see GpuImage), so previews can build when asked.
          push: false,
          registryExportPushes: [true],
          buildOnPreview: false,
          builder: { name: "consumer-builder" },
        },
      );
    } finally {
      await stack.workspace.removeStack("pr", { force: true });
    }
  });
});
