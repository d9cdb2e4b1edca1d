#!/usr/bin/env bash
# Applies the compose file read from standard input as project $PROJECT on this host, gated on
# health: records what runs now, pulls, applies, waits until every service is healthy (or running,
# without a health check). When one is not, the host goes back to the previous compose file (the
# previous digests), waits for it, and the script exits 1 naming the host, the service and the
# health output. Idempotent: an unchanged file recreates nothing.
#
# ACTION=delete is the apply step's delete: `down --remove-orphans` and the project's state files
# go, but only when the host's current file is the one that step applied (FILE_SHA256) and no
# other step that applied the very same file still stands. Pulumi replaces a step by creating the
# new one first, so the old one's delete finds a newer file (or the same file claimed again) and
# leaves it running. Which steps claim a file: STATE_DIR/PROJECT/owners, one sha256 line per
# created step (ACTION=create adds its line, delete takes its own out). Named volumes and images stay: they may hold data, and a later apply reuses them.
#
# A blue-green service (BLUE_GREEN) is reached through the proxy, which holds its ports. When its
# settings changed and the proxy runs, its new version starts beside the old one first (compose's
# scale to 2 without recreating), and must get healthy: then the proxy switches to it, the old one
# drains and is removed, and the rest of the file is applied as above. A new version that does not
# get healthy never takes a request: it is removed, nothing else on the host changed, and the
# script exits 1 naming the host, the service and the health output. A run cut off midway is
# finished by the next one: of two versions of a service, the one the proxy routes to stays.
#
# Applies on one host run one at a time, whatever their project: they share its ports, GPU, memory
# and image pulls, and a health wait or rollback measured beside another project's switch would
# blame the wrong release. Each takes an exclusive lock on STATE_DIR/apply.lock for its whole run;
# so does a delete.
#
#   PROJECT         compose project name (lower-case letters, digits, - and _)
#   ACTION          create (default) or delete
#   FILE_SHA256     delete: the sha256 of the file the step applied
#   HOST_NAME       the host's name in messages (default: hostname)
#   HEALTH_TIMEOUT  seconds to wait for health (default 120)
#   LOCK_TIMEOUT    seconds to wait for another apply on this host to finish (default 900)
#   STATE_DIR       where compose files are kept (default /var/lib/jetson-fleet/compose)
#   PROXY_ROOT      where the proxies' files are kept (default /var/lib/jetson-fleet/proxy)
#   BLUE_GREEN      the services updated blue-green, space-separated (see below); with them,
#   PROXY_CONFIG    the proxy's haproxy.cfg template (proxy-lib.sh), for the proxy service jetson-fleet-proxy
#   BIND_SOURCES    the bind mounts' host directories, one "OWNER PATH" line each (OWNER uid[:gid]):
#                   each missing one is made before compose starts anything (compose refuses a
#                   missing bind source), mode 0755, owned by OWNER; missing parents root's, 0755.
#                   An existing path (directory, file or link) is never changed: it may be data.
set -euo pipefail

