#!/usr/bin/env bash
# Builds the dev stack's stand-ins for the external images machines of this kind cannot pull, and
# prints their references as shell assignments on the last two lines of stdout:
#
#   images/stand-ins/build.sh
#   STAND_IN_MEDIAMTX=jetson-fleet/stand-in-mediamtx:1.9.3-<hash>    for bluenviron/mediamtx:1.9.3
#   STAND_IN_NGINX=jetson-fleet/stand-in-nginx:1.27.4-<hash>         for nginx:1.27.4-alpine
#
# The tag is the version stood in for (tools/dev-env.sh pushes each as stand-in/<name>:<version>,
# the reference Pulumi.dev.yaml names) and a hash of the inputs: the minbase tag and every file of
# the stand-in's directory. An unchanged input reuses the image; a changed one rebuilds it. Both
# come from the project's Debian minbase image (images/base/minbase.sh), this machine's arch.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
log() { printf 'stand-ins build: %s\n' "$*" >&2; }

base_image=$("$here/../base/minbase.sh" | tail -n 1)
mkdir -p "$cache/logs"

# build NAME VERSION: builds images/stand-ins/NAME unless its tag exists; prints the reference.
build() {
  local name=$1 version=$2 hash image build_log
  hash=$( {
    echo "$base_image"
    cd "$here/$name" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12)
  image=jetson-fleet/stand-in-$name:$version-$hash
  build_log=$cache/logs/stand-in-$name-build.log
  if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    log "up to date: $image"
  else
    log "building $image (log: $build_log)"
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host --build-arg "BASE=$base_image" \
      --label "org.opencontainers.image.base.name=$base_image" -t "$image" "$here/$name" \
      >"$build_log" 2>&1 || { tail -n 40 "$build_log" >&2; exit 1; }
  fi
  printf 'STAND_IN_%s=%s\n' "${name^^}" "$image"
}

build mediamtx 1.9.3
build nginx 1.27.4
