#!/usr/bin/env bash
# Installs the locked npm packages of the project and of the policy pack (policy/, its own
# package) when a package-lock.json changed since the last install.
# Expects the pinned Node.js first on PATH (tools/node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

for dir in . policy; do
  stamp=$dir/node_modules/.jetson-fleet-lock.sha256
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "npm ci in $dir (package-lock.json changed)" >&2
    # Install scripts stay off: the provider packages' scripts try to download plugins, and the
    # project installs plugins itself (tools/toolchain.sh).
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
    echo "$want" >"$stamp"
  fi
done
