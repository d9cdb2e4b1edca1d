#!/usr/bin/env bash
# A standalone, rootful BuildKit daemon for @pulumi/docker-build, and the buildx "remote" builder
# that points at it. The provider never uses dockerd's embedded BuildKit: without an explicit
# builder it creates a docker-container builder that pulls moby/buildkit from the internet, which
# machines like ours cannot reach. So we build buildkitd from its Go module and run it ourselves.
#
#   tools/buildkit.sh build                      build (or reuse) buildkitd + buildctl; prints their dir
#   tools/buildkit.sh start DIR [REGISTRY...]    start buildkitd with its state, socket and log in DIR
#                                                (idempotent), trusting each plain-HTTP registry
#                                                (host:port); writes the builder into $BUILDX_CONFIG
#                                                (default DIR/buildx) and prints the builder's name
#   tools/buildkit.sh stop DIR                   stop the daemon started in DIR
#
# Progress goes to stderr. The binaries are cached under
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/buildkit/<version>/ (a cold build takes ~7 min on 2 cores).
set -euo pipefail

VERSION=v0.31.0
MODULE=github.com/moby/buildkit
# shellcheck source=tools/lib/cached-build.sh
source "$(dirname "$0")/lib/cached-build.sh"
# shellcheck source=tools/lib/stop-pid.sh
source "$(dirname "$0")/lib/stop-pid.sh"

log() { printf 'buildkit: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# The module's go.mod has `exclude` directives, so `go install MODULE/cmd/buildkitd@VERSION` is
# refused: build inside a writable copy of the module's source instead.
build_buildkit() {
  local work=$1 out=$2 src start=$SECONDS
  command -v go >/dev/null || die "go is needed to build buildkitd"
  log "building buildkitd and buildctl $VERSION from $MODULE (cold builds take ~7 min on 2 cores)"
  src=$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $src ]] || die "go mod download $MODULE@$VERSION gave no source directory"
  cp -r "$src" "$work/src"
  chmod -R u+w "$work/src"
  if ! (cd "$work/src" && go build -trimpath -buildvcs=false \
    -ldflags "-X $MODULE/version.Version=$VERSION" -o "$out/" ./cmd/buildkitd ./cmd/buildctl) >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    die "go build of buildkitd failed"
  fi
  log "built buildkitd $VERSION in $((SECONDS - start)) s"
}

build() { cached_build buildkit "$VERSION" buildctl build_buildkit; }

# The builder's name: stable for a state directory, distinct between directories.
builder_name() { printf 'jetson-fleet-%s\n' "$(printf '%s' "$1" | sha256sum | cut -c1-12)"; }

running() { [[ -s $1/buildkitd.pid ]] && kill -0 "$(cat "$1/buildkitd.pid")" 2>/dev/null; }

start() {
  local dir=${1:?usage: tools/buildkit.sh start DIR [REGISTRY...]} bin config name reg buildx i
  shift
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  bin=$(build)
  config=$(for reg in "$@"; do printf '[registry."%s"]\n  http = true\n  insecure = true\n' "$reg"; done)
  # A daemon started with another registry list is restarted with this one.
  if running "$dir" && [[ "$(cat "$dir/buildkitd.toml")" != "$config" ]]; then
    stop "$dir"
  fi
  if ! running "$dir"; then
    printf '%s\n' "$config" >"$dir/buildkitd.toml"
    rm -f "$dir/buildkitd.sock"
    log "starting buildkitd (log: $dir/buildkitd.log)"
    setsid "$bin/buildkitd" --config "$dir/buildkitd.toml" --root "$dir/root" --addr "unix://$dir/buildkitd.sock" \
      --oci-worker=true --containerd-worker=false </dev/null >"$dir/buildkitd.log" 2>&1 &
    echo $! >"$dir/buildkitd.pid"
    for ((i = 0; i < 300; i++)); do
      if "$bin/buildctl" --addr "unix://$dir/buildkitd.sock" debug workers >/dev/null 2>&1; then break; fi
      running "$dir" || {
        tail -n 20 "$dir/buildkitd.log" >&2
        die "buildkitd exited"
      }
      sleep 0.1
    done
    ((i < 300)) || die "buildkitd did not answer on $dir/buildkitd.sock in 30 s"
  fi
  name=$(builder_name "$dir")
  buildx=${BUILDX_CONFIG:-$dir/buildx}
  mkdir -p "$buildx/instances"
  printf '{"Name":"%s","Driver":"remote","Nodes":[{"Name":"%s0","Endpoint":"unix://%s","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}\n' \
    "$name" "$name" "$dir/buildkitd.sock" >"$buildx/instances/$name"
  printf '%s\n' "$name"
}

stop() {
  local dir=${1:?usage: tools/buildkit.sh stop DIR}
  stop_pid "$dir/buildkitd.pid"
  rm -f "$dir/buildkitd.sock"
}

case ${1:-} in
  build) build ;;
  start)
    shift
    start "$@"
    ;;
  stop)
    shift
    stop "$@"
    ;;
  *) die "usage: tools/buildkit.sh build | start DIR [REGISTRY...] | stop DIR" ;;
esac
