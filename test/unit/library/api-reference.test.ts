// The generated API reference (typedoc, typedoc.json): it builds from the public API without a
// warning, and every component argument in it is documented, optional ones with their @default and
// required ones with an @example (or the @default the stack-config schema applies). `npm run docs` writes the same reference into docs/api/.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run } from "../../support/services.ts";

const REPO = join(import.meta.dirname, "..", "..", "..");

/** The parts of typedoc's JSON output this test reads. */
interface Reflection {
  readonly id: number;
  readonly name: string;
  readonly kind: number;
  readonly flags: { readonly isOptional?: boolean };
  readonly comment?: { readonly summary: readonly { readonly text: string }[]; readonly blockTags?: readonly { readonly tag: string }[] };
  readonly children?: readonly Reflection[];
  readonly type?: TypeNode;
}
interface TypeNode {
  readonly type: string;
  readonly target?: unknown;
  readonly types?: readonly TypeNode[];
  readonly elementType?: TypeNode;
  readonly typeArguments?: readonly TypeNode[];
  readonly declaration?: Reflection;
}

const KIND = { class: 128, interface: 256, property: 1024 } as const;

/** Problems with one property's documentation, or none. */
export function argProblems(owner: string, prop: Reflection): string[] {
  const where = `${owner}.${prop.name}`;
  const summary = (prop.comment?.summary ?? []).map((p) => p.text).join("");
  const tags = new Set((prop.comment?.blockTags ?? []).map((t) => t.tag));
  const problems: string[] = [];
  if (summary.trim() === "") problems.push(`${where}: no description`);
  if (prop.flags.isOptional && !tags.has("@default")) problems.push(`${where}: optional without @default`);
  // A required value whose default is applied upstream (the stack-config schema's) may show that instead.
  if (!prop.flags.isOptional && !tags.has("@example") && !tags.has("@default")) problems.push(`${where}: required without @example`);
  return problems;
}

/** Ids of the project's own declarations a type refers to, and inline object types in it. */
function referenced(type: TypeNode | undefined, ids: Set<number>, inline: Reflection[]): void {
  if (!type) return;
  if (type.type === "reference" && typeof type.target === "number") ids.add(type.target);
  if (type.type === "reflection" && type.declaration) inline.push(type.declaration);
  for (const t of [...(type.types ?? []), ...(type.typeArguments ?? []), ...(type.elementType ? [type.elementType] : [])]) {
    referenced(t, ids, inline);
  }
}

/** Every component argument: the properties of `*Args` interfaces and of the project's interfaces and inline types they use. */
export function undocumentedArgs(project: Reflection): string[] {
  const byId = new Map<number, Reflection>();
  const index = (r: Reflection): void => {
    byId.set(r.id, r);
    r.children?.forEach(index);
  };
  index(project);
  const queue: [string, Reflection][] = (project.children ?? [])
    .filter((r) => r.kind === KIND.interface && r.name.endsWith("Args"))
    .map((r) => [r.name, r]);
  const seen = new Set<number>();
  const problems: string[] = [];
  while (queue.length > 0) {
    const [owner, decl] = queue.shift()!;
    if (seen.has(decl.id)) continue;
    seen.add(decl.id);
    for (const prop of (decl.children ?? []).filter((c) => c.kind === KIND.property)) {
      problems.push(...argProblems(owner, prop));
      const ids = new Set<number>();
      const inline: Reflection[] = [];
      referenced(prop.type, ids, inline);
      for (const id of ids) {
        const target = byId.get(id);
        if (target?.kind === KIND.interface) queue.push([target.name, target]);
      }
      for (const d of inline) queue.push([`${owner}.${prop.name}`, d]);
    }
  }
  return problems.sort();
}

describe("the API reference", () => {
  let dir: string;
  let project: Reflection;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "jetson-fleet-api-"));
    // typedoc.json treats warnings as errors: a broken link or an unexported type used by the API fails here.
    await run(join(REPO, "node_modules", ".bin", "typedoc"), ["--out", join(dir, "html"), "--json", join(dir, "api.json")], { cwd: REPO });
    project = JSON.parse(readFileSync(join(dir, "api.json"), "utf8")) as Reflection;
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("has a page for every exported class, the components among them", () => {
    const classes = (project.children ?? []).filter((r) => r.kind === KIND.class).map((r) => r.name);
    assert.ok(classes.includes("JetsonHost") && classes.includes("GpuImage"), classes.join(", "));
    for (const name of classes) assert.ok(existsSync(join(dir, "html", "classes", `${name}.html`)), `classes/${name}.html`);
  });

  it("documents every component argument: a description, @default when optional, @example when required", () => {
    assert.deepEqual(undocumentedArgs(project), []);
  });

  const cases: [string, Reflection, string[]][] = [
    ["documented optional", prop("tag", true, "The tag.", ["@default"]), []],
    ["documented required", prop("repository", false, "The repository.", ["@example"]), []],
    ["optional without @default", prop("tag", true, "The tag.", ["@example"]), ["X.tag: optional without @default"]],
    ["required without @example", prop("repository", false, "The repository.", []), ["X.repository: required without @example"]],
    ["required, defaulted by the schema", prop("port", false, "SSH port.", ["@default"]), []],
    ["no description", prop("tag", true, "", ["@default"]), ["X.tag: no description"]],
  ];
  for (const [what, p, expected] of cases) {
    it(`argProblems: ${what}`, () => assert.deepEqual(argProblems("X", p), expected));
  }
});

function prop(name: string, optional: boolean, summary: string, tags: string[]): Reflection {
  return {
    id: 1,
    name,
    kind: KIND.property,
    flags: { isOptional: optional },
    comment: { summary: [{ text: summary }], blockTags: tags.map((tag) => ({ tag })) },
  };
}
