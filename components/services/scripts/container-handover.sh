#!/usr/bin/env bash
# The containers mode's step before Pulumi replaces a service's container on this host: it keeps
# what the host needs to go back. The Docker provider deletes the running container before it
# creates the new one (fixed names and host ports), and cannot bring it back when the new one
# fails its health check; so this step records the running container (`docker inspect`), and
# starts a guard (a systemd unit, or a detached process without systemd) that watches the new
# container CONTAINER. Healthy: the guard ends. Unhealthy, exited, or missing when the deadline
# passes: the guard removes it, creates the recorded container again (same image digest, config
# and host config, labelled jetson-fleet.restored) and starts it, and writes what happened to
# STATE_DIR/CONTAINER.guard. The provider's health wait then fails, naming the resource (host and
# service), and the host serves the previous release.
#
# Also frees the service's place: a container this step's guard restored earlier (Pulumi does not
# know it), and the same service of the stack's compose project (a stack switching from the
# compose mode), are removed before Pulumi creates the new one.
# Idempotent: a re-run records the current container again and restarts the guard.
#
#   CONTAINER       the container's name
#   PROJECT         the stack's compose project name (for the switch from the compose mode)
#   SERVICE         the service's name
#   HOST_NAME       the host's name in messages (default: hostname)
#   GUARD_TIMEOUT   seconds the guard waits for the new container to become healthy (default 300)
#   HEALTHCHECK     1 when the service has a health check (the guard needs one), 0 otherwise
#   BIND_SOURCES    the service's bind mount sources, "UID[:GID] /PATH" per line: the missing ones
#                   are made first, as the compose mode does (bind-sources-lib.sh)
#   STATE_DIR       default /var/lib/jetson-fleet/containers
set -euo pipefail

name=${CONTAINER:?CONTAINER is required}
project=${PROJECT:?PROJECT is required}
service=${SERVICE:?SERVICE is required}
host=${HOST_NAME:-$(hostname)}
timeout=${GUARD_TIMEOUT:-300}
state=${STATE_DIR:-/var/lib/jetson-fleet/containers}
log() { printf 'container-handover: %s\n' "$*" >&2; }

[[ $name =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] || {
  log "host $host: CONTAINER=$name is not a container name; nothing was changed"
  exit 1
}
# shellcheck source-path=SCRIPTDIR source=bind-sources-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bind-sources-lib.sh" # inlined by renderServiceScript
make_bind_sources || exit 1
umask 077
mkdir -p "$state"

# The guard, run detached: "$1" container, "$2" the recorded container's id, "$3" seconds, "$4" state dir.
guard() {
  local name=$1 old=$2 deadline=$(($(date +%s) + $3)) state=$4
  local record=$state/$name.previous.json out=$state/$name.guard now status
  while :; do
    now=$(docker inspect -f '{{.Id}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name" 2>/dev/null || true)
    read -r id status health <<<"$now" || true
    if [[ -n ${id:-} && $id != "$old" ]]; then
      if [[ ${health:-} == healthy ]]; then
        printf 'healthy %s %s\n' "$id" "$(date -u +%FT%TZ)" >"$out"
        return 0
      fi
      [[ ${health:-} == unhealthy || $status == exited || $status == dead ]] && break
    fi
    (($(date +%s) < deadline)) || break
    sleep 1
  done
  # Not healthy in time: unless the recorded container still runs (the update never reached it),
  # put it back.
  if [[ -n ${id:-} && $id == "$old" ]]; then
    printf 'unchanged %s %s\n' "$id" "$(date -u +%FT%TZ)" >"$out"
    return 0
  fi
  local health_output="" image
  if [[ -n ${id:-} ]]; then
    health_output=$(docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$id" 2>/dev/null | tail -c 400 || true)
    image=$(docker inspect -f '{{.Config.Image}}' "$id" 2>/dev/null || true)
    docker rm -f "$id" >/dev/null 2>&1 || true
  fi
  # The recorded Config plus HostConfig is a create request for the very same container.
  local config host_config body
  config=$(sed -n 1p "$record")
  host_config=$(sed -n 2p "$record")
  body="${config%\}},\"HostConfig\":${host_config}}"
  local mark='"jetson-fleet.restored":"true"'
  case $body in
    *'"Labels":{"'*) body=${body/\"Labels\":\{\"/\"Labels\":\{$mark,\"} ;;
    *'"Labels":{}'*) body=${body/\"Labels\":\{\}/\"Labels\":\{$mark\}} ;;
    *) body=${body/\"Labels\":null/\"Labels\":\{$mark\}} ;;
  esac
  if curl -sf --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' -d "$body" \
    "http://docker/containers/create?name=$name" >/dev/null && docker start "$name" >/dev/null; then
    printf 'restored %s after %s failed %s: %s\n' "$(docker inspect -f '{{.Config.Image}}' "$name")" "${image:-the new container}" \
      "$(date -u +%FT%TZ)" "$health_output" >"$out"
  else
    printf 'failed to restore %s %s\n' "$name" "$(date -u +%FT%TZ)" >"$out"
    return 1
  fi
}

# A container an earlier guard restored is not Pulumi's: it goes, the update starts the new one.
if [[ $(docker inspect -f '{{index .Config.Labels "jetson-fleet.restored"}}' "$name" 2>/dev/null || true) == true ]]; then
  docker rm -f "$name" >/dev/null
  log "host $host: removed $name, restored by an earlier failed update"
fi
# The stack's compose project ran this service before (the stack switched modes): it holds the
# service's ports, and compose's own delete runs only after Pulumi created the new containers.
docker ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$service" |
  xargs -r docker rm -f >/dev/null

rm -f "$state/$name.guard" "$state/$name.previous.json"
old=$(docker inspect -f '{{.Id}}' "$name" 2>/dev/null || true)
if [[ -z $old ]]; then
  echo "container-handover: $service: nothing to guard (no container yet)"
  exit 0
elif [[ ${HEALTHCHECK:-0} != 1 ]]; then
  echo "container-handover: $service: not guarded (no health check to tell a failed update)"
  exit 0
fi
command -v curl >/dev/null || {
  log "host $host: $service: curl is missing, so a failed update of $name could not be undone; expected curl on the host"
  exit 1
}
docker inspect -f '{{json .Config}}{{"\n"}}{{json .HostConfig}}' "$name" >"$state/$name.previous.json"
unit=jetson-fleet-guard-$name
guard_script=$state/$name.guard.sh
{
  echo 'set -uo pipefail'
  declare -f guard
  printf 'guard %q %q %q %q\n' "$name" "$old" "$timeout" "$state"
} >"$guard_script"
if command -v systemd-run >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl stop "$unit" 2>/dev/null || true
  systemctl reset-failed "$unit" 2>/dev/null || true
  systemd-run --quiet --collect --unit "$unit" bash "$guard_script"
else
  setsid nohup bash "$guard_script" </dev/null >/dev/null 2>&1 &
fi
echo "container-handover: $service: guarding the update of $name (previous: $(docker inspect -f '{{.Config.Image}}' "$name"))"
