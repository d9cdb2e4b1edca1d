#!/usr/bin/env bash
# Makes this machine ready for the integration and engine tiers: installs the Debian packages
# they use, registers qemu-user-static with binfmt (arm64 builds on x86) and starts a Docker engine
# (no systemd here, so dockerd and the binfmt mount are done directly).
# Idempotent: a second run installs nothing and finds dockerd already answering.
set -euo pipefail

PACKAGES=(docker.io openssh-server openssh-client docker-registry skopeo apache2-utils debootstrap dpkg-dev shellcheck yamllint curl jq iproute2
  qemu-user-static binfmt-support etcd-server docker-compose)
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
mkdir -p "$cache/logs"

# binfmt_misc first: qemu-user-static's package scripts register their interpreters into it.
BINFMT=/proc/sys/fs/binfmt_misc
[[ -e $BINFMT/register ]] || mount -t binfmt_misc binfmt_misc "$BINFMT"

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$cache/logs/apt.log" 2>&1 \
    || { tail -n 30 "$cache/logs/apt.log" >&2; exit 1; }
fi

# Packages installed before the mount (or a mount that came back empty) leave aarch64 unregistered.
[[ -e $BINFMT/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64

# sshd refuses to start without its privilege-separation directory, which systemd would make.
mkdir -p /run/sshd

# Debian's client speaks the classic builder API to Debian's dockerd; a newer docker CLI earlier on
# PATH may insist on buildx, so scripts and tests call this one explicitly.
DOCKER=/usr/bin/docker
if ! "$DOCKER" version >/dev/null 2>&1; then
  echo "starting dockerd (log: $cache/logs/dockerd.log)" >&2
  setsid dockerd >"$cache/logs/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    "$DOCKER" version >/dev/null 2>&1 && break
    sleep 1
  done
  "$DOCKER" version >/dev/null 2>&1 || { tail -n 30 "$cache/logs/dockerd.log" >&2; echo "dockerd did not start" >&2; exit 1; }
fi
