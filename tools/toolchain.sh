#!/usr/bin/env bash
# Provides the Pulumi toolchain: the CLI, a Node.js language host, the dynamic-provider plugin
# and the resource provider plugins the project's npm packages declare. None can be downloaded
# as a binary on our machines, so they are built from the Go modules pinned in tools/pulumi/
# (CLI and our language host) and tools/<plugin>/ (one module per provider), and cached under
# a hash of their inputs, so a second run builds nothing.
#
#   tools/toolchain.sh                  plugins from node_modules/*/package.json ("pulumi" field)
#   tools/toolchain.sh NAME[@VERSION]...  these plugins instead (e.g. docker-build@0.0.22, or
#                                         command: the version its npm package declares)
#
# Progress goes to stderr; the last line of stdout is the bin directory holding `pulumi` and its
# language host:  BIN=$(tools/toolchain.sh | tail -n 1)
#
# Every plugin asked for is provided or the run fails: a program whose provider is missing would
# only fail later, inside `pulumi up`.
#
# Environment:
#   JETSON_FLEET_CACHE          cache root (default ~/.cache/jetson-fleet)
#   JETSON_FLEET_VENDOR         upstream source archives of plugins no Go module serves, with their
#                               SHA256SUMS (default: shared/vendor beside the project directory)
#   PULUMI_HOME                 where plugins are installed (default $JETSON_FLEET_CACHE/pulumi-home)
#   JETSON_FLEET_BUILD_PULUMI   1: build the pinned CLI even if a usable `pulumi` is on PATH
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(dirname "$tools")
cache=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}
export PULUMI_HOME=${PULUMI_HOME:-$cache/pulumi-home}
export PULUMI_SKIP_UPDATE_CHECK=true

# Plugins we can build: NAME -> "tools module dir|Go module|main package|version variable".
# The main package is the provider's own, or ours (./cmd/...) when the provider's cannot be built
# from its published module.
declare -A RECIPES=(
  [docker-build]="docker-build|github.com/pulumi/pulumi-docker-build|github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build|github.com/pulumi/pulumi-docker-build/provider.Version"
  [kubernetes]="kubernetes|github.com/pulumi/pulumi-kubernetes/provider/v4|./cmd/pulumi-resource-kubernetes|github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version"
)

# Plugins built from an upstream source archive in $JETSON_FLEET_VENDOR (their modules are not
# served): NAME -> "plugin version|archive|directory of go.mod in it|main package|version variable|
# extra build steps". Steps: `generate` runs the main package's go:generate first (writes its
# embedded schema); `static` builds with CGO off, no compose support and stripped symbols, as the
# upstream Makefile does. Never `go mod download` there: the proxy refuses modules the build never
# needs (shared/vendor/README.md).
declare -A VENDORED=(
  [command]="1.2.1|pulumi-command-1.2.1.tar.gz|pulumi-command-1.2.1/provider|./cmd/pulumi-resource-command|github.com/pulumi/pulumi-command/provider/pkg/version.Version|"
  [docker]="5.1.0|pulumi-docker-5.1.0.tar.gz|pulumi-docker-5.1.0/provider|./cmd/pulumi-resource-docker|github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version|generate static"
)
# npm packages whose own plugin version has no source here, -> the plugin version the program
# asks for instead (with the `version` resource option on each provider it creates; README).
# `@pulumi/docker` 5.1.0 is not on npm and 5.2.0's plugin sources are not to be had.
declare -A PLUGIN_FOR=(
  [docker@5.2.0]=5.1.0
)

# Pins that are pseudo-versions of a release commit (the module is not tagged at its own path):
# "Go module@pseudo-version" -> the release. Update with the go.mod pin.
declare -A RELEASES=(
  [github.com/pulumi/pulumi-kubernetes/provider/v4@v4.0.0-20260115033456-f47bc2d6f199]=4.25.0
)

