#!/usr/bin/env bash
# What the dev stack builds and pushes with on this machine: a registry at the dev stack's
# registry.server (127.0.0.1:5000) holding the stand-in L4T base images, and a buildkitd with its
# buildx builder. Both keep their state under ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/dev, so
# layer cache and pushed images survive restarts.
#
#   tools/dev-env.sh start    start both (idempotent); prints `export BUILDX_CONFIG=... BUILDX_BUILDER=...`
#   tools/dev-env.sh stop     stop both
#
# Needs tools/machine.sh first (docker-registry, skopeo, dockerd).
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

case ${1:-} in
  start)
    start_registry
    push_bases
    push_stand_ins
    mkdir -p "$dir/bk"
    export BUILDX_CONFIG=$dir/buildx
    builder=$(tools/buildkit.sh start "$dir/bk" "$REGISTRY" | tail -n 1)
    printf 'export BUILDX_CONFIG=%q BUILDX_BUILDER=%q\n' "$BUILDX_CONFIG" "$builder"
    ;;
  stop)
    tools/buildkit.sh stop "$dir/bk"
    if [[ -s $dir/registry/registry.pid ]]; then
      kill "$(cat "$dir/registry/registry.pid")" 2>/dev/null || true
      rm -f "$dir/registry/registry.pid"
    fi
    ;;
  *)
    log "usage: tools/dev-env.sh start | stop"
    exit 2
    ;;
esac
