// The models' scripts as the command provider receives them: each self-contained (the OCI client
// library inlined in place of its `source` line, once), parsed by bash, and the engine key text the
// build checks is the one the deploy hashes (components/models/engine.ts).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { engineKey, engineKeyText } from "../../../components/models/engine.ts";
import { MODEL_SCRIPTS, renderModelScript } from "../../../components/models/scripts.ts";

const DIR = join(import.meta.dirname, "..", "..", "..", "components", "models", "scripts");
const lib = (name: string) => readFileSync(join(DIR, `${name}.sh`), "utf8").replace(/^# shellcheck shell=bash\n/, "");
const LIB = lib("oci-lib");
const JSON_LIB = lib("json-lib");
const source = (name: string) => `source "$(dirname "\${BASH_SOURCE[0]}")/${name}.sh" # inlined by renderModelScript`;
const SOURCE = source("oci-lib");
const JSON_SOURCE = source("json-lib");

describe("renderModelScript", () => {
  it("lists the three scripts", () => {
    assert.deepEqual(MODEL_SCRIPTS, ["model-artifact", "model-fetch", "engine-build"]);
  });

  it("inlines the OCI library where the scripts source it, and nowhere else", () => {
    for (const name of ["model-artifact", "model-fetch"] as const) {
      const file = readFileSync(join(DIR, `${name}.sh`), "utf8");
      assert.equal(file.split(SOURCE).length, 2, `${name} sources oci-lib.sh once`);
      assert.equal(
        renderModelScript(name),
        file.replace(JSON_SOURCE, () => JSON_LIB).replace(SOURCE, () => LIB),
      );
      const script = renderModelScript(name);
      assert.doesNotMatch(script, /^source /m);
      assert.doesNotMatch(script, /shellcheck shell=bash/);
      for (const fn of ["oci_request", "oci_url", "oci_header", "oci_why", "_oci_authorize"]) {
        assert.match(script, new RegExp(`^${fn}\\(\\) \\{$`, "m"), `${name}: ${fn}`);
      }
    }
    // The build needs no registry client, only the JSON quoting.
    assert.equal(
      renderModelScript("engine-build"),
      readFileSync(join(DIR, "engine-build.sh"), "utf8").replace(JSON_SOURCE, () => JSON_LIB),
    );
  });

  it("renders scripts bash parses, starting with the shebang and strict mode", () => {
    for (const name of MODEL_SCRIPTS) {
      const script = renderModelScript(name);
      assert.match(script, /^#!\/usr\/bin\/env bash\n/, name);
      assert.match(script, /^set -euo pipefail$/m, name);
      execFileSync("bash", ["-n"], { input: script });
    }
  });

  it("hashes the engine key text exactly as engineKey does", () => {
    const inputs = {
      modelSha256: "a".repeat(64),
      image: `127.0.0.1:5000/inference@sha256:${"b".repeat(64)}`,
      l4tRelease: "36.4.3",
      gpu: "nvidia,p3768-0000+p3767-0000,nvidia,p3767-0000,nvidia,tegra234",
      args: ["--fp16", "--minShapes=images:1x3x640x640", "--skipInference"],
    };
    // The script's own lines (engine-build.sh), run alone.
    const text = execFileSync(
      "bash",
      [
        "-c",
        `printf 'jetson-fleet-engine/1\\nmodel=%s\\nimage=%s\\nl4t=%s\\ngpu=%s\\nargs=%s\\n' "$1" "$2" "$3" "$4" "$5"`,
        "key",
        inputs.modelSha256,
        `sha256:${"b".repeat(64)}`,
        inputs.l4tRelease,
        inputs.gpu,
        inputs.args.join(" "),
      ],
      { encoding: "utf8" },
    );
    assert.equal(text, engineKeyText(inputs));
    const script = readFileSync(join(DIR, "engine-build.sh"), "utf8");
    assert.ok(
      script.includes(
        `text=$(printf 'jetson-fleet-engine/1\\nmodel=%s\\nimage=%s\\nl4t=%s\\ngpu=%s\\nargs=%s\\n' "$hex" "$digest" "$l4t" "$gpu" "\${args[*]}")`,
      ),
    );
    assert.equal(execFileSync("sha256sum", { input: text, encoding: "utf8" }).slice(0, 16), engineKey(inputs));
  });
});