project=${PROJECT:?PROJECT is required}
action=${ACTION:-create}
host=${HOST_NAME:-$(hostname)}
timeout=${HEALTH_TIMEOUT:-120}
lock_timeout=${LOCK_TIMEOUT:-900}
root=${STATE_DIR:-/var/lib/jetson-fleet/compose}
dir=$root/$project
proxy_dir=${PROXY_ROOT:-/var/lib/jetson-fleet/proxy}/$project
log() { printf 'compose-apply: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# Also keeps the name a single directory below the state dir.
[[ $project =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
  || die "host $host: PROJECT=$project is not a compose project name; expected lower-case letters, digits, - and _; nothing was changed"
[[ $action =~ ^(create|delete)$ ]] || die "host $host: ACTION=$action: expected create or delete; nothing was changed"
if [[ $action == delete ]]; then
  want=${FILE_SHA256:-}
  [[ $want =~ ^[0-9a-f]{64}$ ]] || die "host $host: FILE_SHA256=$want: expected the sha256 of the applied file; nothing was changed"
fi

compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
fi
need_compose() {
  ((${#compose[@]})) \
    || die "host $host: neither 'docker compose' nor 'docker-compose' is installed; expected one of them; nothing was changed"
}
# A delete with nothing to remove needs no compose tool.
[[ $action == delete ]] || need_compose
# run_compose FILE ARGS...
run_compose() {
  local file=$1
  shift
  "${compose[@]}" -p "$project" -f "$file" "$@"
}

umask 077
mkdir -p "$root"
command -v flock >/dev/null || die "host $host: flock (util-linux) is not installed; nothing was changed"
lock=$root/apply.lock
exec 9>>"$lock"
# The holder writes who it is just after it takes the lock: a waiter that reads in between gives it a moment.
holder() {
  local text='' _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    text=$(cat "$lock" 2>/dev/null) || true
    [[ -z $text ]] || break
    sleep 0.2
  done
  printf '%s' "${text:-holder unknown}"
}
if ! flock -n 9; then
  log "host $host: waiting up to ${lock_timeout}s for the apply holding $lock ($(holder))"
  waited=$SECONDS
  flock -w "$lock_timeout" 9 \
    || die "host $host: another apply still holds $lock after ${lock_timeout}s ($(holder)); nothing was changed"
  log "host $host: took $lock after $((SECONDS - waited))s"
fi
# Who holds it, for the message of the next one that waits (the lock is on the file, not its text).
printf 'project %s, pid %s, since %s\n' "$project" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$lock"

# remove_project: the delete (see the top). Its own claim on the file goes first, whatever follows.
remove_project() {
  local current line taken=false
  local -a kept=()
  if [[ ! -f $dir/current.yaml ]]; then
    log "host $host: project $project: nothing to remove, no compose file was applied here"
    return 0
  fi
  if [[ -f $dir/owners ]]; then
    while IFS= read -r line; do
      if ! $taken && [[ $line == "$want" ]]; then taken=true; else kept+=("$line"); fi
    done <"$dir/owners"
    if ((${#kept[@]})); then printf '%s\n' "${kept[@]}" >"$dir/owners.tmp"; else : >"$dir/owners.tmp"; fi
    mv "$dir/owners.tmp" "$dir/owners"
  fi
  current=$(sha256sum "$dir/current.yaml" | cut -d' ' -f1)
  if [[ $current != "$want" ]]; then
    log "host $host: project $project: left running: the host runs a newer compose file (sha256 $current), not this step's ($want)"
    return 0
  fi
  if [[ -f $dir/owners ]] && grep -qxF "$want" "$dir/owners"; then
    log "host $host: project $project: left running: another apply step applied this same file and still stands"
    return 0
  fi
  need_compose
  run_compose "$dir/current.yaml" down --remove-orphans 2>"$dir/down.err" \
    || die "host $host: project $project: compose down failed: $(tail -n 5 "$dir/down.err")"
  rm -rf -- "$dir" "$proxy_dir"
  log "host $host: project $project: removed its containers and networks; its named volumes and images stay on this host"
}
if [[ $action == delete ]]; then
  remove_project
  exit 0
fi

mkdir -p "$dir"
cat >"$dir/next.yaml"
run_compose "$dir/next.yaml" config -q 2>"$dir/config.err" \
  || die "host $host: the compose file is not valid: $(cat "$dir/config.err"); nothing was changed"

# What runs now, service=image (the previous digests), and which containers: to tell changed from unchanged.
containers() {
  local ids
  mapfile -t ids < <(docker ps -aq --filter "label=com.docker.compose.project=$project")
  ((${#ids[@]} == 0)) || docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}={{.Config.Image}} {{.Id}}' "${ids[@]}" | sort
}
before=$(containers)
cut -d' ' -f1 <<<"$before" >"$dir/previous-digests"

# Pull before anything stops: the switch then takes only stop, start and the health check.
run_compose "$dir/next.yaml" pull -q 2>"$dir/pull.err" \
  || die "host $host: pulling the images failed: $(tail -n 5 "$dir/pull.err"); nothing was changed"

# shellcheck source-path=SCRIPTDIR source=bind-sources-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bind-sources-lib.sh" # inlined by renderServiceScript
make_bind_sources || exit 1
# shellcheck source-path=SCRIPTDIR source=proxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/proxy-lib.sh" # inlined by renderServiceScript

read -ra blue_green <<<"${BLUE_GREEN:-}"
proxy_service=jetson-fleet-proxy
if ((${#blue_green[@]})); then
  proxy_install "$proxy_dir" "${PROXY_CONFIG:?PROXY_CONFIG is required with BLUE_GREEN}"
fi
# service_containers SERVICE: the ids of its containers, newest first.
service_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"
}
container_name() { docker inspect -f '{{.Name}}' "$1" | sed 's|^/||'; }
# running_proxy: the proxy's container id when it runs, else nothing.
running_proxy() {
  local id
  id=$(service_containers "$proxy_service" | head -n 1)
  [[ -n $id && $(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null) == true ]] && echo "$id"
  return 0
}
# settle SERVICE: of several containers of a blue-green service (a run cut off midway), the one
# the proxy routes to stays (else the newest); the others go.
settle() {
  local svc=$1 target keep id
  local -a ids
  mapfile -t ids < <(service_containers "$svc")
  ((${#ids[@]} > 1)) || return 0
  target=$(cat "$proxy_dir/targets/$svc" 2>/dev/null || true)
  keep=${ids[0]}
  for id in "${ids[@]}"; do [[ $(container_name "$id") != "$target" ]] || keep=$id; done
  for id in "${ids[@]}"; do
    [[ $id == "$keep" ]] || { docker rm -f "$id" >/dev/null && log "host $host: service $svc: removed $(container_name "$keep" 2>/dev/null || echo "$id")'s leftover twin $id of a run cut off midway"; }
  done
}
# follow: the proxy routes each blue-green service to its (one) container, after compose changed them.
follow() {
  local svc id proxy
  proxy=$(running_proxy)
  [[ -n $proxy ]] || return 0
  for svc in "${blue_green[@]}"; do
    id=$(service_containers "$svc" | head -n 1)
    [[ -n $id ]] || continue
    proxy_switch "$proxy_dir" "$proxy" "$svc" "$(container_name "$id")" \
      || die "host $host: the proxy could not route service $svc to its container: $proxy_error"
  done
}

# The blue-green switch, before anything else changes (see the top).
declare -A old_of=() new_of=()
proxy=$(running_proxy)
if ((${#blue_green[@]})) && [[ -n $proxy ]]; then
  for svc in "${blue_green[@]}"; do
    settle "$svc"
    old=$(service_containers "$svc" | head -n 1)
    # A new service, or one not yet behind the proxy: compose creates it below.
    [[ -n $old && $(cat "$proxy_dir/targets/$svc" 2>/dev/null) == "$(container_name "$old")" ]] || continue
    want=$(run_compose "$dir/next.yaml" config --hash "$svc" | cut -d' ' -f2)
    [[ $(docker inspect -f '{{index .Config.Labels "com.docker.compose.config-hash"}}' "$old") != "$want" ]] || continue
    run_compose "$dir/next.yaml" up -d --no-deps --no-recreate --scale "$svc=2" "$svc" 2>"$dir/up.err" \
      || die "host $host: service $svc: starting its new version beside the old one failed: $(tail -n 5 "$dir/up.err" | tr '\n' ' ')"
    old_of[$svc]=$old
    new_of[$svc]=$(service_containers "$svc" | grep -vx "$old" | head -n 1)
  done
  for svc in "${!new_of[@]}"; do
    if ! wait_container_healthy "${new_of[$svc]}" "$timeout"; then
      image=$(docker inspect -f '{{.Config.Image}}' "${new_of[$svc]}" 2>/dev/null || echo "its new image")
      docker rm -f "${new_of[@]}" >/dev/null 2>&1 || true
      die "host $host: service $svc is not healthy after the update to $image; health output: $health_output; traffic stayed on the previous version ($(container_name "${old_of[$svc]}")), the new container was removed; nothing else was changed on this host"
    fi
  done
  for svc in "${!new_of[@]}"; do
    proxy_switch "$proxy_dir" "$proxy" "$svc" "$(container_name "${new_of[$svc]}")" \
      || die "host $host: service $svc: the proxy did not switch to its new version: $proxy_error; it still serves the previous one"
    docker stop "${old_of[$svc]}" >/dev/null && docker rm "${old_of[$svc]}" >/dev/null
    log "host $host: service $svc: switched to $(container_name "${new_of[$svc]}"), the previous version drained and removed"
  done
fi

failed_service=""
failed_output=""
# wait_healthy FILE: every service of FILE running, and healthy when it has a health check.
# docker-compose 1.x takes a second per call, so the containers are looked up once. A service
# whose container is missing (compose up stopped at an unhealthy dependency) fails only after the
# others were checked, so the message names the unhealthy one.
wait_healthy() {
  local file=$1 deadline svc cid state status health started pending pending_state present=() missing=()
  local -A cids=()
  deadline=$((SECONDS + timeout))
  for svc in $(run_compose "$file" config --services); do
    cid=$(run_compose "$file" ps -q "$svc" 2>/dev/null | head -n 1)
    if [[ -n $cid ]]; then
      cids[$svc]=$cid
      present+=("$svc")
    else
      missing+=("$svc")
    fi
  done
  while :; do
    # The first service (in the file's order) still starting: the one a timeout names.
    pending=""
    for svc in "${present[@]}"; do
      cid=${cids[$svc]}
      state=$(docker inspect -f '{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.StartedAt}}' "$cid")
      IFS='|' read -r status health started <<<"$state"
      if [[ $health == unhealthy || $status == exited || $status == dead || $status == restarting ]]; then
        failed_service=$svc
        # The last health check's output, on one line.
        failed_output=$(docker inspect -f '{{$out := ""}}{{if .State.Health}}{{range .State.Health.Log}}{{$out = .Output}}{{end}}{{end}}{{$out}}' "$cid" \
          | tr '\n' ' ' | sed 's/ *$//')
        [[ -n $failed_output ]] || failed_output="container $status; last log lines: $(docker logs --tail 5 "$cid" 2>&1 | tr '\n' ' ')"
        return 1
      fi
      [[ -z $pending ]] || continue
      if [[ $status != running || $health == starting ]]; then
        pending=$svc pending_state=$state
      elif [[ -z $health ]] && (($(date +%s) - $(date -d "$started" +%s) < 2)); then
        # No health check: it must stay up for a moment, not just have started.
        pending=$svc pending_state=$state
      fi
    done
    if ((${#missing[@]})) && { [[ -z $pending ]] || ((SECONDS >= deadline)); }; then
      failed_service=${missing[0]}
      failed_output="no container was created: $(tail -n 3 "$dir/up.err" | tr '\n' ' ')"
      return 1
    fi
    [[ -n $pending ]] || return 0
    if ((SECONDS >= deadline)); then
      failed_service=$pending
      failed_output="not healthy after ${timeout}s (state: $pending_state)"
      return 1
    fi
    sleep 0.5
  done
}

# A stack switching from the containers mode: its containers (labelled with this project) hold the
# services' names and ports, and Pulumi deletes them only after this step. They go first.
switched=$(docker ps -aq --filter "label=jetson-fleet.project=$project")
if [[ -n $switched ]]; then
  xargs docker rm -f <<<"$switched" >/dev/null
  log "host $host: removed the containers mode's containers of $project (the stack switched to the compose mode)"
fi

# compose up fails when a dependency never gets healthy; wait_healthy then names that service.
up_ok=true
run_compose "$dir/next.yaml" up -d --remove-orphans 2>"$dir/up.err" || up_ok=false
if wait_healthy "$dir/next.yaml" && $up_ok; then
  follow
  mv "$dir/next.yaml" "$dir/current.yaml"
  # This step now claims the file.
  sha256sum "$dir/current.yaml" | cut -d' ' -f1 >>"$dir/owners"
  after=$(containers)
  if [[ $after == "$before" ]]; then echo "unchanged"; else echo "updated"; fi
  cut -d' ' -f1 <<<"$after"
  exit 0
fi

[[ -n $failed_service ]] || {
  failed_service="(compose up)"
  failed_output=$(tail -n 5 "$dir/up.err" | tr '\n' ' ')
}
new_image=$(run_compose "$dir/next.yaml" config | sed -n "/^  $failed_service:\$/,/^  [^ ]/s/^    image: //p" | head -n 1)
message="host $host: service $failed_service is not healthy after the update to ${new_image:-its new image}; health output: $failed_output"
if [[ ! -f $dir/current.yaml ]]; then
  die "$message; no previous version on this host to roll back to"
fi
log "$message; rolling back to the previous digests"
failed_service=""
if run_compose "$dir/current.yaml" up -d --remove-orphans 2>"$dir/up.err" && wait_healthy "$dir/current.yaml"; then
  follow
  die "$message; rolled back to the previous digests ($(tr '\n' ' ' <"$dir/previous-digests" | sed 's/ $//')), healthy again"
fi
die "$message; the rollback to the previous digests failed too: service ${failed_service:-?}: ${failed_output:-$(tail -n 5 "$dir/up.err")}"
