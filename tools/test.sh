#!/usr/bin/env bash
# The one test command. On a fresh machine of this kind it installs and starts what the tests
# need (Node.js, npm packages, Debian packages, dockerd, the Pulumi toolchain), then runs
# typecheck, lint and every test tier.
#
#   tools/test.sh          everything: typecheck, lint, unit, integration, engine
#   tools/test.sh unit     the inner loop: typecheck and unit tests (needs no Docker, no Pulumi CLI)
#   tools/test.sh TIER...  any of: unit integration engine
set -euo pipefail
cd "$(dirname "$0")/.."

tiers=("$@")
((${#tiers[@]})) || tiers=(lint unit integration engine)
step() { printf '\n==> %s\n' "$*"; }

step "Node.js and npm packages"
PATH="$(tools/node.sh):$PATH"
export PATH
tools/npm-install.sh

step "typecheck"
node_modules/.bin/tsc --noEmit

passed=0
failed=0
run_tier() {
  local tier=$1 log
  shift
  step "$tier tests"
  log=$(mktemp)
  # One file at a time: integration and engine tests share dockerd and the machine's two cores.
  node --test --test-concurrency=1 --test-reporter=spec "$@" "test/$tier/**/*.test.ts" 2>&1 | tee "$log" || true
  local p f c
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  # A test cancelled because its suite's hook failed did not pass either.
  c=$(sed -n 's/^ℹ cancelled \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  [[ -z $f ]] || f=$((f + ${c:-0}))
  # A runner that died before its summary counts as a failure.
  [[ -n $p && -n $f ]] || f=$((${f:-0} + 1))
  passed=$((passed + ${p:-0}))
  failed=$((failed + f))
  rm -f "$log"
}

for tier in "${tiers[@]}"; do
  case $tier in
    lint)
      step "lint"
      node_modules/.bin/eslint .
      node_modules/.bin/prettier --check .
      tools/machine.sh
      shellcheck -x tools/*.sh .ci/run components/host/scripts/*.sh components/services/scripts/*.sh images/web-probe/*.sh images/jetson-sim/*.sh images/base/*.sh images/stand-ins/*.sh images/jetson-sim/nvidia-toolkit/*.sh images/jetson-sim/nvidia-toolkit/bin/* images/jetson-sim/rootfs/usr/local/sbin/*
      yamllint -d '{extends: default, rules: {line-length: {max: 140}, document-start: disable, truthy: {check-keys: false}}}' Pulumi*.yaml .github/workflows/*.yml
      "$(tools/actionlint.sh)" .github/workflows/*.yml
      ;;
    unit) run_tier unit ;;
    integration)
      step "machine: Debian packages and dockerd"
      tools/machine.sh
      run_tier integration
      ;;
    engine)
      step "machine: Debian packages and dockerd"
      tools/machine.sh
      step "Pulumi toolchain"
      JETSON_FLEET_PULUMI_BIN=$(tools/toolchain.sh | tail -n 1)
      export JETSON_FLEET_PULUMI_BIN
      step "BuildKit daemon (for @pulumi/docker-build)"
      tools/buildkit.sh build >/dev/null
      step "kube-apiserver and kubectl (for the Kubernetes fleet)"
      tools/kube-apiserver.sh build >/dev/null
      run_tier engine
      ;;
    *) echo "tools/test.sh: unknown tier '$tier' (expected lint, unit, integration or engine)" >&2; exit 2 ;;
  esac
done

printf '\n%s passed, %s failed\n' "$passed" "$failed"
((failed == 0))
