#!/usr/bin/env bash
# The dev stack end to end on this machine: installs and starts what it needs (Node.js, npm
# packages, Docker engine, the Pulumi CLI and the plugins the dev stack uses, the dev registry,
# buildkitd and the simulated Jetsons), gives the sims to the dev stack, then runs Pulumi on it.
#
#   tools/dev.sh               pulumi up --yes --stack dev, then where each host's services answer
#                              and how many SSH sessions the run opened on each host
#   tools/dev.sh destroy       pulumi destroy --yes, then what stays on the hosts
#   tools/dev.sh ARGS...       any other pulumi command on the dev stack (preview, refresh, stack output, ...)
#
# The committed Pulumi.dev.yaml holds no hosts: the sims are this machine's. Pulumi runs in a
# project directory in the cache whose stack file is Pulumi.dev.yaml plus the sims (address, port,
# pinned host key; the client key and sudo password stored encrypted), remade whenever either changes.
# The repository's files stay as they are.
#
# JETSON_DEV_TARGET=kubernetes runs the same stack on Kubernetes instead (stack dev-kubernetes): a
# control plane on this machine (tools/kube-cluster.sh) with the sims joined as its nodes
# (tools/kube-node.sh), `deploy.target: kubernetes` with that cluster's kubeconfig (encrypted), the
# sims selected by their architecture, and the services' ulimits and CPU limits left out (pods
# take the node runtime's ulimits; a pod requests its CPU limit, and a sim offers only this
# machine's cores, fewer than the three services ask together). `destroy` leaves the cluster running:
# tools/kube-cluster.sh stop "$cache/dev/kube" stops it.
#
# Environment: JETSON_DEV_HOSTS (number of sims, default 3); JETSON_DEV_TARGET (compose, as
# Pulumi.dev.yaml says, or kubernetes); PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE (default: a
# local file backend in the cache, the dev passphrase).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
step() { printf '==> %s\n' "$*" >&2; }

step "Node.js and npm packages"
PATH="$(tools/node.sh):$PATH"
tools/npm-install.sh
step "machine: Debian packages and dockerd"
tools/machine.sh
target=${JETSON_DEV_TARGET:-}
[[ -z $target || $target == compose || $target == kubernetes ]] || { echo "JETSON_DEV_TARGET=$target: expected compose or kubernetes" >&2; exit 2; }
stack=dev
[[ $target != kubernetes ]] || stack=dev-kubernetes
step "Pulumi CLI and the dev stack's plugins"
# Only what the dev stack runs: the host steps (command) and the image build (docker-build), and
# on Kubernetes the provider that applies the fleet.
plugins=(command docker-build)
[[ $target != kubernetes ]] || plugins+=(kubernetes)
bin=$(tools/toolchain.sh "${plugins[@]}" | tail -n 1)
PATH="$bin:$PATH"
export PATH
step "dev registry, BuildKit daemon and simulated Jetsons"
eval "$(tools/dev-env.sh start)"

cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
work=$cache/dev/project
mkdir -p "$cache/state" "$work"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$cache/state}
# Where tools/toolchain.sh installed the plugins.
export PULUMI_HOME=${PULUMI_HOME:-$cache/pulumi-home}
# The dev stack's secrets are keys of simulated hosts on this machine; a real stack sets its own.
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE-jetson-fleet-dev}
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

# The project directory: the repository's program linked, its own stack file.
for entry in index.ts components images models node_modules package.json tsconfig.json Pulumi.yaml; do
  ln -sfn "$repo/$entry" "$work/$entry"
