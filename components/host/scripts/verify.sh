#!/usr/bin/env bash
# Verifies the result: Docker lists the nvidia runtime (as the default when asked) and a container
# started with --runtime nvidia runs. Without VERIFY_IMAGE it runs `true` in an image made here from
# the host's own coreutils `true` and the files its ELF interpreter loads (as ldd lists them), so
# verification needs no registry, no download and no particular busybox: whatever the host runs
# natively runs in that image.
set -euo pipefail
: "${NVIDIA_DEFAULT_RUNTIME:?}"
image=${VERIFY_IMAGE:-}

runtimes=$(docker info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}')
[[ " $runtimes " == *" nvidia "* ]] || { echo "docker info lists runtimes: $runtimes; expected nvidia among them" >&2; exit 1; }
if [[ $NVIDIA_DEFAULT_RUNTIME == true ]]; then
  default=$(docker info --format '{{.DefaultRuntime}}')
  [[ $default == nvidia ]] || { echo "docker's default runtime is $default; expected nvidia" >&2; exit 1; }
fi

# The files the host's `true` needs to run: itself, and (dynamically linked) its interpreter and
# libraries with the paths the loader asks for. A static binary needs only itself.
closure() {
  local bin=$1 out
  printf '%s\n' "$bin"
  if out=$(LC_ALL=C ldd "$bin" 2>&1); then
    if grep -q 'not found' <<<"$out"; then
      echo "verify: $bin needs libraries the host cannot find: $out" >&2
      return 1
    fi
    # "libc.so.6 => /lib/.../libc.so.6 (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)"; the vDSO has no file.
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
  elif ! grep -q 'not a dynamic executable' <<<"$out"; then
    echo "verify: ldd $bin failed: $out" >&2
    return 1
  fi
}

if [[ -z $image ]]; then
  bin=$(type -P true) || { echo "verify: the host has no true(1) binary (coreutils)" >&2; exit 1; }
  list=$(closure "$bin")
  mapfile -t files < <(sort -u <<<"$list")
  # Named by the content of its files: a host whose libc changed gets a fresh image, never a stale one.
  image=jetson-fleet/verify:$(sha256sum "${files[@]}" | sha256sum | cut -c1-12)
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    # -h stores each file's content under the path asked for (/lib64/ld-linux... is often a symlink).
    printf '%s\n' "${files[@]#/}" | tar -C / -ch --files-from=- | docker import - "$image" >/dev/null
    # Earlier verification images of this host (another libc, the old busybox one) are no longer used.
    docker image ls --format '{{.Repository}}:{{.Tag}}' jetson-fleet/verify | grep -vxF "$image" | xargs -r docker image rm >/dev/null 2>&1 || true
  fi
  # The loader's search path inside the image: the directories the host found the libraries in.
  libs=$(printf '%s\n' "${files[@]}" | grep -vxF "$bin" | xargs -r -n 1 dirname | sort -u | paste -sd :) || true
  set -- -e "LD_LIBRARY_PATH=$libs" "$image" "$bin"
else
  read -ra command <<<"${VERIFY_COMMAND:-true}"
  set -- "$image" "${command[@]}"
fi
docker run --rm --runtime nvidia -e NVIDIA_VISIBLE_DEVICES=all "$@"
as_default=
[[ $NVIDIA_DEFAULT_RUNTIME == true ]] && as_default=" (default)"
echo "verified: nvidia runtime listed$as_default, container ran with --runtime nvidia"
