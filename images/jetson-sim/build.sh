#!/usr/bin/env bash
# Builds the simulated Jetson image and prints its tag on the last line of stdout.
#
#   images/jetson-sim/build.sh
#
# 1. The project's Debian bookworm minbase image for this machine's architecture
#    (images/base/minbase.sh: debootstrap, cached; no image can be pulled on machines of this kind).
# 2. The sim image (Dockerfile beside this script) FROM that base: systemd as PID 1, sshd, sudo and
#    the tools JetPack ships; no Docker engine (JetsonHost installs it).
# Both tags carry a hash of their inputs: an unchanged input reuses the image, a changed one rebuilds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
log() { printf 'jetson-sim build: %s\n' "$*" >&2; }

# --- 1. the base image ------------------------------------------------------------------------------
base_image=$("$here/../base/minbase.sh" | tail -n 1)

# --- 2. the sim image ----------------------------------------------------------------------------
# Inputs: the base image and every file of the build context (sorted names and contents).
inputs_hash=$(
  {
    echo "$base_image"
    cd "$here" && find Dockerfile rootfs -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    cd "$here" && find rootfs -type f -perm -u+x -print | LC_ALL=C sort
  } | sha256sum | cut -c1-12
)
image=jetson-fleet/jetson-sim:$inputs_hash
if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
  log "up to date: $image"
else
  mkdir -p "$cache/logs"
  log "building $image (log: $cache/logs/jetson-sim-build.log)"
  DOCKER_BUILDKIT=1 "$DOCKER" build --network host --build-arg "BASE=$base_image" -t "$image" "$here" \
    >"$cache/logs/jetson-sim-build.log" 2>&1 || { tail -n 40 "$cache/logs/jetson-sim-build.log" >&2; exit 1; }
fi
echo "$image"
