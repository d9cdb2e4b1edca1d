#!/usr/bin/env bash
# Reads what the host is before anything changes and prints it as one JSON object.
# Refuses (exit 3) when the L4T release differs from EXPECTED_L4T, so no later step runs.
# Read-only: safe to run any number of times.
set -euo pipefail
: "${DOCKER_PACKAGE:=docker-ce}" "${EXPECTED_L4T:=}"

json() { # a JSON string: escape backslashes, quotes and control characters
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lib.sh" # inlined by renderHostScript

l4t=
if [[ -r /etc/nv_tegra_release ]]; then
  # "# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ..."
  if [[ $(head -n 1 /etc/nv_tegra_release) =~ R([0-9]+)\ \(release\),\ REVISION:\ ([0-9.]+) ]]; then
    l4t="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  fi
fi

# The GPU an engine is built for (components/models/scripts/engine-build.sh derives it the same
# way): the device tree's compatible entries, NUL-separated, joined with ","; "none" off a Jetson.
gpu=none
if [[ -r /proc/device-tree/compatible ]]; then
  gpu=$(tr '\0' ',' </proc/device-tree/compatible)
  while [[ $gpu == *, ]]; do gpu=${gpu%,}; done
  [[ -n $gpu ]] || gpu=none
fi

os=$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-unknown}")
runtimes=
default_runtime=
data_root=/var/lib/docker
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  runtimes=$(docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}')
  default_runtime=$(docker info --format '{{.DefaultRuntime}}')
  data_root=$(docker info --format '{{.DockerRootDir}}')
fi
# Free space where images will land (the nearest existing directory of the data root).
probe=$data_root
until [[ -d $probe ]]; do probe=$(dirname "$probe"); done
free_bytes=$(df -B1 --output=avail "$probe" | tail -n 1 | tr -d ' ')

runtime_list=
for r in $runtimes; do runtime_list+="${runtime_list:+,}$(json "$r")"; done
printf '{"l4tRelease":%s,"os":%s,"arch":%s,"kernel":%s,"dockerVersion":%s,"nvidiaToolkitVersion":%s,"runtimes":[%s],"defaultRuntime":%s,"dockerDataRoot":%s,"freeBytes":%s,"gpu":%s}\n' \
  "$(json "$l4t")" "$(json "$os")" "$(json "$(dpkg --print-architecture)")" "$(json "$(uname -r)")" \
  "$(json "$(installed_version "$DOCKER_PACKAGE")")" "$(json "$(installed_version nvidia-container-toolkit)")" \
  "$runtime_list" "$(json "$default_runtime")" "$(json "$data_root")" "${free_bytes:-0}" "$(json "$gpu")"

if [[ -n $EXPECTED_L4T && $l4t != "$EXPECTED_L4T" && $l4t != "$EXPECTED_L4T".* ]]; then
  echo "L4T release is ${l4t:-unknown (no /etc/nv_tegra_release)}, expected $EXPECTED_L4T; nothing was changed on this host" >&2
  exit 3
fi
