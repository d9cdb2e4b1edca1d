// Models under Pulumi mocks: the artifact step where Pulumi runs, each host's fetch and engine
// build steps with their exact parameters and order (batch by batch with the rollout), and the
// engines mounted read-only in both per-host modes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import {
  ComposeDeployment,
  ContainerDeployment,
  ModelArtifact,
  ModelSpec,
  RECONNECT_CHECK,
  SERVICE_TYPE,
  ServiceSpec,
  contentHash,
  engineKey,
  hostCommand,
  modelLocation,
  renderModelScript,
  stepTrigger,
  type ServiceHost,
} from "../../../components/index.ts";
import { clientKey } from "../../support/fixtures.ts";
import { readHostStdin } from "../../support/host-stdin.ts";
import { ResourceRecorder, unwrap, useMockStack } from "../../support/mocks.ts";

const SHA = "ba1df474b259cda2229b21f19233b9b16db6b808254fb4c45b40cd50e837a3c6";
const MANIFEST = `sha256:${"7".repeat(64)}`;
const INFERENCE = `registry.lab:5000/fleet/inference@sha256:${"1".repeat(64)}`;
const MEDIAMTX = `bluenviron/mediamtx@sha256:${"2".repeat(64)}`;
const GPU = "nvidia,p3768-0000+p3767-0000,nvidia,p3767-0000,nvidia,tegra234";
const DEVICE = { l4tRelease: "36.4.3", gpu: GPU };
const ARGS = ["--fp16", "--memPoolSize=workspace:1024M", "--skipInference"];

const MODEL = ModelSpec.parse({
  name: "detector",
  source: { file: "models/detector.onnx" },
  sha256: SHA,
  engine: { workspace: "1g", keep: 3 },
});
const SERVICES = [
  ServiceSpec.parse({
    name: "inference",
    build: "inference",
    runtime: "nvidia",
    network: "host",
    ports: [{ target: 8080 }],
    healthcheck: { test: ["CMD", "python3", "/opt/inference/app/healthcheck.py"] },
    volumes: [{ source: "/opt/fleet/videos", target: "/videos", readOnly: true }],
    models: [{ name: "detector", path: "/models/model.engine" }],
  }),
  ServiceSpec.parse({ name: "mediamtx", image: "bluenviron/mediamtx:1.9.3", network: "host", ports: [{ target: 8554 }] }),
];
const IMAGES = { inference: INFERENCE, mediamtx: MEDIAMTX };
const KEY = engineKey({ modelSha256: SHA, image: INFERENCE, l4tRelease: "36.4.3", gpu: GPU, args: ARGS });
const ENGINE_DIR = `/var/lib/jetson-fleet/engines/jetson-fleet-unit/inference/detector/${KEY}`;

function hosts(n: number): ServiceHost[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `orin-0${i + 1}`,
    connection: pulumi.secret({ host: `192.168.50.1${i + 1}`, port: 22, user: "fleet", privateKey: clientKey.privateKey }),
    elevation: "sudo-password" as const,
    sudoPassword: pulumi.secret("hunter2"),
    dockerHost: `ssh://fleet@192.168.50.1${i + 1}:22`,
    device: DEVICE,
  }));
}

/** Records each resource's dependsOn (mocks do not see options), by name. */
function dependencies(): { deps: Map<string, pulumi.Resource[]>; transformations: pulumi.ResourceTransformation[] } {
  const deps = new Map<string, pulumi.Resource[]>();
  // The components give dependsOn as a list of resources.
  const dependsOn = (o: pulumi.ResourceOptions) => (o.dependsOn === undefined ? [] : (o.dependsOn as pulumi.Resource[]));
  return { deps, transformations: [(a) => (deps.set(a.name, dependsOn(a.opts)), undefined)] };
}
async function dependencyNames(deps: Map<string, pulumi.Resource[]>, name: string): Promise<string[]> {
  const list = deps.get(name) ?? assert.fail(`no resource ${name}`);
  const urns = await Promise.all(list.map((r) => unwrap(r.urn)));
  return urns.map((u) => u.split("::").pop() ?? "").sort();
}
const settle = () => new Promise((r) => setTimeout(r, 200));
/** The artifact step reports its manifest, as model-artifact.sh does. */
const recorder = () =>
  new ResourceRecorder((a) =>
    a.type === "command:local:Command"
      ? { stdout: `pushed model=detector repository=models/detector bytes=262144 manifest=${MANIFEST}` }
      : {},
  );

