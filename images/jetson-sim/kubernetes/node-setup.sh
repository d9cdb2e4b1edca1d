#!/usr/bin/env bash
# Makes a simulated Jetson a Kubernetes node, as the k3s installer makes a Jetson one: containerd
# with its CRI plugin, the CNI plugins, the NVIDIA container toolkit configuring containerd's
# `nvidia` runtime handler (`nvidia-ctk runtime configure --runtime=containerd`, which is how k3s
# finds it on JetPack), and a kubelet joined to the cluster. Run as root inside the sim by
# tools/kube-node.sh, which first copies into $STAGE: kubelet, kubelet.kubeconfig, ca.crt and
# pause.tar (the sandbox image, built from the same Kubernetes release: nothing can be pulled from
# the internet here). Safe to re-run: files are replaced only when they change, and a daemon is
# restarted only when its files did.
#
# Environment: NODE_NAME, NODE_LABELS (k=v,..., optional), POD_CIDR (this node's pod subnet),
# PLAIN_HTTP_REGISTRIES (host:port ..., reached over plain HTTP like k3s' registries.yaml
# `http://` endpoints), NVIDIA_TOOLKIT_VERSION (the stand-in repository's, e.g. 1.16.2-1),
# PAUSE_IMAGE (the name pause.tar holds).
set -euo pipefail

STAGE=${STAGE:-/etc/jetson-sim/kubernetes}
: "${NODE_NAME:?}" "${POD_CIDR:?}" "${NVIDIA_TOOLKIT_VERSION:?}" "${PAUSE_IMAGE:?}"
read -ra registries <<<"${PLAIN_HTTP_REGISTRIES:-}"
log() { printf 'node-setup %s: %s\n' "$NODE_NAME" "$*" >&2; }

# put FILE MODE < CONTENT: FILE gets CONTENT in one rename when it differs; returns 0 if it changed.
put() {
  local file=$1 mode=$2 tmp
  mkdir -p "$(dirname "$file")"
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  mv "$tmp" "$file"
}

packages=(containerd runc containernetworking-plugins iptables
  "nvidia-container-toolkit=$NVIDIA_TOOLKIT_VERSION" "nvidia-container-toolkit-base=$NVIDIA_TOOLKIT_VERSION"
  "libnvidia-container-tools=$NVIDIA_TOOLKIT_VERSION" "libnvidia-container1=$NVIDIA_TOOLKIT_VERSION")
if ! dpkg-query -W containerd containernetworking-plugins iptables >/dev/null 2>&1 \
  || [[ $(dpkg-query -W -f '${Version}' nvidia-container-toolkit 2>/dev/null) != "$NVIDIA_TOOLKIT_VERSION" ]]; then
  log "installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# containerd: the CRI plugin with overlayfs (the sim's /var/lib/containerd is a volume, so not
# overlay on overlay), cgroupfs like the kubelet, the pre-loaded sandbox image, registries from
# certs.d. nvidia-ctk then adds the nvidia handler to this file, as it does on a Jetson.
config_changed=false
# The base, then nvidia-ctk's edit of it, as on a Jetson; compared whole, so a re-run changes nothing.
config=$(mktemp)
cat >"$config" <<TOML
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE (the sims drop it) no process may lower its OOM score: pods keep the
  # score containerd has rather than fail to start.
  restrict_oom_score_adj = true
  # As k3s configures containerd: containers in a pod network may bind ports below 1024 and ping,
  # as Docker lets them (a non-root web server on port 80).
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
TOML
nvidia-ctk runtime configure --runtime=containerd --config="$config" 2>&1 | sed 's/^/nvidia-ctk: /' >&2
put /etc/containerd/config.toml 644 <"$config" && config_changed=true
rm -f "$config"
for registry in "${registries[@]}"; do
  put "/etc/containerd/certs.d/$registry/hosts.toml" 644 <<TOML && config_changed=true
server = "http://$registry"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
TOML
done

put /etc/cni/net.d/10-jetson-fleet.conflist 644 <<JSON && config_changed=true
{
  "cniVersion": "1.0.0",
  "name": "jetson-fleet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
JSON

if $config_changed || ! systemctl is-active -q containerd; then
  log "restarting containerd"
  systemctl enable -q containerd
  systemctl restart containerd
fi
for _ in $(seq 1 100); do
  ctr version >/dev/null 2>&1 && break
  sleep 0.1
done
ctr -n k8s.io images check "name==$PAUSE_IMAGE" 2>/dev/null | grep -q complete \
  || ctr -n k8s.io images import --no-unpack=false "$STAGE/pause.tar" >/dev/null

# The kubelet: the node's identity, the cluster's CA, a config for a node in a container.
kubelet_changed=false
install -m 755 "$STAGE/kubelet" /usr/local/bin/kubelet.new
if cmp -s /usr/local/bin/kubelet.new /usr/local/bin/kubelet; then rm /usr/local/bin/kubelet.new; else
  mv /usr/local/bin/kubelet.new /usr/local/bin/kubelet
  kubelet_changed=true
fi
put /etc/kubernetes/kubelet.kubeconfig 600 <"$STAGE/kubelet.kubeconfig" && kubelet_changed=true
put /etc/kubernetes/pki/ca.crt 644 <"$STAGE/ca.crt" && kubelet_changed=true
# The sim's /proc/sys is read-only. Before each kubelet start: the network sysctls, which are the
# sim's own network namespace's, become writable (the CNI's portmap sets route_localnet); the few
# the kubelet sets that are the whole machine's (vm.overcommit_memory, kernel.panic,
# kernel.panic_on_oops), which it fails without, are shown to it with the values it wants
# (read-only files bound over those entries, in the sim's mounts only): this machine's stay its own.
put /usr/local/sbin/kubelet-sysctl-view 755 <<'SH' && kubelet_changed=true
#!/bin/sh
set -eu
if ! grep -q ' /proc/sys/net ' /proc/self/mountinfo; then
  mount --bind /proc/sys/net /proc/sys/net
  mount -o remount,bind,rw /proc/sys/net
fi
mkdir -p /run/kubelet-sysctl
for setting in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
  key=${setting%%=*} value=${setting#*=}
  [ "$(cat "/proc/sys/$key")" = "$value" ] && continue
  file=/run/kubelet-sysctl/$(echo "$key" | tr / .)
  echo "$value" >"$file"
  mount --bind -o ro "$file" "/proc/sys/$key"
done
SH
# Eviction and image GC thresholds are off: the sims share this machine's disk with everything else.
put /var/lib/kubelet/config.yaml 644 <<YAML && kubelet_changed=true
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
readOnlyPort: 0
serializeImagePulls: false
resolvConf: /etc/resolv.conf
YAML
ip=$(ip -4 -o addr show eth0 | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
put /etc/systemd/system/kubelet.service 644 <<UNIT && kubelet_changed=true
[Unit]
Description=Kubernetes node agent (jetson-fleet simulated Jetson)
After=containerd.service
Requires=containerd.service

[Service]
ExecStartPre=/usr/local/sbin/kubelet-sysctl-view
ExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.kubeconfig --hostname-override=$NODE_NAME --node-ip=$ip${NODE_LABELS:+ --node-labels=$NODE_LABELS}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
if $kubelet_changed || ! systemctl is-active -q kubelet; then
  log "starting kubelet"
  systemctl daemon-reload
  systemctl enable -q kubelet
  systemctl restart kubelet
fi
