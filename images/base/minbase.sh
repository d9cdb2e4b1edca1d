#!/usr/bin/env bash
# Makes (or reuses) the project's Debian bookworm minbase image for one architecture and prints its
# tag on the last line of stdout. No image can be pulled on machines of this kind, so every image
# the project builds starts from this one.
#
#   images/base/minbase.sh [ARCH]     ARCH: a Debian architecture (amd64, arm64); default: this machine's
#
# The root filesystem is made with debootstrap and cached as a tarball under
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/base/. A foreign ARCH runs its package scripts
# through qemu-user-static registered with binfmt (tools/machine.sh sets that up). The tag is
# jetson-fleet/debian-minbase:bookworm-<first 12 hex digits of the tarball's sha256>, so it differs
# between architectures and changes when the tarball does.
set -euo pipefail

cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
DOCKER=/usr/bin/docker
SUITE=bookworm
arch=${1:-$(dpkg --print-architecture)}
log() { printf 'minbase %s: %s\n' "$arch" "$*" >&2; }

# The machine's configured Debian mirror (deb822 or one-line sources), else debootstrap's default.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    sed -nE -e 's/^URIs:[[:space:]]*([^[:space:]]+\/debian)\/?[[:space:]]*$/\1/p' \
      -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+\/debian)\/?[[:space:]].*/\2/p' "$f"
  done | head -n 1
}

base_tar=$cache/base/debian-$SUITE-minbase-$arch.tar
if [[ ! -s $base_tar ]]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing (tools/machine.sh installs it)"; exit 1; }
  mkdir -p "$cache/base" "$cache/logs"
  work=$(mktemp -d "$cache/base/.rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mirror=$(debian_mirror)
  log "debootstrap --variant=minbase $SUITE ${mirror:-(default mirror)} (log: $cache/logs/debootstrap-$arch.log)"
  # shellcheck disable=SC2086 # an empty mirror means debootstrap's default
  debootstrap --variant=minbase --arch="$arch" "$SUITE" "$work/rootfs" $mirror >"$cache/logs/debootstrap-$arch.log" 2>&1 \
    || { tail -n 30 "$cache/logs/debootstrap-$arch.log" >&2; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  # Write beside the final name, then rename: an interrupted run never leaves a partial tarball.
  tar --numeric-owner --xattrs -C "$work/rootfs" -cf "$work/base.tar" .
  mv "$work/base.tar" "$base_tar"
  rm -rf "$work"
  trap - EXIT
fi
base_sum=$cache/base/debian-$SUITE-minbase-$arch.sha256
[[ -s $base_sum && $base_sum -nt $base_tar ]] || sha256sum "$base_tar" | cut -c1-64 >"$base_sum"
image=jetson-fleet/debian-minbase:$SUITE-$(cut -c1-12 "$base_sum")
if ! "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
  # A build FROM scratch rather than `docker import`: import records the machine's architecture
  # whatever the tarball holds, and a foreign-arch build then looks for its base in a registry.
  log "making $image from $base_tar"
  ctx=$(mktemp -d "$cache/base/.import.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  ln "$base_tar" "$ctx/rootfs.tar" 2>/dev/null || cp "$base_tar" "$ctx/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n' |
    DOCKER_BUILDKIT=1 "$DOCKER" build -q --platform "linux/$arch" -t "$image" -f - "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
fi
echo "$image"
