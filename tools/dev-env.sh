#!/usr/bin/env bash
# What the dev stack runs on this machine: a registry at the dev stack's registry.server
# (127.0.0.1:5000) holding the stand-in L4T base images, a buildkitd with its buildx builder, and
# the simulated Jetsons the stack deploys to. Registry and buildkitd keep their state under
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/dev, so layer cache and pushed images survive
# restarts; the sims keep their identities (host keys, addresses) in the cache too.
#
#   tools/dev-env.sh start    start everything (idempotent); prints
#                             `export BUILDX_CONFIG=... BUILDX_BUILDER=... JETSON_DEV_SIMS=...`
#                             (JETSON_DEV_SIMS: a file with one JSON line per sim, tools/jetson-sim.sh's)
#   tools/dev-env.sh stop     stop everything, the sims included (their identities stay in the cache)
#   tools/dev-env.sh stop-sims  stop the sims and their tunnels only
#
# Registry contents: the L4T bases and the stand-ins for the default stack's external images
# (images/stand-ins). Sims: JETSON_DEV_HOSTS of them (default 3), jetson-dev-1..N
# (JETSON_SIM_PREFIX), sim i at 127.0.1.i (JETSON_SIM_ADDRESS_NET) with the dev stack's service
# ports published there (JETSON_SIM_PUBLISH), so each host's services answer on an address of its own.
# Each reaches the registry at its own 127.0.0.1:5000 through an SSH tunnel, as a Jetson on a
# lab network reaches the fleet's registry (loopback registries need no TLS).
#
# Needs tools/machine.sh first (docker-registry, skopeo, dockerd) and Node.js on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY=127.0.0.1:5000
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
dir=$cache/dev
log() { printf 'dev-env: %s\n' "$*" >&2; }

registry_up() { curl -fs -o /dev/null "http://$REGISTRY/v2/"; }

start_registry() {
  registry_up && return
  mkdir -p "$dir/registry"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n' \
    "$dir/registry/data" "$REGISTRY" >"$dir/registry/config.yml"
  log "starting the registry at $REGISTRY (log: $dir/registry/registry.log)"
  setsid /usr/bin/docker-registry serve "$dir/registry/config.yml" </dev/null >"$dir/registry/registry.log" 2>&1 &
  echo $! >"$dir/registry/registry.pid"
  for _ in $(seq 1 100); do
    registry_up && return
    sleep 0.1
  done
  tail -n 20 "$dir/registry/registry.log" >&2
  log "error: the registry did not answer at $REGISTRY"
  exit 1
}

# buildkitd sees no dockerd images: the stand-in bases go into the registry, where the dev stack's
# images[].baseImages point.
push_bases() {
  local vars devel runtime
  vars=$(images/base/build.sh)
  devel=$(sed -n 's/^L4T_SIM_DEVEL=//p' <<<"$vars")
  runtime=$(sed -n 's/^L4T_SIM_RUNTIME=//p' <<<"$vars")
  skopeo copy --quiet --dest-tls-verify=false "docker-daemon:$devel" "docker://$REGISTRY/l4t-sim:devel" >&2
  skopeo copy --quiet --dest-tls-verify=false "docker-daemon:$runtime" "docker://$REGISTRY/l4t-sim:runtime" >&2
}

# Tests run their own sims beside the dev stack's by setting both.
export JETSON_SIM_PREFIX=${JETSON_SIM_PREFIX:-jetson-dev} JETSON_SIM_ADDRESS_NET=${JETSON_SIM_ADDRESS_NET:-127.0.1}

# The host ports the dev stack's services claim (a host-network service its targets, a bridge one
# its published ports): the sims publish exactly these.
stack_ports() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  node --input-type=module -e '
    import { readFileSync } from "node:fs";
    import { parse } from "yaml";
    const services = parse(readFileSync("Pulumi.dev.yaml", "utf8")).config["jetson-fleet:services"] ?? [];
    const ports = services.flatMap((s) => (s.ports ?? []).map((p) => `${s.network === "host" ? p.target : (p.published ?? p.target)}/${p.protocol ?? "tcp"}`));
    console.log([...new Set(ports)].join(" "));'
}

