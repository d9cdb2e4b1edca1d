#!/usr/bin/env bash
# Prints the path of a pinned actionlint (the GitHub Actions workflow linter), building it from its
# Go module into the cache first. No binary can be downloaded on our machines, and the module has
# no replace directives, so `go install MODULE@VERSION` builds it (~1 min cold on 2 cores).
#
#   "$(tools/actionlint.sh)" .github/workflows/*.yml
#
# actionlint runs shellcheck on every `run:` block when shellcheck is on PATH (tools/machine.sh
# installs it), so the workflows' shell is held to the same standard as our scripts.
# The binary is cached under ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/actionlint/<version>/.
set -euo pipefail

VERSION=v1.7.12
MODULE=github.com/rhysd/actionlint
# shellcheck source=tools/lib/cached-build.sh
source "$(dirname "$0")/lib/cached-build.sh"

die() {
  printf 'actionlint: error: %s\n' "$*" >&2
  exit 1
}

build_actionlint() {
  local work=$1 out=$2
  command -v go >/dev/null || die "go is needed to build actionlint $VERSION"
  printf 'actionlint: building %s from %s\n' "$VERSION" "$MODULE" >&2
  # Outside any module, so the project's tools modules do not take part in the build.
  if ! (cd "$work" && GOBIN=$out GOFLAGS=-buildvcs=false go install -trimpath "$MODULE/cmd/actionlint@$VERSION") >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    die "go install $MODULE/cmd/actionlint@$VERSION failed"
  fi
}

printf '%s\n' "$(cached_build actionlint "$VERSION" actionlint build_actionlint)/actionlint"