# Files of the Go module that our main package embeds (go:embed only reads its own directory):
# NAME -> paths inside the module, each mapped by `go build -overlay` to its base name in the main
# package's directory. They are read from the module cache at build time, so the repository keeps
# no copies of upstream files and the go.sum hash of the pinned module stands for their content.
declare -A EMBEDS=(
  [kubernetes]="cmd/pulumi-resource-kubernetes/schema.json cmd/pulumi-resource-kubernetes/terraform-mapping.json"
)

log() { printf '%s\n' "toolchain: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# The version a tools module's go.mod pins for a Go module (no network: go.mod is the truth).
pinned() { awk -v m="$2" '{ sub(/^require[ \t]+/, "") } $1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/$1/go.mod"; }

# A JSON string holding $1.
json_string() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# A short hash of the Go toolchain, this script and the given files or directories.
inputs_hash() {
  command -v go >/dev/null || die "go is needed to build the Pulumi toolchain (Go >= 1.26)"
  {
    go env GOVERSION
    sha256sum "${BASH_SOURCE[0]}"
    find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sed "s|$tools/||"
  } | sha256sum | cut -c1-16
}

# go build [FLAGS...], quietly unless it fails; the build cache and module cache stay in their
# defaults (under the home directory) so that they survive between runs. Modules are verified
# against the tools module's go.sum: the checksum database is not needed, even for modules it
# does not know.
gobuild() {
  local dir=$1 out=$2 pkg=$3 ldflags=$4 buildlog
  shift 4
  buildlog=$(mktemp)
  if ! (cd "$dir" && go build -trimpath -buildvcs=false "$@" -ldflags "$ldflags" -o "$out" "$pkg") >"$buildlog" 2>&1; then
    cat "$buildlog" >&2
    rm -f "$buildlog"
    die "go build $pkg failed"
  fi
  rm -f "$buildlog"
}

# Runs FUNCTION TMPDIR once for DIR (a path that names its inputs' hash), then renames TMPDIR to
# DIR, so an interrupted build leaves no half-filled DIR behind. Prints DIR.
cached_build() {
  local dir=$1 fn=$2 start
  if [[ ! -d $dir ]]; then
    mkdir -p "$(dirname "$dir")"
    build_tmp=$(mktemp -d "$dir.tmp.XXXXXX")
    # We run in a command substitution: this trap only cleans up after this build.
    trap 'rm -rf "$build_tmp"' EXIT
    start=$SECONDS
    "$fn" "$build_tmp"
    mv "$build_tmp" "$dir"
    log "built $(basename "$dir") in $((SECONDS - start)) s"
  fi
  printf '%s\n' "$dir"
}

mkdir -p "$cache/toolchain"
# One run at a time: two concurrent runs would build the same thing twice.
exec 9>"$cache/toolchain/.lock"
flock 9

cli_version=$(pinned pulumi github.com/pulumi/pulumi/pkg/v3)
[[ -n $cli_version ]] || die "tools/pulumi/go.mod pins no github.com/pulumi/pulumi/pkg/v3"

build_cli() {
  local out=$1/bin
  mkdir -p "$out"
  log "building pulumi CLI $cli_version (cold builds take ~7 min on 2 cores, warm ones ~15 s)"
  gobuild "$tools/pulumi" "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version"
  log "building pulumi-language-nodejs"
  gobuild "$tools/pulumi" "$out/pulumi-language-nodejs" ./cmd/pulumi-language-nodejs \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version"
  install -m 0755 "$tools/pulumi/cmd/pulumi-language-nodejs/pulumi-resource-pulumi-nodejs" "$out/"
}

# A `pulumi` on PATH is used when it is at least the pinned version and has a Node.js language
# host beside it or on PATH. Builds of our own cache are never "found": the hash decides those.
bin=
if [[ ${JETSON_FLEET_BUILD_PULUMI:-} != 1 ]] && found=$(command -v pulumi) && [[ $found != "$cache"/* ]]; then
  found_version=$("$found" version 2>/dev/null || true)
  if [[ $found_version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+ ]] &&
    [[ $(printf '%s\n%s\n' "${cli_version#v}" "${found_version#v}" | sort -V | head -n 1) == "${cli_version#v}" ]] &&
    { [[ -x $(dirname "$found")/pulumi-language-nodejs ]] || command -v pulumi-language-nodejs >/dev/null; }; then
    bin=$(dirname "$found")
    log "using $found ($found_version)"
  else
    log "ignoring $found (${found_version:-unusable}): building $cli_version"
  fi
fi
if [[ -z $bin ]]; then
  bin=$(cached_build "$cache/toolchain/$cli_version-$(inputs_hash "$tools/pulumi")" build_cli)/bin
fi

# install_plugin NAME VERSION BINARY: installs BINARY as the plugin unless that very file is installed.
install_plugin() {
  local installed=$PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1
  if ! cmp -s "$3" "$installed"; then
    log "installing plugin $1 $2 into $PULUMI_HOME"
    "$bin/pulumi" plugin install resource "$1" "$2" --file "$3" --reinstall >&2
  fi
}

# build_vendored OUT: the build of cached_build for vendored_plugin (uses its locals).
build_vendored() {
  local src=$1/src out=$1/pulumi-resource-$name flags=() ldflags="-X $versionvar=$version"
  mkdir -p "$src"
  tar -xzf "$vendor/$archive" -C "$src"
  log "building plugin $name $version from $archive (cold builds take minutes: ~1.5 for command, ~6 for docker)"
  if [[ " $steps " == *" generate "* ]]; then
    (cd "$src/$moddir" && VERSION=$version go generate "$mainpkg/main.go") >"$1/generate.log" 2>&1 ||
      { tail -n 30 "$1/generate.log" >&2; die "go generate for plugin $name failed"; }
  fi
  if [[ " $steps " == *" static "* ]]; then
    export CGO_ENABLED=0
    flags+=(-tags no_compose)
    ldflags+=" -s -w"
  fi
  gobuild "$src/$moddir" "$out" "$mainpkg" "$ldflags" "${flags[@]}"
  rm -rf "$src" "$1/generate.log"
}

# vendored_plugin NAME VERSION: builds a VENDORED plugin from its checksummed archive (cached
# under the checksum). Prints the binary's path.
vendored_plugin() {
  local name=$1 version=$2 vendor want archive moddir mainpkg versionvar steps sum
  IFS='|' read -r want archive moddir mainpkg versionvar steps <<<"${VENDORED[$name]}"
  [[ $want == "$version" ]] || die "plugin $name $version is wanted but the vendored source is $want ($archive): make them match"
  vendor=${JETSON_FLEET_VENDOR:-$project/../shared/vendor}
  [[ -f $vendor/$archive && -f $vendor/SHA256SUMS ]] ||
    die "plugin $name $version is built from $archive, which is not in $vendor (set JETSON_FLEET_VENDOR to the folder holding it and its SHA256SUMS)"
  sum=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$vendor/SHA256SUMS")
  [[ -n $sum ]] || die "$vendor/SHA256SUMS has no line for $archive"
  (cd "$vendor" && printf '%s  %s\n' "$sum" "$archive" | sha256sum -c --quiet -) >&2 || die "$vendor/$archive does not match its SHA256SUMS line"
  printf '%s/pulumi-resource-%s\n' \
    "$(cached_build "$cache/toolchain/plugins/$name-$version-$( { go env GOVERSION; sha256sum "${BASH_SOURCE[0]}"; echo "$sum"; } | sha256sum | cut -c1-16)" build_vendored)" "$name"
}

# The plugins to provide: arguments, or the project's installed npm packages.
# The plugins the project's installed npm packages declare, NAME@VERSION a line.
declared_plugins() {
  [[ -d $project/node_modules ]] || die "$project/node_modules is missing: run tools/npm-install.sh (or pass NAME@VERSION arguments)"
  command -v node >/dev/null || die "node is needed to read node_modules (or pass NAME@VERSION arguments)"
  cd "$project" && node -e '
    const fs = require("fs"), path = require("path");
    const dirs = fs.readdirSync("node_modules").flatMap((d) =>
      d.startsWith("@") ? fs.readdirSync(path.join("node_modules", d)).map((s) => path.join(d, s)) : [d]);
    for (const d of dirs) {
      let p;
      try { p = JSON.parse(fs.readFileSync(path.join("node_modules", d, "package.json"), "utf8")); } catch { continue; }
      if (!p.pulumi || !p.pulumi.resource) continue;
      const name = p.pulumi.name || (p.name.startsWith("@pulumi/") ? p.name.slice(8) : "");
      if (name) console.log(name + "@" + (p.pulumi.version || p.version).replace(/^v/, ""));
    }'
}

# The plugins to provide: arguments (a bare NAME takes the version npm declares), or all declared.
plugins=()
if (($#)); then
  for spec in "$@"; do
    if [[ $spec != *@* ]]; then
      spec=$(declared_plugins | grep -m1 "^$spec@") || die "no installed npm package declares plugin $spec"
    fi
    plugins+=("$spec")
  done
else
  mapfile -t plugins < <(declared_plugins)
fi

for spec in "${plugins[@]}"; do
  name=${spec%@*}
  version=${spec##*@}
  [[ -n $name && -n $version && $spec == *@* ]] || die "expected NAME@VERSION, got '$spec'"
  version=${PLUGIN_FOR[$name@$version]:-$version}
  if [[ -n ${VENDORED[$name]:-} ]]; then
    plugin_bin=$(vendored_plugin "$name" "$version")
    install_plugin "$name" "$version" "$plugin_bin"
    continue
  fi
  [[ -n ${RECIPES[$name]:-} ]] ||
    die "no recipe builds plugin $name $version: add a Go module under tools/ and a RECIPES entry, or its source archive and a VENDORED entry"
  IFS='|' read -r moddir gomod mainpkg versionvar <<<"${RECIPES[$name]}"
  want=$(pinned "$moddir" "$gomod")
  release=${RELEASES[$gomod@$want]:-${want#v}}
  [[ $release == "$version" ]] ||
    die "npm declares plugin $name $version but tools/$moddir/go.mod pins $gomod ${want:-nothing}${RELEASES[$gomod@$want]:+ (release ${RELEASES[$gomod@$want]})}: make them match"

  build_plugin() {
    local flags=() src file sep=''
    if [[ -n ${EMBEDS[$name]:-} ]]; then
      src=$(cd "$tools/$moddir" && go mod download "$gomod" && go list -m -f '{{.Dir}}' "$gomod") ||
        die "cannot download $gomod $want (tools/$moddir/go.sum)"
      {
        printf '{"Replace":{'
        for file in ${EMBEDS[$name]}; do
          printf '%s%s:%s' "$sep" "$(json_string "$tools/$moddir/${mainpkg#./}/${file##*/}")" "$(json_string "$src/$file")"
          sep=,
        done
        printf '}}\n'
      } >"$1/overlay.json"
      flags=(-overlay "$1/overlay.json")
    fi
    log "building plugin $name $version (cold builds take minutes: ~3 for docker-build, ~20 for kubernetes)"
    gobuild "$tools/$moddir" "$1/pulumi-resource-$name" "$mainpkg" "-X $versionvar=$version" "${flags[@]}"
    rm -f "$1/overlay.json"
  }
  plugin_bin=$(cached_build "$cache/toolchain/plugins/$name-$version-$(inputs_hash "$tools/$moddir")" build_plugin)/pulumi-resource-$name

  install_plugin "$name" "$version" "$plugin_bin"
done

printf '%s\n' "$bin"
