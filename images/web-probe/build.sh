#!/usr/bin/env bash
# Builds the web-probe image: build.sh TAG [VERSION] [HEALTHY]. The static binary is compiled
# with the machine's Go toolchain into a temporary context, so no base image is pulled.
set -euo pipefail
cd "$(dirname "$0")"
tag=${1:?usage: build.sh TAG [VERSION] [HEALTHY]}
version=${2:-0.0.0}
healthy=${3:-true}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ctx/web-probe" .
cp Dockerfile "$ctx/"
DOCKER_BUILDKIT=1 /usr/bin/docker build -q -t "$tag" --build-arg "VERSION=$version" --build-arg "HEALTHY=$healthy" "$ctx" >/dev/null
echo "$tag"
