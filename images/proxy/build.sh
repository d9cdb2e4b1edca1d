#!/usr/bin/env bash
# Builds the blue/green proxy image (images/proxy: Debian bookworm's HAProxy) from the project's
# Debian minbase image (images/base/minbase.sh), this machine's arch, and prints its reference as a
# shell assignment on the last line of stdout:
#
#   images/proxy/build.sh
#   PROXY_IMAGE=jetson-fleet/proxy:2.6.12-<hash>
#
# The tag is the HAProxy upstream version (tools/dev-env.sh pushes it as jetson-fleet/proxy:<version>,
# the reference the dev stack names) and a hash of the inputs: the minbase tag and every file of
# images/proxy. An unchanged input reuses the image; a changed one rebuilds it. The version is read
# from the built image, so it is the one the Debian mirror served.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
log() { printf 'proxy build: %s\n' "$*" >&2; }

base_image=$("$here/../base/minbase.sh" | tail -n 1)
mkdir -p "$cache/logs"
hash=$( {
  echo "$base_image"
  cd "$here" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-12)
build_log=$cache/logs/proxy-build.log
# The image of these inputs, whatever version it holds (the version is known only after a build).
image=$("$DOCKER" image ls --filter "label=io.jetson-fleet.image.inputs=$hash" --format '{{.Repository}}:{{.Tag}}' | grep '^jetson-fleet/proxy:' | head -n 1 || true)
if [[ -n $image ]]; then
  log "up to date: $image"
else
  log "building from $base_image (log: $build_log)"
  DOCKER_BUILDKIT=1 "$DOCKER" build --network host --build-arg "BASE=$base_image" \
    --label "org.opencontainers.image.base.name=$base_image" --label "io.jetson-fleet.image.inputs=$hash" \
    -t "jetson-fleet/proxy:build-$hash" "$here" >"$build_log" 2>&1 || { tail -n 40 "$build_log" >&2; exit 1; }
  # "HAProxy version 2.6.12-1+deb12u3 2023/..." -> 2.6.12 (the upstream part of Debian's version).
  version=$("$DOCKER" run --rm --network none "jetson-fleet/proxy:build-$hash" haproxy -v | sed -nE '1s/^HAProxy version ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p')
  [[ -n $version ]] || { log "cannot read the HAProxy version of jetson-fleet/proxy:build-$hash"; exit 1; }
  image=jetson-fleet/proxy:$version-$hash
  "$DOCKER" tag "jetson-fleet/proxy:build-$hash" "$image"
  "$DOCKER" rmi "jetson-fleet/proxy:build-$hash" >/dev/null
fi
printf 'PROXY_IMAGE=%s\n' "$image"
