#!/usr/bin/env bash
# Logs root's Docker client (the one the compose mode pulls with) in to the stack's registry, the
# password read from standard input: never an argument, never in the environment. With LOGOUT=1
# it logs out instead (the step's delete: a registry the stack no longer names keeps no
# credentials on the host). Idempotent: a re-run logs in again with the same credentials.
set -euo pipefail
: "${REGISTRY_SERVER:?}"

if [[ ${LOGOUT:-0} == 1 ]]; then
  docker logout "$REGISTRY_SERVER"
  exit 0
fi
: "${REGISTRY_USERNAME:?}"
# docker login stores the credentials in root's ~/.docker/config.json, readable by root only.
umask 077
docker login --username "$REGISTRY_USERNAME" --password-stdin "$REGISTRY_SERVER"
