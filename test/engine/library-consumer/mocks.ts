// The consumer's unit test: its program's components under Pulumi mocks, with jetson-fleet
// imported after the mocks are installed. Prints what was registered as JSON for the engine test.
import * as pulumi from "@pulumi/pulumi";
import type { GpuImageArgs, HostFacts } from "jetson-fleet";

// The package's declarations type the arguments: a number is not a repository.
// @ts-expect-error -- fails to compile (unused directive) if the types resolved to `any`.
export const mistyped: GpuImageArgs = { context: "image", repository: 42, builderName: "jetson-fleet" };

const DIGEST = `sha256:${"c".repeat(64)}`;
const FACTS: HostFacts = {
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

interface Registered {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}
const registered: Registered[] = [];

await pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
      const outputs: Record<string, unknown> = {};
      if (args.type === "docker-build:index:Image") outputs["digest"] = DIGEST;
      if (args.type === "consumer:index:AddressLease") outputs["address"] = "10.0.0.22";
      if (args.type === "command:remote:Command")
        outputs["stdout"] = args.name.endsWith("-facts") ? JSON.stringify(FACTS) : "nvidia runtime ok\n";
      return { id: `${args.name}-id`, state: { ...args.inputs, ...outputs } };
    },
    call: (args) => args.inputs as Record<string, unknown>,
  },
  "fleet-consumer",
  "mocks",
  false,
);

// The consumer's own secrets, as `pulumi config set --secret` stores them.
pulumi.runtime.setAllConfig(
  { "fleet-consumer:sshKey": process.env["CONSUMER_PRIVATE_KEY"] ?? "", "fleet-consumer:sudoPassword": "consumer-sudo-5d1e" },
  ["fleet-consumer:sshKey", "fleet-consumer:sudoPassword"],
);

const { GpuImage, JetsonHost, parseStackConfig } = await import("jetson-fleet");

/** Another resource of the consumer's: the host's address is its output, known only once it exists. */
class AddressLease extends pulumi.CustomResource {
  declare readonly address: pulumi.Output<string>;
  constructor(name: string) {
    super("consumer:index:AddressLease", name, { address: undefined });
  }
}

const config = parseStackConfig({
  project: "fleet-consumer",
  stack: "mocks",
  values: {
    "fleet-consumer:hosts": JSON.stringify([
      {
        name: "jetson-01",
        address: "192.168.50.11",
        user: "ubuntu",
        privateKey: process.env["CONSUMER_PRIVATE_KEY"],
        l4tRelease: "36.4.3",
      },
    ]),
    "fleet-consumer:runtime": JSON.stringify({ docker: { version: "27.5.1" }, nvidiaToolkitVersion: "1.16.2-1" }),
  },
  secretPaths: new Set(["hosts[0].privateKey"]),
});

const hosts = config.hosts.map((host) => new JetsonHost(host.name, { host, runtime: config.runtime }));
// A host held as outputs: no HostSpec.parse, nothing unwrapped.
const secrets = new pulumi.Config();
hosts.push(
  new JetsonHost("jetson-02", {
    host: {
      name: "jetson-02",
      address: new AddressLease("jetson-02-address").address,
      user: "ubuntu",
      privateKey: secrets.requireSecret("sshKey"),
      sudoPassword: secrets.requireSecret("sudoPassword"),
      l4tRelease: "36.4.3",
    },
    runtime: config.runtime,
  }),
);
const image = new GpuImage("inference", { context: "image", repository: "registry.lab:5000/fleet/inference", builderName: "jetson-fleet" });

const outputs = await new Promise<unknown>((resolve) =>
  pulumi
    .output({
      ref: image.ref,
      dockerHosts: hosts.map((h) => h.dockerHost),
      facts: hosts.map((h) => h.facts),
      verification: hosts.map((h) => h.verification),
    })
    .apply(resolve),
);
process.stdout.write(JSON.stringify({ registered, outputs }));
