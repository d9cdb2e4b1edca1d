// The secret search every engine test runs at its end: each secret of its stack, in every form it
// could leak in, looked for in everything the run left behind (the state as `pulumi stack export`
// prints it, the backend's files, the engine's output, the files the stack rendered on its hosts
// and into directories, the hosts' journals and process lists, the logs under the cache). A value a
// service needs on its host (a secret environment value) may be where the host's container runtime
// holds it, readable by root alone: the stack's rendered files there when they are mode 0600, the
// container's process environment, and dockerd's debug log in the journal (a host that logs at
// debug level writes every container's create request there).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { filesText, storedState, type EngineStack } from "./engine.ts";
import type { DevFleet } from "./fleet.ts";

/** What the stack holds encrypted, by what it is (`hosts[0].privateKey`). */
export type StackSecrets = Readonly<Record<string, string>>;

export interface SecretSearch {
  /** The stack whose state and backend are searched. */
  readonly env: EngineStack;
  readonly stack: string;
  /** Everything the engine printed during the test (previews, updates, failures, destroys). */
  readonly engineOutput: string;
  /** The simulated hosts the stack deployed to: their rendered files and journals. */
  readonly fleet?: DevFleet;
  /** Directories the stack rendered files into (`deploy.kubernetes.renderYamlToDirectory`). */
  readonly renderedDirs?: readonly string[];
  /** More text the test collected on this machine, by where it came from (stack exports taken during the run). */
  readonly collected?: Readonly<Record<string, string>>;
  /** The hosts' process lists and process environments, sampled while steps ran (`sampleProcessLists`). */
  readonly processLists?: string;
  /** Secrets a service needs on its hosts (by label): allowed in root-only files the stack rendered there. */
  readonly neededOnHosts?: readonly string[];
}

/** Where the stack renders files on a host (compose files, container guard records). */
export const HOST_STATE_DIR = "/var/lib/jetson-fleet";

/** Each form `value` could leak in, by name: as is, base64, JSON-escaped, and each long line of a multi-line value (a key). */
export function secretForms(value: string): Record<string, string> {
  const forms: Record<string, string> = { "": value, base64: Buffer.from(value).toString("base64") };
  const json = JSON.stringify(value).slice(1, -1);
  if (json !== value) forms["JSON-escaped"] = json;
  const lines = value.split("\n").filter((l) => l.length >= 20 && !l.startsWith("-----"));
  if (lines.length > 1) lines.forEach((line, i) => (forms[`line ${i + 1}`] = line));
  return forms;
}

/** `<secret> (<form>) in <where>` for every form of every secret found in `texts`. */
export function secretHits(secrets: StackSecrets, texts: Readonly<Record<string, string>>): string[] {
  const hits: string[] = [];
  for (const [where, text] of Object.entries(texts)) {
    for (const [label, value] of Object.entries(secrets)) {
      for (const [form, needle] of Object.entries(secretForms(value))) {
        if (needle !== "" && text.includes(needle)) hits.push(`${label}${form ? ` (${form})` : ""} in ${where}`);
      }
    }
  }
  return hits;
}

/** The logs under the cache: what the toolchain, dockerd, buildkitd and the dev registry wrote. */
export function cacheLogs(cache = process.env["JETSON_FLEET_CACHE"] ?? join(homedir(), ".cache", "jetson-fleet")): Record<string, string> {
  const out: Record<string, string> = {};
  let entries: string[];
  try {
    entries = readdirSync(cache, { recursive: true, encoding: "utf8" });
  } catch {
    return out;
  }
  for (const entry of entries) {
    // Image filesystems (buildkit snapshots, the Node.js install) hold their own distributions' logs.
    if (!entry.endsWith(".log") || /(^|\/)(snapshots|node)\//.test(entry)) continue;
    const file = join(cache, entry);
    try {
      if (statSync(file).isFile()) out[`the log ${entry} under the cache`] = readFileSync(file, "utf8");
    } catch (err) {
      // Pulumi prunes its old logs: one removed since the listing held nothing to find any more.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return out;
}

function renderedFiles(dirs: readonly string[]): Record<string, string> {
  return Object.fromEntries(dirs.map((dir) => [`the rendered directory ${dir}`, filesText(dir)]));
}

/** Every secret's leaks after a run (empty when there are none): assert it is `[]`. */
export async function secretLeaks(secrets: StackSecrets, search: SecretSearch): Promise<string[]> {
  const texts: Record<string, string> = {
    "the stack export": await storedState(search.env, search.stack),
    "the backend's files": filesText(search.env.stateDir),
    "the engine's output": search.engineOutput,
    ...renderedFiles(search.renderedDirs ?? []),
    ...cacheLogs(),
    ...search.collected,
  };
  const needed = new Set(search.neededOnHosts ?? []);
  const elsewhere = Object.fromEntries(Object.entries(secrets).filter(([label]) => !needed.has(label)));
  const neededSecrets = Object.fromEntries(Object.entries(secrets).filter(([label]) => needed.has(label)));
  const hits = [...secretHits(secrets, texts), ...secretHits(elsewhere, { "the hosts' process lists": search.processLists ?? "" })];
  for (const host of search.fleet?.hosts ?? []) {
    const fleet = search.fleet as DevFleet;
    const journal = await fleet.exec(host, "journalctl --no-pager -o cat 2>/dev/null || true");
    const neededHits = secretHits(neededSecrets, {
      [`the journal of ${host.name} (beside dockerd's debug log)`]: journal
        .split("\n")
        .filter((line) => !line.includes("level=debug"))
        .join("\n"),
    });
    hits.push(...secretHits(elsewhere, { [`the journal of ${host.name}`]: journal }), ...neededHits);
    // One record per file: mode, owner, path, then the content (NUL-separated).
    const listing = await fleet.exec(
      host,
      `find ${HOST_STATE_DIR} -type f -printf '%m %u %p\\n' 2>/dev/null | while read -r mode owner path; do printf '%s %s %s\\0' "$mode" "$owner" "$path"; cat "$path"; printf '\\0'; done`,
    );
    const fields = listing.split("\0");
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const [mode = "", owner = "", path = ""] = (fields[i] ?? "").split(" ");
      const content = fields[i + 1] ?? "";
      const where = `${path} on ${host.name}`;
      hits.push(...secretHits(elsewhere, { [where]: content }));
      const neededHere = secretHits(neededSecrets, { [where]: content });
      if (neededHere.length > 0 && (mode !== "600" || owner !== "root")) {
        hits.push(...neededHere.map((h) => `${h} (mode ${mode}, owner ${owner}: expected 600 root)`));
      }
    }
  }
  return hits;
}
