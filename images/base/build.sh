#!/usr/bin/env bash
# Builds the local stand-ins for the L4T/TensorRT base images and prints their references as
# shell assignments on the last two lines of stdout:
#
#   images/base/build.sh [PLATFORM]     PLATFORM: linux/amd64 or linux/arm64; default: this machine's
#   L4T_SIM_DEVEL=jetson-fleet/l4t-sim:devel-<hash>
#   L4T_SIM_RUNTIME=jetson-fleet/l4t-sim:runtime-<hash>
#
# Both come from the project's Debian minbase image of the platform's architecture (minbase.sh
# beside this script: a debootstrap'ed root filesystem cached under
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/base/). A foreign platform (arm64 on an x86 machine)
# builds under qemu-user-static, registered with binfmt by tools/machine.sh: slow, but the same
# Dockerfile and the same packages a Jetson gets.
# The tags carry a hash of their inputs (the minbase tag, the Dockerfile beside this script and the
# stand-in trtexec it copies, trtexec-stand-in/): an unchanged input reuses the images, a changed one
# rebuilds them. Production pins the real NVIDIA images by digest instead (images/inference/Dockerfile).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
platform=${1:-linux/$(dpkg --print-architecture)}
[[ $platform =~ ^linux/(amd64|arm64)$ ]] || { printf 'l4t-sim build: platform "%s": expected linux/amd64 or linux/arm64\n' "$platform" >&2; exit 2; }
arch=${platform#linux/}
log() { printf 'l4t-sim build (%s): %s\n' "$platform" "$*" >&2; }

# --- 1. the Debian minbase image for the platform's architecture ---------------------------------
base_image=$("$here/minbase.sh" "$arch" | tail -n 1)

# --- 2. the two stand-ins ------------------------------------------------------------------------
hash=$( {
  echo "$base_image"
  cd "$here" && find Dockerfile trtexec-stand-in -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-12)
mkdir -p "$cache/logs"
for stage in devel runtime; do
  image=jetson-fleet/l4t-sim:$stage-$hash
  if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    log "up to date: $image"
  else
    log "building $image (log: $cache/logs/l4t-sim-$stage-$arch-build.log)"
    # The context is the Dockerfile's directory: it holds nothing but the two scripts, the Dockerfile
    # and the stand-in trtexec.
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host --platform "$platform" --build-arg "BASE=$base_image" --target "$stage" \
      --label "org.opencontainers.image.base.name=$base_image" -t "$image" "$here" \
      >"$cache/logs/l4t-sim-$stage-$arch-build.log" 2>&1 || { tail -n 40 "$cache/logs/l4t-sim-$stage-$arch-build.log" >&2; exit 1; }
  fi
done
echo "L4T_SIM_DEVEL=jetson-fleet/l4t-sim:devel-$hash"
echo "L4T_SIM_RUNTIME=jetson-fleet/l4t-sim:runtime-$hash"