# One SSH tunnel per sim: the sim's 127.0.0.1:PORT is this machine's for each registry of
# JETSON_DEV_REGISTRIES (loopback host:port, default the dev registry). Restarted when it died.
read -ra registries <<<"${JETSON_DEV_REGISTRIES:-$REGISTRY}"
# reaches SIM: every registry answers the sim's /v2/ (401 from one with credentials is an answer).
reaches() {
  local reg code
  for reg in "${registries[@]}"; do
    code=$(/usr/bin/docker exec "$1" curl -s -o /dev/null -w '%{http_code}' "http://$reg/v2/") || return 1
    [[ $code == 200 || $code == 401 ]] || return 1
  done
}
start_tunnels() {
  local sims=$1 vars line name address port key pidfile known reg forwards=()
  for reg in "${registries[@]}"; do
    [[ $reg =~ ^127\.0\.0\.1:[0-9]+$ ]] || { log "JETSON_DEV_REGISTRIES: $reg: expected 127.0.0.1:PORT"; exit 2; }
    forwards+=(-R "$reg:$reg")
  done
  vars=$(tools/jetson-sim.sh env)
  eval "$vars"
  while IFS= read -r line; do
    read -r name address port key < <(jq -r '"\(.name) \(.address) \(.port) \(.hostKey)"' <<<"$line")
    pidfile=$dir/tunnels/$name.pid
    known=$dir/tunnels/$name.known_hosts
    mkdir -p "$dir/tunnels"
    if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && reaches "$name"; then
      continue
    fi
    if [[ -s $pidfile ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    printf '[%s]:%s %s\n' "$address" "$port" "$key" >"$known"
    log "tunnel: $name's ${registries[*]} -> this machine's"
    setsid ssh -N -i "$JETSON_SIM_PRIVATE_KEY" -p "$port" -o "UserKnownHostsFile=$known" -o StrictHostKeyChecking=yes \
      -o BatchMode=yes -o IdentitiesOnly=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=10 \
      "${forwards[@]}" "jetson@$address" </dev/null >"$dir/tunnels/$name.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      reaches "$name" && break
      sleep 0.2
    done
    reaches "$name" || {
      cat "$dir/tunnels/$name.log" >&2
      log "error: $name does not reach ${registries[*]} through its tunnel"
      exit 1
    }
  done <"$sims"
}

stop_tunnels() {
  local pidfile
  for pidfile in "$dir"/tunnels/"$JETSON_SIM_PREFIX"-*.pid; do
    [[ -e $pidfile ]] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

# The stand-ins for the external images of the dev stack's services (images/stand-ins/): each goes
# in as stand-in/<name>:<version stood in for>, the tag Pulumi.dev.yaml names and the program
# resolves to a digest.
push_stand_ins() {
  local vars line image name version
  vars=$(images/stand-ins/build.sh)
  while IFS= read -r line; do
    [[ $line =~ ^STAND_IN_[A-Z]+=jetson-fleet/stand-in-([a-z0-9-]+):(.+)-[0-9a-f]{12}$ ]] || continue
    image=${line#*=} name=${BASH_REMATCH[1]} version=${BASH_REMATCH[2]}
    skopeo copy --quiet --dest-tls-verify=false "docker-daemon:$image" "docker://$REGISTRY/stand-in/$name:$version" >&2
  done <<<"$vars"
}

# The blue/green proxy (images/proxy): in as jetson-fleet/proxy:<HAProxy version>, the reference
# the dev stack's proxy config names.
push_proxy() {
  local line image
  line=$(images/proxy/build.sh | tail -n 1)
  [[ $line =~ ^PROXY_IMAGE=(jetson-fleet/proxy:([0-9.]+)-[0-9a-f]{12})$ ]] || { log "images/proxy/build.sh printed '$line'"; exit 1; }
  image=${BASH_REMATCH[1]}
  skopeo copy --quiet --dest-tls-verify=false "docker-daemon:$image" "docker://$REGISTRY/jetson-fleet/proxy:${BASH_REMATCH[2]}" >&2
}

case ${1:-} in
  start)
    start_registry
    push_bases
    push_stand_ins
    push_proxy
    mkdir -p "$dir/bk"
    export BUILDX_CONFIG=$dir/buildx
    builder=$(tools/buildkit.sh start "$dir/bk" "$REGISTRY" | tail -n 1)
    count=${JETSON_DEV_HOSTS:-3}
    [[ $count =~ ^[0-9]{1,2}$ ]] || { log "JETSON_DEV_HOSTS=$count: expected a number of hosts from 0 to 99"; exit 2; }
    sims=$dir/$JETSON_SIM_PREFIX.jsonl
    # 0: the registry and buildkitd only (tests that build and push, with no host).
    if ((count > 0)); then
      JETSON_SIM_PUBLISH=${JETSON_SIM_PUBLISH-$(stack_ports)} tools/jetson-sim.sh start "$count" >"$sims.tmp"
      mv "$sims.tmp" "$sims"
      start_tunnels "$sims"
    else
      : >"$sims"
    fi
    printf 'export BUILDX_CONFIG=%q BUILDX_BUILDER=%q JETSON_DEV_SIMS=%q\n' "$BUILDX_CONFIG" "$builder" "$sims"
    ;;
  stop-sims)
    stop_tunnels
    tools/jetson-sim.sh stop
    ;;
  stop)
    stop_tunnels
    tools/jetson-sim.sh stop
    tools/buildkit.sh stop "$dir/bk"
    if [[ -s $dir/registry/registry.pid ]]; then
      kill "$(cat "$dir/registry/registry.pid")" 2>/dev/null || true
      rm -f "$dir/registry/registry.pid"
    fi
    ;;
  *)
    log "usage: tools/dev-env.sh start | stop | stop-sims"
    exit 2
    ;;
esac
