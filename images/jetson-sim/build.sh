#!/usr/bin/env bash
# Builds the simulated Jetson image and prints its tag on the last line of stdout.
#
#   images/jetson-sim/build.sh
#
# 1. A Debian bookworm minbase root filesystem made with debootstrap, cached as a tarball under
#    ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/base/ and imported as the base image (no image
#    can be pulled on machines of this kind).
# 2. The sim image (Dockerfile beside this script) FROM that base: systemd as PID 1, sshd, sudo and
#    the tools JetPack ships; no Docker engine (JetsonHost installs it).
# Both tags carry a hash of their inputs: an unchanged input reuses the image, a changed one rebuilds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
SUITE=bookworm
arch=$(dpkg --print-architecture)
log() { printf 'jetson-sim build: %s\n' "$*" >&2; }

# The machine's configured Debian mirror (deb822 or one-line sources), else debootstrap's default.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    sed -nE -e 's/^URIs:[[:space:]]*([^[:space:]]+\/debian)\/?[[:space:]]*$/\1/p' \
      -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+\/debian)\/?[[:space:]].*/\2/p' "$f"
  done | head -n 1
}

# --- 1. base root filesystem and image ---------------------------------------------------------
base_tar=$cache/base/debian-$SUITE-minbase-$arch.tar
if [[ ! -s $base_tar ]]; then
  command -v debootstrap >/dev/null || { echo "jetson-sim build: debootstrap is missing (tools/machine.sh installs it)" >&2; exit 1; }
  mkdir -p "$cache/base" "$cache/logs"
  work=$(mktemp -d "$cache/base/.rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mirror=$(debian_mirror)
  log "debootstrap --variant=minbase $SUITE ${mirror:-(default mirror)} (log: $cache/logs/debootstrap.log)"
  # shellcheck disable=SC2086 # an empty mirror means debootstrap's default
  debootstrap --variant=minbase --arch="$arch" "$SUITE" "$work/rootfs" $mirror >"$cache/logs/debootstrap.log" 2>&1 \
    || { tail -n 30 "$cache/logs/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  # Write beside the final name, then rename: an interrupted run never leaves a partial tarball.
  tar --numeric-owner --xattrs -C "$work/rootfs" -cf "$work/base.tar" .
  mv "$work/base.tar" "$base_tar"
  rm -rf "$work"
  trap - EXIT
fi
base_sum=$cache/base/debian-$SUITE-minbase-$arch.sha256
[[ -s $base_sum && $base_sum -nt $base_tar ]] || sha256sum "$base_tar" | cut -c1-64 >"$base_sum"
base_image=jetson-fleet/debian-minbase:$SUITE-$(cut -c1-12 "$base_sum")
if ! "$DOCKER" image inspect "$base_image" >/dev/null 2>&1; then
  log "importing $base_tar as $base_image"
  "$DOCKER" import --change 'CMD ["/bin/bash"]' "$base_tar" "$base_image" >/dev/null
fi

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
