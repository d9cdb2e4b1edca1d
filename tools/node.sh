#!/usr/bin/env bash
# Prints the bin directory of a pinned Node.js (the npm package node-linux-<arch>), installing it
# into the cache first. @pulumi/pulumi needs Node >= 22 and machines of this kind ship Node 20, so
# every project script puts this directory first on PATH (npm itself then runs under it too).
set -euo pipefail

NODE_VERSION=24.21.0
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
dir=$cache/node/$NODE_VERSION

if [[ ! -x $dir/bin/node ]]; then
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "tools/node.sh: no node-linux package for $(uname -m)" >&2; exit 1 ;;
  esac
  echo "installing Node.js $NODE_VERSION (npm package node-linux-$arch) into $dir" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null)
  tar -xzf "$tmp"/node-linux-*.tgz -C "$tmp"
  # Move into place in one step so an interrupted install never leaves a half-extracted node.
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
fi
echo "$dir/bin"
