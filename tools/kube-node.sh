#!/usr/bin/env bash
# Joins simulated Jetsons to a cluster of tools/kube-cluster.sh as Kubernetes nodes: what the k3s
# agent's installer does on a Jetson, done by images/jetson-sim/kubernetes/node-setup.sh inside
# each sim (containerd, CNI, the NVIDIA toolkit's `nvidia` handler, a kubelet).
#
#   tools/kube-node.sh join CLUSTER_DIR SIM...   join the sims (in parallel; re-running is safe) and
#                                                wait until every one is Ready
#   tools/kube-node.sh pause-image               build (or reuse) the sandbox image archive; prints it
#
# Environment: KUBE_NODE_LABELS (k=v,... the kubelets register with; default none: a node's
# kubernetes.io/arch stays its real one whatever this says, so stacks select sims by amd64),
# KUBE_NODE_REGISTRIES (host:port ... each sim reaches over plain HTTP,
# default 127.0.0.1:5000, the dev registry at the sims' end of their tunnels),
# NVIDIA_TOOLKIT_VERSION (default 1.16.2-1, the dev stack's).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker
VERSION=v1.34.4
PAUSE_VERSION=3.10.1
PAUSE_IMAGE=registry.k8s.io/pause:$PAUSE_VERSION
labels=${KUBE_NODE_LABELS:-}
registries=${KUBE_NODE_REGISTRIES:-127.0.0.1:5000}
toolkit=${NVIDIA_TOOLKIT_VERSION:-1.16.2-1}
log() { printf 'kube-node: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
# shellcheck source=tools/lib/cached-build.sh
source tools/lib/cached-build.sh

# The sandbox image from the release's own pause.c (static), as an image archive containerd imports
# (an air-gapped k3s pre-loads it the same way).
build_pause() {
  local work=$1 out=$2 src
  src=$(go mod download -json "k8s.io/kubernetes@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  mkdir "$work/root"
  gcc -Os -static -DVERSION="v$PAUSE_VERSION" -o "$work/root/pause" "$src/build/pause/linux/pause.c"
  strip "$work/root/pause"
  tar -C "$work/root" -c pause | "$DOCKER" import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' - "$PAUSE_IMAGE" >/dev/null
  "$DOCKER" save "$PAUSE_IMAGE" -o "$out/pause.tar"
  "$DOCKER" rmi "$PAUSE_IMAGE" >/dev/null
}
pause_image() { printf '%s/pause.tar\n' "$(cached_build kubernetes-pause "$PAUSE_VERSION" pause.tar build_pause)"; }

# join_one CLUSTER_DIR SIM INDEX
join_one() {
  local dir=$1 sim=$2 index=$3 stage=/etc/jetson-sim/kubernetes
  "$DOCKER" exec "$sim" mkdir -p "$stage"
  "$DOCKER" cp "$kubelet" "$sim:$stage/kubelet"
  "$DOCKER" cp "$pause" "$sim:$stage/pause.tar"
  "$DOCKER" cp "$dir/pki/ca.crt" "$sim:$stage/ca.crt"
  tools/kube-cluster.sh node-kubeconfig "$dir" "$sim" | "$DOCKER" exec -i "$sim" sh -c "umask 077 && cat >$stage/kubelet.kubeconfig"
  "$DOCKER" exec -i -e NODE_NAME="$sim" -e NODE_LABELS="$labels" -e POD_CIDR="10.244.$index.0/24" \
    -e PLAIN_HTTP_REGISTRIES="$registries" -e NVIDIA_TOOLKIT_VERSION="$toolkit" -e PAUSE_IMAGE="$PAUSE_IMAGE" \
    "$sim" bash -s <images/jetson-sim/kubernetes/node-setup.sh
}

join() {
  local dir=${1:?usage: tools/kube-node.sh join CLUSTER_DIR SIM...} i=0 pids=() sim failed=0 t0=$SECONDS kubectl
  shift
  (($#)) || die "usage: tools/kube-node.sh join CLUSTER_DIR SIM..."
  kubelet=$(tools/kube-cluster.sh build-cluster)/kubelet
  kubectl=$(tools/kube-cluster.sh build)/kubectl
  pause=$(pause_image)
  for sim in "$@"; do
    i=$((i + 1))
    join_one "$dir" "$sim" "$i" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { log "${*:i+1:1}: node setup failed"; failed=1; }; done
  ((failed == 0)) || die "some sims did not join"
  # A kubelet registers its node a moment after it starts: wait for the objects, then for Ready.
  for ((i = 0; i < 360; i++)); do
    "$kubectl" --kubeconfig "$dir/kubeconfig" get "${@/#/node/}" >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$kubectl" --kubeconfig "$dir/kubeconfig" wait --for=condition=Ready --timeout=180s "${@/#/node/}" >/dev/null \
    || die "nodes not Ready in 180 s: $("$kubectl" --kubeconfig "$dir/kubeconfig" get nodes -o wide 2>&1)"
  log "$# nodes Ready in $((SECONDS - t0)) s"
}

case ${1:-} in
  join)
    shift
    join "$@"
    ;;
  pause-image) pause_image ;;
  *) die "usage: tools/kube-node.sh join CLUSTER_DIR SIM... | pause-image" ;;
esac