done
eval "$(tools/jetson-sim.sh env)"
mapfile -t sims < <(jq -r .name "$JETSON_DEV_SIMS")
kubeconfig=/dev/null
if [[ $target == kubernetes ]]; then
  step "Kubernetes control plane, the sims as its nodes"
  gateway=$(/usr/bin/docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
  kubeconfig=$(tools/kube-cluster.sh start "$cache/dev/kube" "$gateway" | tail -n 1)
  tools/kube-node.sh join "$cache/dev/kube" "${sims[@]}"
fi
inputs=$(cat Pulumi.dev.yaml tools/dev.sh "$JETSON_DEV_SIMS" "$JETSON_SIM_PRIVATE_KEY" "$JETSON_SIM_SUDO_PASSWORD_FILE" "$kubeconfig" | sha256sum | cut -c1-16)
cd "$work"
if [[ $(cat ".stack-inputs-$stack" 2>/dev/null) != "$inputs" ]]; then
  step "$stack stack config: Pulumi.dev.yaml and $(wc -l <"$JETSON_DEV_SIMS") simulated Jetsons"
  # Written before the stack is selected: it carries the committed file's encryption salt.
  # shellcheck disable=SC2016 # JavaScript, not shell
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    import { parseDocument } from "yaml";
    const [committed, sims, arch, stack, target] = process.argv.slice(1);
    const doc = parseDocument(readFileSync(committed, "utf8"));
    if (target === "kubernetes") {
      // The cluster is the fleet: its nodes are the sims, selected by their architecture.
      const rollout = doc.getIn(["config", "jetson-fleet:deploy", "rollout"])?.toJSON() ?? { maxUnavailable: 1 };
      doc.setIn(["config", "jetson-fleet:deploy"], {
        target: "kubernetes",
        rollout,
        kubernetes: { namespace: "jetson-fleet", nodeSelector: { "kubernetes.io/arch": arch } },
      });
      doc.deleteIn(["config", "jetson-fleet:proxy"]);
      for (const service of doc.getIn(["config", "jetson-fleet:services"]).items) {
        service.delete("ulimits");
        // A pod asks its CPU limit as its request, and a sim offers only the cores of this machine, fewer than the services ask together.
        service.get("resources")?.delete("cpus");
      }
    } else {
      const hosts = readFileSync(sims, "utf8").trim().split("\n").map((line) => JSON.parse(line))
        .map((s) => ({ name: s.name, address: s.address, port: s.port, user: s.user, hostKey: s.hostKey, l4tRelease: s.l4tRelease, arch }));
      doc.setIn(["config", "jetson-fleet:hosts"], hosts);
    }
    doc.commentBefore = " Made by tools/dev.sh from the repository'"'"'s Pulumi.dev.yaml and the simulated Jetsons; edit those.";
    writeFileSync(`Pulumi.${stack}.yaml.tmp`, doc.toString());
  ' "$repo/Pulumi.dev.yaml" "$JETSON_DEV_SIMS" "$(dpkg --print-architecture)" "$stack" "$target"
  mv "Pulumi.$stack.yaml.tmp" "Pulumi.$stack.yaml"
  pulumi stack select --create --non-interactive "$stack" >/dev/null
  # Secrets go in on stdin: never an argument.
  if [[ $target == kubernetes ]]; then
    pulumi config set --stack "$stack" --secret --path deploy.kubernetes.kubeconfig <"$kubeconfig"
  else
    for ((i = 0; i < ${#sims[@]}; i++)); do
      pulumi config set --stack dev --secret --path "hosts[$i].privateKey" <"$JETSON_SIM_PRIVATE_KEY"
      pulumi config set --stack dev --secret --path "hosts[$i].sudoPassword" <"$JETSON_SIM_SUDO_PASSWORD_FILE"
    done
  fi
  echo "$inputs" >".stack-inputs-$stack"
fi
pulumi stack select --create --non-interactive "$stack" >/dev/null

# SSH logins a sim has accepted so far (from its sshd's journal, read without SSH).
logins() { /usr/bin/docker exec "$1" journalctl -q -u ssh.service -o cat | grep -c '^Accepted publickey' || true; }

# A sim made anew since the last successful up (tools/dev-env.sh stop, a changed sim image) is a
# fresh host the state still calls bootstrapped: every step the stack ran on it runs again.
replaced_sims() {
  local name
  for name in "${sims[@]}"; do
    [[ $(jq -r --arg n "$name" 'select(.name == $n) | .id' "$JETSON_DEV_SIMS") == "$(awk -v n="$name" '$1 == n { print $2 }' .deployed-sims 2>/dev/null)" ]] ||
      printf '%s\n' "$name"
  done
}

case ${target:-compose}:${1:-up} in
  kubernetes:up)
    step "pulumi up --stack $stack"
    pulumi up --yes --stack "$stack"
    step "the fleet's pods, one per node and service"
    "$("$repo/tools/kube-cluster.sh" build)/kubectl" --kubeconfig "$kubeconfig" -n jetson-fleet get pods -o wide
    ;;
  *:up)
    declare -A before
    for sim in "${sims[@]}"; do before[$sim]=$(logins "$sim"); done
    replace=()
    mapfile -t fresh < <(replaced_sims)
    if ((${#fresh[@]})); then
      pattern=$(printf '%s|' "${fresh[@]}")
      # Its host steps, and its services: the compose apply step, or (containers mode) its
      # containers, their pulls and handover steps.
      mapfile -t replace < <(pulumi stack export --stack dev | jq -r --arg p "${pattern%|}" \
        '.deployment.resources // [] | .[] | select(.type | test("^(command:remote:Command|docker:index/container:Container|docker:index/remoteImage:RemoteImage)$")) | .urn | select(test("::(" + $p + "|services-(" + $p + "))-[a-z0-9-]+$"))')
      ((${#replace[@]} == 0)) || step "fresh sims (${fresh[*]}): their ${#replace[@]} steps run again"
    fi
    step "pulumi up --stack dev"
    # Hosts are independent: one that fails (unreachable, refused) holds back no other.
    pulumi up --yes --continue-on-error --stack dev "${replace[@]/#/--replace=}"
    jq -r '"\(.name) \(.id)"' "$JETSON_DEV_SIMS" >.deployed-sims
    step "where each host's services answer"
    pulumi stack output --stack dev serviceEndpoints --json
    step "SSH sessions this run opened on each host (remote commands run)"
    for sim in "${sims[@]}"; do printf '%s: %d\n' "$sim" $(($(logins "$sim") - before[$sim])); done
    ;;
  kubernetes:destroy)
    step "pulumi destroy --stack $stack"
    pulumi destroy --yes --stack "$stack"
    echo "==> the namespace and its pods are gone; the cluster runs on: tools/kube-cluster.sh stop $cache/dev/kube" >&2
    ;;
  *:destroy)
    step "pulumi destroy --run-program --stack dev"
    # The program runs: the containers mode's Docker providers get their ssh-agent from it.
    pulumi destroy --yes --run-program --stack dev
    cat >&2 <<'EOF'
==> what stays on the hosts
The services and their containers are gone (named volumes stay), and a registry login, when the
stack had one, is logged out. What JetsonHost installed stays, as on a real Jetson
that leaves the fleet: the Docker engine, the NVIDIA container toolkit and the compose tool (held
at their pinned versions), /etc/docker/daemon.json as merged, and pulled images. Remove the sims
themselves with: tools/dev-env.sh stop
EOF
    ;;
  *)
    step "pulumi $* --stack $stack"
    pulumi "$@" --stack "$stack"
    ;;
esac
