#!/usr/bin/env bash
# The one test command. On a fresh machine of this kind it installs and starts what the tests
# need (Node.js, npm packages, Debian packages, dockerd, the Pulumi toolchain), then runs
# typecheck, lint and every test tier.
#
#   tools/test.sh          everything: typecheck, lint, unit, integration, engine
#   tools/test.sh unit     the inner loop: typecheck and unit tests (needs no Docker, no Pulumi CLI)
#   tools/test.sh TIER...  any of: unit integration engine
#
# The closing line counts passed, failed, skipped and todo tests. A test or suite may be skipped
# only for a reason tools/test-skips.txt lists (its exact text, one a line): any other skip, or a
# skip with no reason, fails the run and is named above the closing line.
#
# Sourced (`source tools/test.sh`), it only defines its functions: tally and closing are tested
# on real and canned logs (test/unit/tools/test-sh.test.ts).
set -euo pipefail

step() { printf '\n==> %s\n' "$*"; }

passed=0
failed=0
skipped=0
todo=0
# Each skip without a listed reason: `TIER: "NAME" # REASON`.
unlisted=()
skips_file=tools/test-skips.txt

# The skip reasons $skips_file lists, one a line; blank lines and `#` comments are not reasons.
listed_reasons() {
  [[ -f $skips_file ]] || {
    printf 'tools/test.sh: %s is missing: it lists the reasons a test may be skipped for\n' "$skips_file" >&2
    return 1
  }
  sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$skips_file"
}

# The last value of the spec reporter's summary line `ℹ NAME N` in LOG; empty when there is none.
summary_value() {
  sed -n "s/^ℹ $2 \([0-9]*\)\$/\1/p" "$1" | tail -n 1
}

# Adds one tier's log (node --test's spec reporter) to the totals.
tally() {
  local tier=$1 raw=$2 log p f c t line name reason listed
  local -a reasons=()
  listed=$(listed_reasons)
  [[ -z $listed ]] || mapfile -t reasons <<<"$listed"
  # Colours, when a CI forces them, would hide the lines from the patterns below.
  log=$(mktemp)
  sed $'s/\x1b\\[[0-9;]*m//g' "$raw" >"$log"
  p=$(summary_value "$log" pass)
  f=$(summary_value "$log" fail)
  # A test cancelled because its suite's hook failed did not pass either.
  c=$(summary_value "$log" cancelled)
  t=$(summary_value "$log" todo)
  [[ -z $f ]] || f=$((f + ${c:-0}))
  # A runner that died before its summary counts as a failure.
  [[ -n $p && -n $f ]] || f=$((${f:-0} + 1))
  passed=$((passed + ${p:-0}))
  failed=$((failed + f))
  todo=$((todo + ${t:-0}))
  # The reporter marks each skipped test or suite with "﹣" and ends its line with "# REASON"
  # ("# SKIP" when none was given). A skipped suite counts once: its tests never ran.
  local re='^ *﹣ (.*) \([0-9.e+-]+ms\) # (.*)$'
  while IFS= read -r line; do
    [[ $line =~ $re ]] || continue
    name=${BASH_REMATCH[1]} reason=${BASH_REMATCH[2]}
    skipped=$((skipped + 1))
    if [[ $reason == SKIP || -z $reason ]]; then
      unlisted+=("$tier: \"$name\" (no reason given)")
    elif ! printf '%s\n' "${reasons[@]}" | grep -Fxq -- "$reason"; then
      unlisted+=("$tier: \"$name\" # $reason")
    fi
  done < <(grep -F '﹣' "$log" || true)
  rm -f "$log"
}

# Prints the skips without a listed reason and the closing line; fails unless every test passed
# and every skip had a listed reason.
closing() {
  if ((${#unlisted[@]})); then
    printf '\nskipped without a reason %s lists (list the reason there, or let the test run):\n' "$skips_file"
    printf '  %s\n' "${unlisted[@]}"
  fi
  local skips="$skipped skipped"
  ((${#unlisted[@]} == 0)) || skips+=" (${#unlisted[@]} without a listed reason)"
  printf '\n%s passed, %s failed, %s, %s todo\n' "$passed" "$failed" "$skips" "$todo"
  ((failed == 0 && ${#unlisted[@]} == 0))
}

run_tier() {
  local tier=$1 log
  shift
  step "$tier tests"
  log=$(mktemp)
  # One file at a time: integration and engine tests share dockerd and the machine's two cores.
  node --test --test-concurrency=1 --test-reporter=spec "$@" "test/$tier/**/*.test.ts" 2>&1 | tee "$log" || true
  tally "$tier" "$log"
  rm -f "$log"
}

main() {
  cd "$(dirname "$0")/.."
  local tiers=("$@")
  ((${#tiers[@]})) || tiers=(lint unit integration engine)

  # Before anything slow: a missing list fails now, not after an hour of tests.
  listed_reasons >/dev/null

  step "Node.js and npm packages"
  PATH="$(tools/node.sh):$PATH"
  export PATH
  tools/npm-install.sh

  step "typecheck"
  node_modules/.bin/tsc --noEmit

  local tier
  for tier in "${tiers[@]}"; do
    case $tier in
      lint)
        step "lint"
        node_modules/.bin/eslint .
        node_modules/.bin/prettier --check .
        tools/machine.sh
        shellcheck -x tools/*.sh .ci/run components/host/scripts/*.sh components/services/scripts/*.sh components/kubernetes/scripts/*.sh components/models/scripts/*.sh images/web-probe/*.sh images/jetson-sim/*.sh images/jetson-sim/kubernetes/*.sh images/base/*.sh images/stand-ins/*.sh images/jetson-sim/nvidia-toolkit/*.sh images/jetson-sim/nvidia-toolkit/bin/* images/jetson-sim/rootfs/usr/local/sbin/*
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
        step "Kubernetes control plane, kubelet and sandbox image (for the Kubernetes fleet)"
        tools/kube-cluster.sh build >/dev/null
        tools/kube-cluster.sh build-cluster >/dev/null
        tools/kube-node.sh pause-image >/dev/null
        run_tier engine
        ;;
      *) echo "tools/test.sh: unknown tier '$tier' (expected lint, unit, integration or engine)" >&2; exit 2 ;;
    esac
  done

  closing
}

# Run, unless sourced for its functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
