#!/usr/bin/env bash
# A real Kubernetes control plane for the engine tier: etcd, kube-apiserver, kube-scheduler and
# kube-controller-manager on this machine, built from k8s.io/kubernetes. Nodes are simulated
# Jetsons that join it (tools/kube-node.sh); with none, the API server still proves that every
# object we send passes its schema, defaulting, validation and admission.
#
#   tools/kube-cluster.sh build             build (or reuse) kube-apiserver + kubectl; prints their dir
#   tools/kube-cluster.sh build-cluster     build (or reuse) kube-scheduler, kube-controller-manager
#                                           and kubelet; prints their dir
#   tools/kube-cluster.sh start DIR [ADDR]  start the control plane with its state, certificates and
#                                           logs in DIR (idempotent), the API server on ADDR (default
#                                           127.0.0.1; nodes in containers need the Docker bridge's);
#                                           writes DIR/kubeconfig (cluster admin) and prints its path
#   tools/kube-cluster.sh node-kubeconfig DIR NAME
#                                           prints a kubeconfig for node NAME (system:node:NAME)
#   tools/kube-cluster.sh stop DIR          stop what `start` started in DIR
#
# Progress and timings go to stderr. The binaries are cached under
# ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/kubernetes{,-cluster}/<version>/ (a cold build of
# the first measured 1048 s of CPU time, 42 min wall on a 2-core machine busy with other builds).
# etcd is Debian's etcd-server (tools/machine.sh installs it).
set -euo pipefail

VERSION=v1.34.4
MODULE=k8s.io/kubernetes
# shellcheck source=tools/lib/cached-build.sh
source "$(dirname "$0")/lib/cached-build.sh"
# shellcheck source=tools/lib/stop-pid.sh
source "$(dirname "$0")/lib/stop-pid.sh"

log() { printf 'kube-cluster: %s\n' "$*" >&2; }
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
  shift 2
  command -v go >/dev/null || die "go is needed to build $*"
  log "building $* $VERSION from $MODULE"
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
    -o "$out/" "${@/#/./cmd/}") >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    die "go build of $* failed"
  fi
  log "built $* $VERSION in $((SECONDS - start)) s"
}

# Two caches, so the API server's (which the older tests need) survives the node binaries' arrival.
build_api() { build_kubernetes "$1" "$2" kube-apiserver kubectl; }
build_cluster() { build_kubernetes "$1" "$2" kube-scheduler kube-controller-manager kubelet; }
build() { cached_build kubernetes "$VERSION" kubectl build_api; }
build_nodes() { cached_build kubernetes-cluster "$VERSION" kubelet build_cluster; }

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A free TCP port on ADDRESS (nothing answers on it now).
free_port() {
  local address=${1:-127.0.0.1} port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return
    fi
  done
}

# sign PKI NAME SUBJECT [EXTFILE]: a key and a certificate signed by the cluster's CA.
sign() {
  local pki=$1 name=$2 subject=$3 ext=${4:-}
  openssl req -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "$subject" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/$name.crt" \
    -days 30 ${ext:+-extfile "$ext"} 2>/dev/null
  rm -f "$pki/$name.csr"
}

# A CA, the API server's serving certificate (ADDRESS, 127.0.0.1, localhost and the service names),
# client certificates for the admin (system:masters), the scheduler and the controller manager, and
# the service-account signing keys.
certificates() {
  local pki=$1 address=$2
  [[ -s $pki/admin.crt && $(cat "$pki/address" 2>/dev/null) == "$address" ]] && return
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 30 -subj "/CN=jetson-fleet-test-ca" 2>/dev/null
  printf 'subjectAltName=IP:%s,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' \
    "$address" >"$pki/apiserver.ext"
  sign "$pki" apiserver "/CN=kube-apiserver" "$pki/apiserver.ext"
  sign "$pki" admin "/O=system:masters/CN=jetson-fleet-admin"
  sign "$pki" scheduler "/CN=system:kube-scheduler"
  sign "$pki" controller-manager "/CN=system:kube-controller-manager"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  rm -f "$pki/apiserver.ext"
  printf '%s\n' "$address" >"$pki/address"
}

# kubeconfig DIR USER: a kubeconfig for the client certificate DIR/pki/USER.{crt,key}.
kubeconfig() {
  local dir=$1 user=$2 b64='base64 -w0'
  cat <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: jetson-fleet-test
    cluster:
      server: https://$(cat "$dir/apiserver.address")
      certificate-authority-data: $($b64 "$dir/pki/ca.crt")
users:
  - name: $user
    user:
      client-certificate-data: $($b64 "$dir/pki/$user.crt")
      client-key-data: $($b64 "$dir/pki/$user.key")
contexts:
  - name: jetson-fleet-test
    context:
      cluster: jetson-fleet-test
      user: $user
current-context: jetson-fleet-test
YAML
}

