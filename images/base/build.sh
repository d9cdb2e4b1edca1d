#!/usr/bin/env bash
# Builds the local stand-ins for the L4T/TensorRT base images and prints their references as
# shell assignments on the last two lines of stdout:
#
#   images/base/build.sh
#   L4T_SIM_DEVEL=jetson-fleet/l4t-sim:devel-<hash>
#   L4T_SIM_RUNTIME=jetson-fleet/l4t-sim:runtime-<hash>
#
# Both come from the project's Debian minbase image, which images/jetson-sim/build.sh makes (a
# debootstrap'ed root filesystem cached under ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/base/).
# The tags carry a hash of their inputs (the minbase tag and the Dockerfile beside this script): an
# unchanged input reuses the images, a changed one rebuilds them. Production pins the real NVIDIA
# images by digest instead (images/inference/Dockerfile).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
log() { printf 'l4t-sim build: %s\n' "$*" >&2; }

# --- 1. the Debian minbase image -----------------------------------------------------------------
# images/jetson-sim/build.sh makes (or reuses) it on the way to the sim image; its tag is
# jetson-fleet/debian-minbase:bookworm-<first 12 hex digits of the root filesystem tarball's sha256>,
# the digest it keeps beside the tarball.
"$repo/images/jetson-sim/build.sh" >/dev/null
base_sum=$cache/base/debian-bookworm-minbase-$(dpkg --print-architecture).sha256
[[ -s $base_sum ]] || { log "$base_sum is missing after images/jetson-sim/build.sh"; exit 1; }
base_image=jetson-fleet/debian-minbase:bookworm-$(cut -c1-12 "$base_sum")
"$DOCKER" image inspect "$base_image" >/dev/null 2>&1 || { log "$base_image is missing after images/jetson-sim/build.sh"; exit 1; }

# --- 2. the two stand-ins ------------------------------------------------------------------------
hash=$( { echo "$base_image"; sha256sum <"$here/Dockerfile"; } | sha256sum | cut -c1-12)
mkdir -p "$cache/logs"
for stage in devel runtime; do
  image=jetson-fleet/l4t-sim:$stage-$hash
  if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    log "up to date: $image"
  else
    log "building $image (log: $cache/logs/l4t-sim-$stage-build.log)"
    # The context is the Dockerfile's directory: it holds nothing but this script and the Dockerfile.
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host --build-arg "BASE=$base_image" --target "$stage" \
      --label "org.opencontainers.image.base.name=$base_image" -t "$image" "$here" \
      >"$cache/logs/l4t-sim-$stage-build.log" 2>&1 || { tail -n 40 "$cache/logs/l4t-sim-$stage-build.log" >&2; exit 1; }
  fi
done
echo "L4T_SIM_DEVEL=jetson-fleet/l4t-sim:devel-$hash"
echo "L4T_SIM_RUNTIME=jetson-fleet/l4t-sim:runtime-$hash"
