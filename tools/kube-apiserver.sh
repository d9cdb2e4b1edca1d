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
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/kubernetes/<version>/ (a cold build measured 1048 s
# of CPU time, 42 min wall on a 2-core machine busy with other builds). etcd is Debian's
# etcd-server (tools/machine.sh installs it).
set -euo pipefail

VERSION=v1.34.4
MODULE=k8s.io/kubernetes
# shellcheck source=tools/lib/cached-build.sh
source "$(dirname "$0")/lib/cached-build.sh"

log() { printf 'kube-apiserver: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging/src/..., which the
# published module zip does not contain, so `go install` is refused. We build in a writable copy
# whose replaces point at the same staging modules as published (v0.X.Y for v1.X.Y), and only the
# two binaries we need, without debug info (a cold build is the slow part of the engine tier).
build_kubernetes() {
  local work=$1 out=$2 src start=$SECONDS staging m ldflags minor pkg
  command -v go >/dev/null || die "go is needed to build kube-apiserver"
  log "building kube-apiserver and kubectl $VERSION from $MODULE (a cold build needs ~17 min of CPU time: ~9 min on 2 idle cores)"
  src=$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $src ]] || die "go mod download $MODULE@$VERSION gave no source directory"
  cp -r "$src" "$work/src"
  chmod -R u+w "$work/src"
  rm -f "$work/src/go.work" "$work/src/go.work.sum"
  staging=()
  while read -r m; do
    staging+=("-replace=$m=$m@v0.${VERSION#v1.}")
  done < <(sed -n 's/^\t\(k8s\.io\/[a-z-]*\) => \.\/staging\/src\/.*$/\1/p' "$work/src/go.mod")
  ((${#staging[@]})) || die "no staging replaces found in $MODULE@$VERSION's go.mod"
  (cd "$work/src" && go mod edit "${staging[@]}")
  minor=${VERSION#v1.}
  minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  if ! (cd "$work/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$ldflags" \
    -o "$out/" ./cmd/kube-apiserver ./cmd/kubectl) >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    die "go build of kube-apiserver failed"
  fi
  log "built kube-apiserver and kubectl $VERSION in $((SECONDS - start)) s"
}

build() { cached_build kubernetes "$VERSION" kubectl build_kubernetes; }

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A free loopback TCP port (nothing answers on it now).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return
    fi
  done
}

# A CA, the API server's serving certificate (127.0.0.1, localhost and the service names), a
# cluster-admin client certificate (group system:masters) and the service-account signing keys.
certificates() {
  local pki=$1
  [[ -s $pki/admin.crt ]] && return
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=jetson-fleet-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile apiserver.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=jetson-fleet-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 30 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr apiserver.ext
  )
}

kubeconfig() {
  local dir=$1 port=$2 b64='base64 -w0'
  cat <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: jetson-fleet-test
    cluster:
      server: https://127.0.0.1:$port
      certificate-authority-data: $($b64 "$dir/pki/ca.crt")
users:
  - name: admin
    user:
      client-certificate-data: $($b64 "$dir/pki/admin.crt")
      client-key-data: $($b64 "$dir/pki/admin.key")
contexts:
  - name: jetson-fleet-test
    context:
      cluster: jetson-fleet-test
      user: admin
current-context: jetson-fleet-test
YAML
}

start() {
  local dir=${1:?usage: tools/kube-apiserver.sh start DIR} bin etcd_port peer_port port i t0
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  bin=$(build)
  command -v etcd >/dev/null || die "etcd is missing: tools/machine.sh installs Debian's etcd-server"
  if running "$dir/kube-apiserver.pid" && [[ -s $dir/kubeconfig ]]; then
    printf '%s\n' "$dir/kubeconfig"
    return
  fi
  certificates "$dir/pki"
  t0=$(date +%s%N)
  if ! running "$dir/etcd.pid"; then
    etcd_port=$(free_port)
    peer_port=$(free_port)
    printf '%s\n' "$etcd_port" >"$dir/etcd.port"
    setsid etcd --name jetson-fleet-test --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "jetson-fleet-test=http://127.0.0.1:$peer_port" --listen-metrics-urls "" \
      </dev/null >"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"
  fi
  etcd_port=$(cat "$dir/etcd.port")
  port=$(free_port)
  kubeconfig "$dir" "$port" >"$dir/kubeconfig.tmp"
  mv "$dir/kubeconfig.tmp" "$dir/kubeconfig"
  # Authentication by client certificate and service-account tokens; RBAC; the default admission
  # chain named explicitly, validating admission policies included, so objects are checked as a
  # k3s server checks them.
  setsid "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
    --cert-dir "$dir/pki" --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --anonymous-auth=false --allow-privileged=true \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,Priority,RuntimeClass,ResourceQuota,DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook \
    --profiling=false \
    </dev/null >"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"
  for ((i = 0; i < 1200; i++)); do
    if "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1; then break; fi
    running "$dir/kube-apiserver.pid" || {
      tail -n 30 "$dir/kube-apiserver.log" >&2
      die "kube-apiserver exited"
    }
    running "$dir/etcd.pid" || {
      tail -n 30 "$dir/etcd.log" >&2
      die "etcd exited"
    }
    sleep 0.1
  done
  ((i < 1200)) || {
    tail -n 30 "$dir/kube-apiserver.log" >&2
    die "kube-apiserver was not ready in 120 s"
  }
  log "etcd + kube-apiserver $VERSION ready on 127.0.0.1:$port in $((($(date +%s%N) - t0) / 1000000)) ms"
  printf '%s\n' "$dir/kubeconfig"
}

stop_pid() {
  local file=$1 pid i
  [[ -s $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$file"
}

stop() {
  local dir=${1:?usage: tools/kube-apiserver.sh stop DIR}
  stop_pid "$dir/kube-apiserver.pid"
  stop_pid "$dir/etcd.pid"
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
  *) die "usage: tools/kube-apiserver.sh build | start DIR | stop DIR" ;;
esac
