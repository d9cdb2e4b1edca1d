#!/usr/bin/env bash
# Verifies the result: Docker lists the nvidia runtime (as the default when asked) and a container
# started with --runtime nvidia runs. Without VERIFY_IMAGE it uses a one-file image made here from
# busybox-static, so verification needs no registry.
set -euo pipefail
: "${NVIDIA_DEFAULT_RUNTIME:?}"
image=${VERIFY_IMAGE:-}

runtimes=$(docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}')
[[ " $runtimes " == *" nvidia "* ]] || { echo "docker info lists runtimes: $runtimes; expected nvidia among them" >&2; exit 1; }
if [[ $NVIDIA_DEFAULT_RUNTIME == true ]]; then
  default=$(docker info --format '{{.DefaultRuntime}}')
  [[ $default == nvidia ]] || { echo "docker's default runtime is $default; expected nvidia" >&2; exit 1; }
fi

if [[ -z $image ]]; then
  image=jetson-fleet/verify:busybox
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    [[ -x /bin/busybox ]] || apt-get -y -q -o DPkg::Lock::Timeout=900 install busybox-static >/dev/null
    tar -C / -c bin/busybox | docker import - "$image" >/dev/null
  fi
  set -- /bin/busybox true
else
  read -ra command <<<"${VERIFY_COMMAND:-true}"
  set -- "${command[@]}"
fi
docker run --rm --runtime nvidia -e NVIDIA_VISIBLE_DEVICES=all "$image" "$@"
as_default=
[[ $NVIDIA_DEFAULT_RUNTIME == true ]] && as_default=" (default)"
echo "verified: nvidia runtime listed$as_default, container ran with --runtime nvidia"