async function composeWithModels(n: number) {
  const rec = useMockStack({ stack: "unit", config: {} }, recorder());
  const { deps, transformations } = dependencies();
  const artifact = new ModelArtifact(
    "detector",
    { model: MODEL, registry: "registry.lab:5000", projectDir: "/repo", configKey: "models[0]" },
    { transformations },
  );
  const d = new ComposeDeployment(
    "services",
    {
      hosts: hosts(n),
      services: SERVICES,
      images: IMAGES,
      models: {
        models: [MODEL],
        sources: { detector: { location: artifact.location, ready: artifact.step } },
        credentials: { username: "fleet", password: pulumi.secret("s3cret-token") },
      },
    },
    { transformations },
  );
  await settle();
  return { rec, deps, d, artifact };
}
const stdinOf = (rec: ResourceRecorder, name: string) => {
  const step = rec.ofType("command:remote:Command").find((c) => c.name === name) ?? assert.fail(`no step ${name}`);
  return { step, read: readHostStdin((step.inputs["stdin"] as { value: string }).value, "sudo-password") };
};

describe("ModelArtifact: a file model pushed to the stack's registry where Pulumi runs", () => {
  it("runs model-artifact.sh with the model's content, repository and tag; re-run only for a new content or repository", async () => {
    const { rec, artifact } = await composeWithModels(1);
    const [push] = rec.ofType("command:local:Command");
    assert.equal(push?.name, "detector-push");
    assert.equal(push?.inputs["create"], "bash -s");
    assert.equal(push?.inputs["stdin"], renderModelScript("model-artifact"));
    // A new path or new credentials: the previous report again, nothing pushed.
    assert.equal(push?.inputs["update"], `printf '%s\n' "$PULUMI_COMMAND_STDOUT"`);
    assert.equal(push?.inputs["addPreviousOutputInEnv"], true);
    assert.deepEqual(push?.inputs["environment"], {
      ACTION: "push",
      CONFIG_KEY: "models[0].source",
      FILE: "/repo/models/detector.onnx",
      MODEL: "detector",
      REGISTRY_URL: "https://registry.lab:5000",
      REPOSITORY: "models/detector",
      SHA256: SHA,
      TAG: "detector-ba1df474b259",
    });
    assert.deepEqual(push?.inputs["triggers"], [
      contentHash(renderModelScript("model-artifact"), SHA, "https://registry.lab:5000", "models/detector", "push"),
    ]);
    assert.equal(await unwrap(artifact.artifact), `registry.lab:5000/models/detector@${MANIFEST}`);
  });

  it("checks an artifact source instead of pushing, with the registry's credentials as secrets", async () => {
    const rec = useMockStack({ stack: "unit", config: {} }, recorder());
    const model = ModelSpec.parse({ name: "detector", source: { artifact: `registry.lab:5000/ml/detector@${MANIFEST}` }, sha256: SHA });
    new ModelArtifact("detector", { model, registry: "registry.lab:5000", credentials: { username: "fleet", password: "s3cret-token" } });
    await settle();
    const [verify] = rec.ofType("command:local:Command");
    assert.equal(verify?.name, "detector-verify");
    // The whole environment is a secret in the state: it holds the password.
    const env = verify?.inputs["environment"] as Record<string, unknown>;
    assert.equal(env[pulumi.runtime.specialSigKey], pulumi.runtime.specialSecretSig);
    assert.deepEqual(env["value"], {
      ACTION: "verify",
      CONFIG_KEY: "models[detector].source",
      MANIFEST_DIGEST: MANIFEST,
      MODEL: "detector",
      REGISTRY_URL: "https://registry.lab:5000",
      REPOSITORY: "ml/detector",
      SHA256: SHA,
      REGISTRY_USERNAME: "fleet",
      REGISTRY_PASSWORD: "s3cret-token",
    });
  });
});

