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
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
dir=$cache/actionlint/$VERSION

die() {
  printf 'actionlint: error: %s\n' "$*" >&2
  exit 1
}

if [[ ! -x $dir/actionlint ]]; then
  command -v go >/dev/null || die "go is needed to build actionlint $VERSION"
  mkdir -p "$cache/actionlint"
  # One build at a time; a run that waited here finds the binary the other one built.
  exec 8>"$cache/actionlint/.lock"
  flock 8
  if [[ ! -x $dir/actionlint ]]; then
    printf 'actionlint: building %s from %s\n' "$VERSION" "$MODULE" >&2
    tmp=$(mktemp -d "$cache/actionlint/$VERSION.tmp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # Outside any module, so the project's tools modules do not take part in the build.
    if ! (cd "$tmp" && GOBIN=$tmp/bin GOFLAGS=-buildvcs=false go install -trimpath "$MODULE/cmd/actionlint@$VERSION") >"$tmp/build.log" 2>&1; then
      cat "$tmp/build.log" >&2
      die "go install $MODULE/cmd/actionlint@$VERSION failed"
    fi
    # Into place in one rename, so an interrupted build never leaves a half-written binary behind.
    rm -rf "$dir"
    mv "$tmp/bin" "$dir"
  fi
fi
printf '%s\n' "$dir/actionlint"
