// The unit tier's Pulumi harness: mocks that record every resource, and a runner that loads the
// program (or any module) against a given stack config, the way the engine would.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import { PROJECT, rawValues } from "./fixtures.ts";

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}

/** Records every registered resource; outputs echo inputs plus what `outputsFor` adds. */
export class ResourceRecorder implements pulumi.runtime.Mocks {
  readonly resources: RecordedResource[] = [];
  private readonly outputsFor: (args: pulumi.runtime.MockResourceArgs) => Record<string, unknown>;
  constructor(outputsFor: (args: pulumi.runtime.MockResourceArgs) => Record<string, unknown> = () => ({})) {
    this.outputsFor = outputsFor;
  }

  newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
    this.resources.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
    return { id: `${args.name}-id`, state: { ...args.inputs, ...this.outputsFor(args) } };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    return args.inputs as Record<string, unknown>;
  }

  ofType(type: string): RecordedResource[] {
    return this.resources.filter((r) => r.type === type);
  }
}

/** Resolves an Output (or plain value) to its value; unknowns resolve to undefined. */
/** Lets registrations that outputs do not wait for (children of components) reach the mocks. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function unwrap<T>(value: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(value).apply((v) => resolve(v as T)));
}

export interface MockStack {
  readonly stack: string;
  /** The project's config without the `<project>:` prefix. */
  readonly config: Record<string, unknown>;
  /** Paths stored encrypted (written as `secure:` into a stack file the loader reads). */
  readonly secretPaths?: Iterable<string>;
  readonly preview?: boolean;
}

/**
 * Installs mocks and config for `stack`, makes a project directory whose stack file marks the
 * secret paths, and makes it the working directory (as `pulumi up` does for the program).
 */
/** The project directories `useMockStack` made, removed when the test process exits (one listener for all). */
const projectDirs: string[] = [];
process.once("exit", () => projectDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

export function useMockStack(spec: MockStack, recorder = new ResourceRecorder()): ResourceRecorder {
  pulumi.runtime.setMocks(recorder, PROJECT, spec.stack, spec.preview ?? false);
  pulumi.runtime.setAllConfig(rawValues(spec.config), []);
  const dir = mkdtempSync(join(tmpdir(), "jetson-fleet-unit-"));
  projectDirs.push(dir);
  const config: Record<string, unknown> = {};
  for (const path of spec.secretPaths ?? []) config[`${PROJECT}:${path}`] = { secure: "v1:mock" };
  writeFileSync(join(dir, `Pulumi.${spec.stack}.yaml`), stringify({ config: securePathsToTree(config) }));
  process.chdir(dir);
  return recorder;
}

// `hosts[0].privateKey` → nested YAML the way `pulumi config set --path` writes it.
function securePathsToTree(flat: Record<string, unknown>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const [ns, path] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    const parts = path.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== "");
    const top = `${ns}:${parts.shift() ?? ""}`;
    if (parts.length === 0) {
      root[top] = value;
      continue;
    }
    let node = (root[top] ??= /^\d+$/.test(parts[0] ?? "") ? [] : {}) as Record<string, unknown>;
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      const nextIsIndex = /^\d+$/.test(parts[i + 1] ?? "");
      node = (last ? (node[part] = value) : (node[part] ??= nextIsIndex ? [] : {})) as Record<string, unknown>;
    });
  }
  return root;
}

let loads = 0;
/** Imports a module afresh (a new instance per call), as the engine runs the program once per update. */
export async function importFresh<T>(path: string): Promise<T> {
  loads += 1;
  return (await import(`${pathToFileURL(path).href}?load=${loads}`)) as T;
}
