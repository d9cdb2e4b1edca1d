// Reads back what `hostStdin` frames, so tests can say which script and parameters a step sends
// (and check the framing itself) without a real host.
import type { Elevation, HostStep, StepParams } from "../../components/index.ts";

/** A step's standard input, taken apart. */
export interface ReadStdin extends HostStep {
  /** The sudo password's line (sudo-password only). */
  readonly password?: string;
  /** What the script reads on its own stdin. */
  readonly data: string;
}

function readParams(text: string): StepParams {
  const out: Record<string, string> = {};
  const line = /^export ([A-Za-z_][A-Za-z0-9_]*)='((?:[^']|'\\'')*)'\n/;
  let rest = text;
  while (rest !== "") {
    const m = line.exec(rest);
    if (!m) throw new Error(`not an export line: ${JSON.stringify(rest.slice(0, 80))}`);
    out[m[1] ?? ""] = (m[2] ?? "").replaceAll(`'\\''`, "'");
    rest = rest.slice(m[0].length);
  }
  return out;
}

/** `stdin` as `hostStdin(elevation, …)` built it; throws when it is not framed as the launcher expects. */
export function readHostStdin(stdin: string, elevation: Elevation): ReadStdin {
  let bytes = Buffer.from(stdin, "utf8");
  const line = () => {
    const end = bytes.indexOf(0x0a);
    if (end < 0) throw new Error("no line break");
    const text = bytes.subarray(0, end).toString("utf8");
    bytes = bytes.subarray(end + 1);
    return text;
  };
  const password = elevation === "sudo-password" ? line() : undefined;
  const header = /^jetson-fleet-step\/1((?: (?:\d+|-)){4})$/.exec(line());
  if (!header) throw new Error("no step header");
  const parts = (header[1] ?? "")
    .trim()
    .split(" ")
    .map((len) => {
      if (len === "-") return undefined;
      const text = bytes.subarray(0, Number(len)).toString("utf8");
      bytes = bytes.subarray(Number(len));
      return text;
    });
  if (line() !== "jetson-fleet-step/end") throw new Error("no end line");
  const [script = "", create, update, del] = parts;
  if (create === undefined) throw new Error("no create parameters");
  return {
    ...(password !== undefined ? { password } : {}),
    script,
    create: readParams(create),
    ...(update !== undefined ? { update: readParams(update) } : {}),
    ...(del !== undefined ? { delete: readParams(del) } : {}),
    data: bytes.toString("utf8"),
  };
}
