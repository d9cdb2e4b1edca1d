#!/usr/bin/env bash
# Installs the NVIDIA container toolkit's four packages at one pinned version and holds them.
# Idempotent and convergent like install-docker.sh.
set -euo pipefail
: "${NVIDIA_TOOLKIT_VERSION:?}"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lib.sh" # inlined by renderHostScript

apt_recover
apt_sources
version=$(apt_version nvidia-container-toolkit "$NVIDIA_TOOLKIT_VERSION")
apt_install_pinned \
  "nvidia-container-toolkit=$version" \
  "nvidia-container-toolkit-base=$version" \
  "libnvidia-container-tools=$version" \
  "libnvidia-container1=$version"
nvidia-ctk --version | head -n 1
