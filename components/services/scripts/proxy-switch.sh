#!/usr/bin/env bash
# The containers mode's host step for one blue-green service behind the stack's proxy (HAProxy,
# images/proxy, one per host per stack; its files in proxyDirectory(PROJECT), proxy-lib.sh):
#
#   ACTION=config   installs the proxy's config template PROXY_CONFIG and, when the proxy
#                   container runs, loads it by a graceful reload. A template haproxy refuses is
#                   put back: the proxy keeps serving the previous one, and the step fails. Before
#                   the proxy exists, what holds its ports goes (a one-time gap): the compose
#                   project's proxy (a stack switching from the compose mode) and the containers
#                   named after a BLUE_GREEN service (one recreated until now).
#   ACTION=switch   waits until CONTAINER (the new version, already started beside the old one)
#                   is healthy, then routes SERVICE's ports to it by a graceful reload and waits
#                   for the old worker's connections to drain. Not healthy: CONTAINER is removed,
#                   traffic stays on the previous version, and the step fails naming the host, the
#                   service, the image and the health output.
#   ACTION=delete   the service left the stack: when the proxy still routes SERVICE to CONTAINER,
#                   its route is emptied (503 / closed) and the proxy reloaded; otherwise nothing.
#
# Idempotent: a re-run of a switch to the container the proxy already routes to waits for its
# health and changes nothing (and never removes that container); an unchanged template reloads nothing. Prints
# `switched SERVICE to CONTAINER` on stdout after a switch; messages go to stderr.
#
#   ACTION           config | switch | delete
#   PROJECT          the stack's compose project name (the proxy directory's name)
#   HOST_NAME        the host's name in messages (default: hostname)
#   PROXY_CONTAINER  the proxy container's name
#   PROXY_CONFIG     config: the template (renderProxyConfig)
#   BLUE_GREEN       config: the blue-green services, space-separated
#   SERVICE          switch, delete: the service's name
#   CONTAINER        switch, delete: the new (switch) or removed (delete) version's container name
#   IMAGE            switch: the new version's image, for messages
#   HEALTH_TIMEOUT   switch: seconds to wait for CONTAINER to be healthy (default 120)
#   PROXY_ROOT       default /var/lib/jetson-fleet/proxy (PROXY_STATE_ROOT), as compose-apply.sh names it
set -euo pipefail

action=${ACTION:?ACTION is required}
host=${HOST_NAME:-$(hostname)}
project=${PROJECT:?PROJECT is required}
proxy=${PROXY_CONTAINER:?PROXY_CONTAINER is required}
dir=${PROXY_ROOT:-/var/lib/jetson-fleet/proxy}/$project
log() { printf 'proxy-switch: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# Also keeps the name a single directory below the state root.
[[ $project =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
  || die "host $host: PROJECT=$project is not a compose project name; expected lower-case letters, digits, - and _; nothing was changed"
[[ $action =~ ^(config|switch|delete)$ ]] || die "host $host: ACTION=$action: expected config, switch or delete; nothing was changed"

# shellcheck source-path=SCRIPTDIR source=proxy-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/proxy-lib.sh" # inlined by renderServiceScript
umask 022

case $action in
  config)
    [[ -n ${PROXY_CONFIG:-} ]] || die "host $host: PROXY_CONFIG is empty; expected the proxy's config template; nothing was changed"
    proxy_install "$dir" "$PROXY_CONFIG" || die "host $host: the proxy config of $project was not installed: $proxy_error"
    if ! docker inspect "$proxy" >/dev/null 2>&1; then
      read -ra blue_green <<<"${BLUE_GREEN:-}"
      holders=$(
        docker ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=jetson-fleet-proxy"
        for svc in "${blue_green[@]}"; do docker ps -aq --filter "label=jetson-fleet.project=$project" --filter "name=^/$svc\$"; done
      )
      if [[ -n $holders ]]; then
        xargs docker rm -f <<<"$holders" >/dev/null
        log "host $host: removed what held the ports the proxy of $project takes: $(tr '\n' ' ' <<<"$holders")"
      fi
    fi
    if ! _proxy_running "$proxy"; then
      log "host $host: installed the proxy config of $project; $proxy is not running, it loads the config when it starts"
    elif proxy_reload "$dir" "$proxy"; then
      log "host $host: the proxy $proxy serves the config of $project"
    else
      die "host $host: the proxy $proxy kept its previous config: $proxy_error"
    fi
    ;;
  switch)
    service=${SERVICE:?SERVICE is required}
    container=${CONTAINER:?CONTAINER is required}
    image=${IMAGE:-its new image}
    _proxy_name container "$container" || die "host $host: $proxy_error; nothing was changed"
    previous=none
    [[ ! -s $dir/targets/$service ]] || previous=$(<"$dir/targets/$service")
    if ! wait_container_healthy "$container" "${HEALTH_TIMEOUT:-120}"; then
      # The container the proxy already routes to (a re-run, or one made again under its name) is
      # what serves: it is never removed.
      [[ $previous != "$container" ]] \
        || die "host $host: service $service: $container, which the proxy routes to, is not healthy: $health_output"
      docker rm -f "$container" >/dev/null 2>&1 || true
      die "host $host: service $service is not healthy after the update to $image; health output: $health_output; traffic stayed on the previous version ($previous), the new container was removed"
    fi
    proxy_switch "$dir" "$proxy" "$service" "$container" \
      || die "host $host: service $service was not switched to $container ($image): $proxy_error; traffic stayed on the previous version ($previous)"
    echo "switched $service to $container"
    ;;
  delete)
    service=${SERVICE:?SERVICE is required}
    container=${CONTAINER:?CONTAINER is required}
    proxy_forget "$dir" "$proxy" "$service" "$container" \
      || die "host $host: the proxy $proxy still routes $service to $container: $proxy_error"
    ;;
esac
