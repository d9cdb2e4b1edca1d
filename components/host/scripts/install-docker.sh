#!/usr/bin/env bash
# Installs the Docker engine at the pinned version and holds it (Docker 28 broke JetPack 6.2).
# Idempotent and convergent: finishes interrupted dpkg runs, waits for the dpkg lock, installs
# only what differs, starts the engine.
set -euo pipefail
: "${DOCKER_PACKAGE:?}" "${DOCKER_VERSION:?}"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lib.sh" # inlined by renderHostScript

apt_recover
apt_sources
version=$(apt_version "$DOCKER_PACKAGE" "$DOCKER_VERSION")
packages=("$DOCKER_PACKAGE=$version")
# docker-ce ships its CLI separately, versioned with the engine.
[[ $DOCKER_PACKAGE == docker-ce ]] && packages+=("docker-ce-cli=$(apt_version docker-ce-cli "$version")")
apt_install_pinned "${packages[@]}"
# The configure step merges daemon.json with jq.
command -v jq >/dev/null || "${APT[@]}" install jq
systemctl enable --now docker.service
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker version --format 'docker engine {{.Server.Version}} running'
