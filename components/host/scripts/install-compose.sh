#!/usr/bin/env bash
# Installs the compose tool the compose deploy mode runs (`docker compose` or `docker-compose`) at
# its pinned version and holds it. Idempotent and convergent like install-docker.sh.
set -euo pipefail
: "${COMPOSE_PACKAGE:?}" "${COMPOSE_VERSION:?}"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lib.sh" # inlined by renderHostScript

apt_recover
apt_sources
apt_install_pinned "$COMPOSE_PACKAGE=$(apt_version "$COMPOSE_PACKAGE" "$COMPOSE_VERSION")"
if docker compose version >/dev/null 2>&1; then
  docker compose version
else
  docker-compose version --short
fi
