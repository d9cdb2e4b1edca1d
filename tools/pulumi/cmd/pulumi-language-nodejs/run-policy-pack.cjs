// Runs a policy pack whose PulumiPolicy.yaml sets the runtime option `typescript: false`.
// @pulumi/pulumi's own entry point (cmd/run-policy-pack) always registers ts-node, which cannot
// compile packs written for Node's type stripping (`.ts` import extensions, ES modules). This
// entry does the same work with ts-node off: Node loads the pack's TypeScript itself.
//
// Usage: node -e <this file> -- <path of @pulumi/pulumi/cmd/run-policy-pack/run.js> <engine address> <pack directory>
"use strict";
const path = require("node:path");

const [runPath, , ...program] = process.argv.slice(1);
// Exit codes as in @pulumi/pulumi's runner: 32 tells the host the error was already reported.
const USER_MESSAGE_SHOWN = 32;
const uncaught = new Set();
const logged = new Set();
let running = false;
const onUncaught = (err) => {
  uncaught.add(err);
  if (!running) console.error((err && (err.stack || err.message)) || String(err));
};
process.on("uncaughtException", onUncaught);
process.on("unhandledRejection", onUncaught);
process.on("exit", (code) => {
  if (code !== 0 || uncaught.size === 0) return;
  process.exitCode = [...uncaught].every((err) => logged.has(err)) ? USER_MESSAGE_SHOWN : 1;
});

// Closure serialization needs the inspector hooks ready before any user code runs.
const v8Hooks = require(path.join(path.dirname(runPath), "..", "..", "runtime", "closure", "v8Hooks"));
v8Hooks.isInitializedAsync().then(() =>
  require(runPath)
    .run({
      argv: { _: program },
      typeScript: false,
      programStarted: () => (running = true),
      reportLoggedError: (err) => logged.add(err),
    })
    .then(() => (running = false)),
);