describe("HostModels in the compose mode: fetch, build, then the services, batch by batch", () => {
  it("fetches each model on each host from the registry, the credentials on standard input", async () => {
    const { rec } = await composeWithModels(2);
    const { step, read } = stdinOf(rec, "services-orin-01-models-detector");
    assert.equal(step.inputs["create"], hostCommand("model-fetch", "create", "sudo-password"));
    assert.equal(step.inputs["update"], RECONNECT_CHECK);
    assert.equal(step.inputs["delete"], hostCommand("model-fetch", "delete", "sudo-password"));
    const params = {
      PROJECT: "jetson-fleet-unit",
      HOST_NAME: "orin-01",
      MODEL: "detector",
      SHA256: SHA,
      REGISTRY_URL: "https://registry.lab:5000",
      REPOSITORY: "models/detector",
    };
    // The password as the step's data: never a parameter, which would be in the script's environment.
    assert.deepEqual(read.create, { ...params, REGISTRY_USERNAME: "fleet" });
    assert.equal(read.data, "s3cret-token\n");
    assert.deepEqual(read.delete, { ...params, ACTION: "delete" });
    assert.equal(read.script, renderModelScript("model-fetch"));
    // What the host gets, not how: a new password or key fetches nothing.
    assert.deepEqual(step.inputs["triggers"], [contentHash(renderModelScript("model-fetch"), ...Object.values(params))]);
  });

  it("builds the engine in the service's pinned image with its key, settings and the host's L4T release and GPU", async () => {
    const { rec } = await composeWithModels(1);
    const { step, read } = stdinOf(rec, "services-orin-01-models-inference-detector");
    assert.equal(step.inputs["create"], hostCommand("engine-build", "create", "sudo-password"));
    const params = {
      PROJECT: "jetson-fleet-unit",
      HOST_NAME: "orin-01",
      SERVICE: "inference",
      MODEL: "detector",
      SHA256: SHA,
      IMAGE: INFERENCE,
      KEY,
      BUILDER: "/usr/src/tensorrt/bin/trtexec",
      BUILD_ARGS: ARGS.join("\n"),
      TIMEOUT: "1800",
      KEEP: "3",
      RUNTIME: "nvidia",
      L4T: "36.4.3",
      GPU,
    };
    assert.deepEqual(read.create, params);
    assert.deepEqual(read.delete, { ...params, ACTION: "delete" });
    assert.deepEqual(step.inputs["triggers"], [
      stepTrigger({ script: renderModelScript("engine-build"), create: params, delete: { ...params, ACTION: "delete" } }),
    ]);
    // No engine for a service without models.
    assert.deepEqual(
      rec
        .ofType("command:remote:Command")
        .map((c) => c.name)
        .filter((n) => n.includes("-models-"))
        .sort(),
      ["services-orin-01-models-detector", "services-orin-01-models-inference-detector"],
    );
  });

  it("mounts the engine and its record read-only in the compose file and the Service's inputs", async () => {
    const { rec, d } = await composeWithModels(1);
    const file = await unwrap(d.projects["orin-01"]?.composeFile ?? "");
    assert.match(
      file,
      new RegExp(`- type: bind\\n\\s+source: ${ENGINE_DIR}/model.engine\\n\\s+target: /models/model.engine\\n\\s+read_only: true`),
    );
    assert.match(file, new RegExp(`source: ${ENGINE_DIR}/engine.json\\n\\s+target: /models/model.engine.json\\n\\s+read_only: true`));
    const inference = rec.ofType(SERVICE_TYPE).find((s) => s.name === "services-orin-01-inference");
    const volumes = (inference?.inputs["service"] as { volumes: { source?: string; target: string; readOnly: boolean }[] }).volumes;
    assert.deepEqual(
      volumes.map((v) => [v.source, v.target, v.readOnly]),
      [
        ["/opt/fleet/videos", "/videos", true],
        [`${ENGINE_DIR}/model.engine`, "/models/model.engine", true],
        [`${ENGINE_DIR}/engine.json`, "/models/model.engine.json", true],
      ],
    );
  });

  it("orders each host: fetch after the bootstrap and the push; build after the fetch and the previous batch; apply after the build", async () => {
    const { deps } = await composeWithModels(2);
    assert.deepEqual(await dependencyNames(deps, "services-orin-02-models-detector"), ["detector-push"]);
    assert.deepEqual(await dependencyNames(deps, "services-orin-01-models-inference-detector"), ["services-orin-01-models-detector"]);
    assert.deepEqual(await dependencyNames(deps, "services-orin-02-models-inference-detector"), [
      "services-orin-01-apply",
      "services-orin-02-models-detector",
    ]);
    assert.deepEqual(await dependencyNames(deps, "services-orin-02-apply"), [
      "services-orin-01-apply",
      "services-orin-02-models-inference-detector",
    ]);
  });
});

describe("HostModels in the containers mode", () => {
  it("mounts the engine read-only in the container, which waits for the build", async () => {
    const rec = useMockStack({ stack: "unit", config: {} }, recorder());
    const { deps, transformations } = dependencies();
    const location = modelLocation(MODEL, "registry.lab:5000");
    new ContainerDeployment(
      "services",
      {
        hosts: hosts(1),
        services: SERVICES,
        images: IMAGES,
        models: { models: [MODEL], sources: { detector: { location } } },
        sshAgent: () => "/unused",
      },
      { transformations },
    );
    await settle();
    const container = rec.ofType("docker:index/container:Container").find((c) => c.name === "services-orin-01-inference");
    assert.deepEqual(
      (container?.inputs["mounts"] as { source?: string; target: string; readOnly?: boolean }[]).map((m) => [
        m.source,
        m.target,
        m.readOnly,
      ]),
      [
        ["/opt/fleet/videos", "/videos", true],
        [`${ENGINE_DIR}/model.engine`, "/models/model.engine", true],
        [`${ENGINE_DIR}/engine.json`, "/models/model.engine.json", true],
      ],
    );
    assert.ok((await dependencyNames(deps, "services-orin-01-inference-image")).includes("services-orin-01-models-inference-detector"));
    // Anonymous: no credentials travel to the host.
    const { read } = stdinOf(rec, "services-orin-01-models-detector");
    assert.equal(read.create["REGISTRY_USERNAME"], undefined);
    assert.equal(read.data, "");
  });
});