# daemon DIR NAME CMD...: CMD in its own session, its pid in DIR/NAME.pid, its log DIR/NAME.log.
daemon() {
  local dir=$1 name=$2
  shift 2
  running "$dir/$name.pid" && return
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

start() {
  local dir=${1:?usage: tools/kube-cluster.sh start DIR [ADDRESS]} address=${2:-127.0.0.1} bin cluster etcd_port peer_port port i t0 c
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  bin=$(build)
  cluster=$(build_nodes)
  command -v etcd >/dev/null || die "etcd is missing: tools/machine.sh installs Debian's etcd-server"
  if running "$dir/kube-apiserver.pid" && running "$dir/kube-controller-manager.pid" && [[ -s $dir/kubeconfig ]]; then
    printf '%s\n' "$dir/kubeconfig"
    return
  fi
  certificates "$dir/pki" "$address"
  t0=$(date +%s%N)
  if ! running "$dir/etcd.pid"; then
    etcd_port=$(free_port)
    peer_port=$(free_port)
    printf '%s\n' "$etcd_port" >"$dir/etcd.port"
    daemon "$dir" etcd etcd --name jetson-fleet-test --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "jetson-fleet-test=http://127.0.0.1:$peer_port" --listen-metrics-urls ""
  fi
  etcd_port=$(cat "$dir/etcd.port")
  if ! running "$dir/kube-apiserver.pid"; then
    port=$(free_port "$address")
    printf '%s:%s\n' "$address" "$port" >"$dir/apiserver.address"
  fi
  port=$(cut -d: -f2 "$dir/apiserver.address")
  for c in admin scheduler controller-manager; do
    kubeconfig "$dir" "$c" >"$dir/$c.kubeconfig.tmp"
    mv "$dir/$c.kubeconfig.tmp" "$dir/$c.kubeconfig"
  done
  ln -sfn admin.kubeconfig "$dir/kubeconfig"
  # Authentication by client certificate and service-account tokens; Node and RBAC authorization;
  # the default admission chain named explicitly, validating admission policies included, so
  # objects are checked as a k3s server checks them.
  daemon "$dir" kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$address" --advertise-address "$address" --secure-port "$port" \
    --cert-dir "$dir/pki" --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --anonymous-auth=false --allow-privileged=true \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,Priority,RuntimeClass,ResourceQuota,DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook \
    --profiling=false
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
  # One of each, so no leader election; they serve no port of their own.
  daemon "$dir" kube-scheduler "$cluster/kube-scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --leader-elect=false --secure-port 0 --profiling=false
  daemon "$dir" kube-controller-manager "$cluster/kube-controller-manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --leader-elect=false --secure-port 0 --profiling=false --use-service-account-credentials \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --cluster-signing-cert-file "$dir/pki/ca.crt" --cluster-signing-key-file "$dir/pki/ca.key"
  sleep 1
  for c in kube-scheduler kube-controller-manager; do
    running "$dir/$c.pid" || {
      tail -n 30 "$dir/$c.log" >&2
      die "$c exited"
    }
  done
  log "control plane $VERSION ready on $address:$port in $((($(date +%s%N) - t0) / 1000000)) ms"
  printf '%s\n' "$dir/kubeconfig"
}

# A node's identity (system:node:NAME in system:nodes, which the Node authorizer admits).
node_kubeconfig() {
  local dir=${1:?usage: tools/kube-cluster.sh node-kubeconfig DIR NAME} name=${2:?usage: tools/kube-cluster.sh node-kubeconfig DIR NAME}
  [[ $name =~ ^[a-z0-9][a-z0-9.-]*$ ]] || die "node name $name: expected lower-case letters, digits, dots and dashes"
  [[ -s $dir/pki/node-$name.crt ]] || sign "$dir/pki" "node-$name" "/O=system:nodes/CN=system:node:$name"
  kubeconfig "$dir" "node-$name"
}

stop() {
  local dir=${1:?usage: tools/kube-cluster.sh stop DIR}
  stop_pid "$dir/kube-controller-manager.pid"
  stop_pid "$dir/kube-scheduler.pid"
  stop_pid "$dir/kube-apiserver.pid"
  stop_pid "$dir/etcd.pid"
}

case ${1:-} in
  build) build ;;
  build-cluster) build_nodes ;;
  start)
    shift
    start "$@"
    ;;
  node-kubeconfig)
    shift
    node_kubeconfig "$@"
    ;;
  stop)
    shift
    stop "$@"
    ;;
  *) die "usage: tools/kube-cluster.sh build | build-cluster | start DIR [ADDRESS] | node-kubeconfig DIR NAME | stop DIR" ;;
esac
