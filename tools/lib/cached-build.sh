# shellcheck shell=bash
# Sourced by the tools that build a pinned Go program into the cache (buildkit.sh,
# kube-cluster.sh, actionlint.sh): one build at a time per tool, and an output directory that
# appears in one rename, so an interrupted build never leaves half a tool behind.
#
#   cached_build NAME VERSION FILE BUILD_FN
#
# Unless ${JETSON_FLEET_CACHE:-~/.cache/jetson-fleet}/NAME/VERSION/FILE exists, takes NAME's lock
# (a run that waited finds what the other one built), calls `BUILD_FN WORK OUT` with a fresh
# scratch directory WORK and an empty OUT to fill, and renames OUT to NAME/VERSION. Prints the
# directory. BUILD_FN reports its own errors and returns non-zero on failure.

cached_build() {
  local name=$1 version=$2 file=$3 build_fn=$4
  local root=${JETSON_FLEET_CACHE:-$HOME/.cache/jetson-fleet}/$name
  local dir=$root/$version
  if [[ ! -e $dir/$file ]]; then
    mkdir -p "$root"
    exec 8>"$root/.lock"
    flock 8
    if [[ ! -e $dir/$file ]]; then
      # Global, so the EXIT trap still sees it after this function returns.
      CACHED_BUILD_WORK=$(mktemp -d "$root/$version.tmp.XXXXXX")
      trap 'rm -rf "$CACHED_BUILD_WORK"' EXIT
      mkdir "$CACHED_BUILD_WORK/out"
      "$build_fn" "$CACHED_BUILD_WORK" "$CACHED_BUILD_WORK/out"
      rm -rf "$dir"
      mv "$CACHED_BUILD_WORK/out" "$dir"
      rm -rf "$CACHED_BUILD_WORK"
      trap - EXIT
    fi
    exec 8>&-
  fi
  printf '%s\n' "$dir"
}
