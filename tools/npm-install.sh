#!/usr/bin/env bash
# Installs the locked npm packages when package-lock.json changed since the last install.
# Expects the pinned Node.js first on PATH (tools/node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=node_modules/.jetson-fleet-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "npm ci (package-lock.json changed)" >&2
  # Install scripts stay off: the provider packages' scripts try to download plugins, and the
  # project installs plugins itself (tools/toolchain.sh).
  npm ci --ignore-scripts --no-audit --no-fund
  echo "$want" >"$stamp"
fi
