#!/usr/bin/env bash
# Simulated Jetson hosts for tests and the dev stack: containers of images/jetson-sim/ with systemd
# as PID 1, sshd on a loopback port, user `jetson` (sudo with a password) and the stand-in NVIDIA
# apt repository at /opt/nvidia-l4t-repo.
#
#   tools/jetson-sim.sh start [N]   start PREFIX-1..N (default 1; running ones are reused) and print
#                                   one JSON line per host once its sshd answers:
#                                   {"name","address","port","user","hostKey","l4tRelease","id"}
#                                   (id: the container's; a replaced sim is a fresh host)
#   tools/jetson-sim.sh stop        remove PREFIX-* and their volumes
#   tools/jetson-sim.sh status      one JSON line per PREFIX-* container, with its "state"
#   tools/jetson-sim.sh env         the client key, sudo password file and repository, as shell exports
#
# Environment:
#   JETSON_SIM_PREFIX          container name prefix (default jetson-sim); tests use their own
#   JETSON_SIM_AUTHORIZED_KEY  the public key line jetson accepts (default: a key pair made once in
#                              the cache, $cache/jetson-sim/id_ed25519)
#   JETSON_SIM_L4T_RELEASE     the L4T release in /etc/nv_tegra_release (default 36.4.3)
#   JETSON_SIM_PORT_BASE       PREFIX-i's sshd is on ADDRESS:BASE+i when free (default 22000)
#   JETSON_SIM_ADDRESS_NET     three octets of the loopback range: PREFIX-i gets ADDRESS NET.i of
#                              its own (default: every sim on 127.0.0.1)
#   JETSON_SIM_PUBLISH         ports the sims publish 1:1 on their own address, for services that
#                              must answer from outside (e.g. "8080 8554 8189/udp"); needs
#                              JETSON_SIM_ADDRESS_NET (default none)
# A sim's host keys live in $cache/jetson-sim/PREFIX-i/host-keys: a replaced sim keeps its identity.
# The sudo password is $cache/jetson-sim/sudo-password (made once, mode 600).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
state=$cache/jetson-sim
prefix=${JETSON_SIM_PREFIX:-jetson-sim}
release=${JETSON_SIM_L4T_RELEASE:-36.4.3}
port_base=${JETSON_SIM_PORT_BASE:-22000}
address_net=${JETSON_SIM_ADDRESS_NET:-}
read -ra publish <<<"${JETSON_SIM_PUBLISH:-}"
label=jetson-fleet.sim
# How a sim runs: what makes systemd and an inner dockerd work without --privileged (which fails
# here). Without CAP_SYS_RESOURCE no limit inside rises above this machine's hard limits
# (memlock: 8 MiB here), so stacks for the sims ask no more than those. /dev/kmsg, read-only: a
# kubelet (tools/kube-node.sh) refuses to start without it (its OOM watcher reads it).
SIM_FLAGS=(--cap-add ALL --cap-drop SYS_RESOURCE
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --device /dev/kmsg:/dev/kmsg:r)
log() { printf 'jetson-sim: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $prefix =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "JETSON_SIM_PREFIX=$prefix: expected lower-case letters, digits and dashes"
[[ -z $address_net || $address_net =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "JETSON_SIM_ADDRESS_NET=$address_net: expected three octets of the loopback range, e.g. 127.0.1"
((${#publish[@]} == 0)) || [[ -n $address_net ]] || die "JETSON_SIM_PUBLISH needs JETSON_SIM_ADDRESS_NET: sims on one address cannot publish the same port"
for p in "${publish[@]}"; do [[ $p =~ ^[0-9]{1,5}(/(tcp|udp))?$ ]] || die "JETSON_SIM_PUBLISH: \"$p\" is not PORT or PORT/PROTOCOL (tcp, udp)"; done
[[ $release =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "JETSON_SIM_L4T_RELEASE=$release: expected an L4T release like 36.4.3"

# The client key pair and the sudo password, made once and kept in the cache.
secrets() {
  mkdir -p "$state"
  chmod 700 "$state"
  [[ -s $state/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N "" -C "jetson-sim" -f "$state/id_ed25519"
  if [[ ! -s $state/sudo-password ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$state/sudo-password.tmp")
    mv "$state/sudo-password.tmp" "$state/sudo-password"
  fi
  chmod 600 "$state/sudo-password"
}

# The stand-in NVIDIA repository, rebuilt only when its sources change (running sims keep theirs).
repo() {
  local hash dir
  hash=$(cd images/jetson-sim/nvidia-toolkit && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
  dir=$state/nvidia-l4t-repo-$hash
  [[ -s $dir/Packages ]] || images/jetson-sim/nvidia-toolkit/build-repo.sh "$dir" >/dev/null
  echo "$dir"
}

# port_taken ADDRESS PORT [tcp|udp]
port_taken() {
  local flag=-Htln
  [[ ${3:-tcp} == udp ]] && flag=-Huln
  ss "$flag" "sport = :$2" | awk -v a="$1" '$4 ~ "^(" a "|0\\.0\\.0\\.0|\\*|\\[::\\]):" { found = 1 } END { exit !found }' \
    || "$DOCKER" ps -a --format '{{.Ports}}' | grep -qF "$1:$2->"
}

# One JSON line for a running sim, once its sshd answers with its host key.
describe() {
  local name=$1 extra=${2:-'{}'} address port key="" sim_release
  read -r address port < <("$DOCKER" port "$name" 22/tcp | sed -n 's/^\(127\.[0-9.]*\):\([0-9]*\)$/\1 \2/p' | head -n 1) || true
  [[ -n ${port:-} ]] || die "$name publishes no SSH port"
  for _ in $(seq 1 120); do
    key=$(ssh-keyscan -T 2 -p "$port" -t ed25519 "$address" 2>/dev/null | awk '$2 == "ssh-ed25519" { print $2 " " $3; exit }') || true
    [[ -n $key ]] && break
    [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$name") == true ]] || die "$name stopped (docker logs $name)"
    sleep 0.5
  done
  [[ -n $key ]] || die "$name: sshd did not answer on $address:$port in 60 s"
  sim_release=$("$DOCKER" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$name" | sed -n 's/^JETSON_SIM_L4T_RELEASE=//p')
  jq -cn --arg name "$name" --arg address "$address" --argjson port "$port" --arg key "$key" --arg release "$sim_release" \
    --arg id "$("$DOCKER" inspect -f '{{.Id}}' "$name")" --argjson extra "$extra" \
    '{name: $name, address: $address, port: $port, user: "jetson", hostKey: $key, l4tRelease: $release, id: $id} + $extra'
}

start() {
  local count=${1:-1} image repo_dir pubkey i name address port p shape running names=() ports=()
  [[ $count =~ ^[1-9][0-9]*$ ]] || die "start N: N must be a positive number (got $count)"
  image=$(images/jetson-sim/build.sh | tail -n 1)
  secrets
  repo_dir=$(repo)
  pubkey=${JETSON_SIM_AUTHORIZED_KEY:-$(cat "$state/id_ed25519.pub")}
  [[ $pubkey =~ ^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+\ [A-Za-z0-9+/=]+ ]] || die "JETSON_SIM_AUTHORIZED_KEY is not a public key line (ssh-ed25519 AAAA...)"

  for i in $(seq 1 "$count"); do
    name=$prefix-$i
    names+=("$name")
    address=127.0.0.1
    [[ -z $address_net ]] || address=$address_net.$i
    mkdir -p "$state/$name/host-keys"
    chmod 700 "$state/$name/host-keys"
    # What the container was made with: a sim made otherwise is replaced (keeping its host keys).
    shape="$release $address ${publish[*]} ${SIM_FLAGS[*]}"
    if "$DOCKER" container inspect "$name" >/dev/null 2>&1; then
      running=$("$DOCKER" inspect -f '{{.State.Running}} {{.Config.Image}} {{index .Config.Labels "jetson-fleet.sim.shape"}}' "$name")
      if [[ $running == "true $image $shape" ]]; then
        # Reused: give it the current key (its boot unit copies the mounted file into ~jetson/.ssh).
        if [[ $(cat "$state/$name/authorized_keys") != "$pubkey" ]]; then
          printf '%s\n' "$pubkey" >"$state/$name/authorized_keys"
          "$DOCKER" exec "$name" /usr/local/sbin/jetson-sim-firstboot
        fi
        log "reusing $name"
        continue
      fi
      log "replacing $name (stopped, or another image or release)"
      "$DOCKER" rm -f "$name" >/dev/null
      "$DOCKER" volume rm -f "$name-docker" "$name-containerd" >/dev/null
    fi
    # Written in place: the file is bind-mounted into the sim.
    printf '%s\n' "$pubkey" >"$state/$name/authorized_keys"
    port=$((port_base + i))
    while port_taken "$address" "$port"; do port=$((port + 100)); done
    ports=(-p "$address:$port:22")
    for p in "${publish[@]}"; do
      ! port_taken "$address" "${p%/*}" "$([[ $p == */udp ]] && echo udp)" || die "$name: port $p on $address is taken; it cannot be published"
      ports+=(-p "$address:${p%/*}:$p")
    done
    log "starting $name (ssh $address:$port${publish[*]:+; publishes ${publish[*]}})"
    "$DOCKER" run -d --name "$name" --hostname "$name" \
      --label "$label=$prefix" --label "$label.release=$release" --label "$label.shape=$shape" \
      "${SIM_FLAGS[@]}" \
      -v "$name-docker:/var/lib/docker" -v "$name-containerd:/var/lib/containerd" \
      -v "$repo_dir:/opt/nvidia-l4t-repo:ro" \
      -v "$state/$name/authorized_keys:/etc/jetson-sim/authorized_keys:ro" \
      -v "$state/sudo-password:/etc/jetson-sim/sudo-password:ro" \
      -v "$state/$name/host-keys:/etc/jetson-sim/host-keys" \
      -e "JETSON_SIM_L4T_RELEASE=$release" \
      "${ports[@]}" \
      "$image" /sbin/init >/dev/null
  done
  for name in "${names[@]}"; do describe "$name"; done
}

sims() { "$DOCKER" ps -a --filter "label=$label=$prefix" --format '{{.Names}}' | sort -V; }

stop() {
  local names name
  mapfile -t names < <(sims)
  ((${#names[@]})) || return 0
  log "removing ${names[*]}"
  "$DOCKER" rm -f "${names[@]}" >/dev/null
  for name in "${names[@]}"; do
    "$DOCKER" volume rm -f "$name-docker" "$name-containerd" >/dev/null
    # The host keys stay: a sim started again under this name has the identity stacks pinned.
    rm -f "${state:?}/$name/authorized_keys"
  done
}

status() {
  local name st
  for name in $(sims); do
    st=$("$DOCKER" inspect -f '{{.State.Status}}' "$name")
    if [[ $st == running ]]; then
      describe "$name" "{\"state\":\"running\"}"
    else
      jq -cn --arg name "$name" --arg state "$st" '{name: $name, state: $state}'
    fi
  done
}

env_() {
  secrets
  printf 'export JETSON_SIM_PRIVATE_KEY=%q\n' "$state/id_ed25519"
  printf 'export JETSON_SIM_PUBLIC_KEY=%q\n' "$state/id_ed25519.pub"
  printf 'export JETSON_SIM_SUDO_PASSWORD_FILE=%q\n' "$state/sudo-password"
  printf 'export JETSON_SIM_REPO=%q\n' "$(repo)"
}

case ${1:-} in
  start) start "${2:-1}" ;;
  stop) stop ;;
  status) status ;;
  env) env_ ;;
  *) echo "usage: tools/jetson-sim.sh start [N] | stop | status | env" >&2; exit 2 ;;
esac
