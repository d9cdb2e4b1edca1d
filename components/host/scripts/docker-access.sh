#!/usr/bin/env bash
# Gives the stack's login user the host's Docker engine (the containers mode's Docker provider
# runs `docker system dial-stdio` as that user over SSH): membership of the `docker` group, which
# is root-equivalent, so it is given to LOGIN_USER only. With REVOKE=1 it removes that membership
# instead (the step's delete: a stack that stops using the containers mode takes it back).
# Idempotent: a member is left as is, a non-member is not an error on revoke.
set -euo pipefail
: "${LOGIN_USER:?}"

if ! getent group docker >/dev/null; then
  echo "docker-access: the host has no docker group; expected the Docker engine package to create it" >&2
  exit 1
fi
member() { id -nG "$LOGIN_USER" | tr ' ' '\n' | grep -qx docker; }
if [[ ${REVOKE:-0} == 1 ]]; then
  if member; then gpasswd -d "$LOGIN_USER" docker >/dev/null; fi
  echo "docker-access: $LOGIN_USER is not in the docker group"
  exit 0
fi
if ! member; then usermod -aG docker "$LOGIN_USER"; fi
echo "docker-access: $LOGIN_USER is in the docker group (root-equivalent: it reaches the Docker engine)"
