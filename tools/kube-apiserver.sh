#!/usr/bin/env bash
# A real Kubernetes API server (etcd + kube-apiserver, no kubelet, no controllers) for the engine
# tier: the Kubernetes fleet is applied to it and read back with kubectl. Nothing runs pods; what
# is proven is that Kubernetes itself (schema, defaulting, validation, admission) accepts every
# object we send, and that a second `up` changes nothing.
#
#   tools/kube-apiserver.sh build        build (or reuse) kube-apiserver + kubectl; prints their dir
#   tools/kube-apiserver.sh start DIR    start etcd and kube-apiserver with their state, certificates
#                                        and logs in DIR (idempotent); writes DIR/kubeconfig (cluster
#                                        admin, client certificate) and prints its path
#   tools/kube-apiserver.sh stop DIR     stop what `start` started in DIR
#
# Progress and timings go to stderr. The binaries are cached under
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/kubernetes/<version>/. etcd is Debian's etcd-server
# (tools/machine.sh installs it).
set -euo pipefail

VERSION=v1.34.4
MODULE=k8s.io/kubernetes
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}

log() { printf 'kube-apiserver: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging/src/..., which the
# published module zip does not contain, so `go install` is refused. We build in a writable copy
# whose replaces point at the same staging modules as published (v0.X.Y for v1.X.Y), and only the
# two binaries we need, without debug info (a cold build is the slow part of the engine tier).
build() {
  local dir=$cache/kubernetes/$VERSION tmp src start buildlog staging m ldflags minor pkg
  if [[ -x $dir/kube-apiserver && -x $dir/kubectl ]]; then
    printf '%s\n' "$dir"
    return
  fi
  command -v go >/dev/null || die "go is needed to build kube-apiserver"
  mkdir -p "$cache/kubernetes"
  exec 8>"$cache/kubernetes/.lock"
  flock 8
  if [[ ! -x $dir/kube-apiserver || ! -x $dir/kubectl ]]; then
    start=$SECONDS
    log "building kube-apiserver and kubectl $VERSION from $MODULE (a cold build takes a while on 2 cores)"
    src=$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [[ -d $src ]] || die "go mod download $MODULE@$VERSION gave no source directory"
    tmp=$(mktemp -d "$cache/kubernetes/$VERSION.tmp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    cp -r "$src" "$tmp/src"
    chmod -R u+w "$tmp/src"
    rm -f "$tmp/src/go.work" "$tmp/src/go.work.sum"
    staging=()
    while read -r m; do
      staging+=("-replace=$m=$m@v0.${VERSION#v1.}")
    done < <(sed -n 's/^\t\(k8s\.io\/[a-z-]*\) => \.\/staging\/src\/.*$/\1/p' "$tmp/src/go.mod")
    ((${#staging[@]})) || die "no staging replaces found in $MODULE@$VERSION's go.mod"
    (cd "$tmp/src" && go mod edit "${staging[@]}")
    minor=${VERSION#v1.}
    minor=${minor%%.*}
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    mkdir "$tmp/bin"
    buildlog=$tmp/build.log
    if ! (cd "$tmp/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$ldflags" \
      -o "$tmp/bin/" ./cmd/kube-apiserver ./cmd/kubectl) >"$buildlog" 2>&1; then
      cat "$buildlog" >&2
      die "go build of kube-apiserver failed"
    fi
    rm -rf "$dir"
    mv "$tmp/bin" "$dir"
    rm -rf "$tmp"
    trap - EXIT
    log "built kube-apiserver and kubectl $VERSION in $((SECONDS - start)) s"
  fi
  printf '%s\n' "$dir"
}

case ${1:-} in
  build) build ;;
  *) die "usage: tools/kube-apiserver.sh build | start DIR | stop DIR" ;;
esac
