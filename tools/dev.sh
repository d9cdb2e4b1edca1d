#!/usr/bin/env bash
# The dev stack end to end on this machine: installs and starts what it needs (Node.js, npm
# packages, Docker engine, the dev registry and buildkitd, the Pulumi toolchain), then runs Pulumi
# on the `dev` stack.
#
#   tools/dev.sh               pulumi up --yes --stack dev
#   tools/dev.sh preview       any other pulumi command, on the dev stack
#
# State goes to the local file backend and secrets use the passphrase provider unless
# PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE say otherwise: no account needed.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '==> %s\n' "$*" >&2; }

step "Node.js and npm packages"
PATH="$(tools/node.sh):$PATH"
tools/npm-install.sh
step "machine: Debian packages and dockerd"
tools/machine.sh
step "dev registry and BuildKit daemon"
eval "$(tools/dev-env.sh start)"
step "Pulumi toolchain"
bin=$(tools/toolchain.sh | tail -n 1)
PATH="$bin:$PATH"
export PATH

cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
mkdir -p "$cache/state"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$cache/state}
# Where tools/toolchain.sh installed the plugins.
export PULUMI_HOME=${PULUMI_HOME:-$cache/pulumi-home}
# The dev stack's secrets are keys of simulated hosts on this machine; a real stack sets its own.
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE-jetson-fleet-dev}
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

pulumi stack select --create --non-interactive dev >/dev/null
if (($#)); then
  step "pulumi $* --stack dev"
  pulumi "$@" --stack dev
else
  step "pulumi up --stack dev"
  pulumi up --yes --stack dev
fi
