#!/usr/bin/env bash
# Builds the stand-in NVIDIA container toolkit packages and a flat apt repository in OUTDIR:
#
#   images/jetson-sim/nvidia-toolkit/build-repo.sh OUTDIR
#   (inside a sim)  deb [trusted=yes] file:/opt/nvidia-l4t-repo ./
#
# Four packages per version, with the real packages' names, versions and dependency structure:
#   nvidia-container-toolkit      Depends: nvidia-container-toolkit-base (= V), libnvidia-container-tools (>= V), (<< 2.0.0)
#   nvidia-container-toolkit-base nvidia-ctk, nvidia-container-runtime (a shim that execs runc)
#   libnvidia-container-tools     Depends: libnvidia-container1 (>= V), (<< 2.0.0); nvidia-container-cli
#   libnvidia-container1          the library's package (no library: nothing links to it here)
# The tools are the scripts in bin/ with their version stamped in. ARCH defaults to this machine's
# (the sims run natively). OUTDIR is replaced in one step, so a reader never sees half a repository.
set -euo pipefail

VERSIONS=(1.16.2-1 1.17.8-1)
# The upstream commit each release was tagged at is not needed by anything; a stable fake keeps builds reproducible.
commit_of() { printf '%s' "$1" | sha1sum | cut -c1-40; }

(($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")" && pwd)
arch=${ARCH:-$(dpkg --print-architecture)}
for tool in dpkg-deb dpkg-scanpackages jq; do
  command -v "$tool" >/dev/null || { echo "build-repo.sh: $tool is missing (Debian packages dpkg-dev, jq)" >&2; exit 1; }
done

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.nvidia-repo.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Reproducible archives: fixed member and file times.
export SOURCE_DATE_EPOCH=1735689600
repo=$work/repo
mkdir -p "$repo"

# package NAME VERSION DEPENDS DESCRIPTION; files are staged in $work/NAME_VERSION before the call.
package() {
  local name=$1 version=$2 depends=$3 description=$4 root=$work/${1}_$2
  mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
  printf 'Stand-in for NVIDIA'\''s %s %s on the simulated Jetson (jetson-fleet tests).\n' "$name" "$version" \
    >"$root/usr/share/doc/$name/README.jetson-sim"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: jetson-fleet <jetson-fleet@localhost>"
    echo "Section: utils"
    echo "Priority: optional"
    [[ -z $depends ]] || echo "Depends: $depends"
    echo "Description: $description"
    echo " Stand-in for the NVIDIA package of the same name and version: the same command-line"
    echo " interface for what JetsonHost uses, without a GPU."
  } >"$root/DEBIAN/control"
  if [[ -d $root/etc ]]; then
    (cd "$root" && find etc -type f | sed 's|^|/|') >"$root/DEBIAN/conffiles"
  fi
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zgzip --build "$root" "$repo/${name}_${version}_$arch.deb" >/dev/null
}

# stage NAME VERSION TOOL...: the tools into NAME's /usr/bin with the version stamped in.
stage() {
  local name=$1 version=$2 upstream=${2%-*} tool
  shift 2
  mkdir -p "$work/${name}_$version/usr/bin"
  for tool in "$@"; do
    sed -e "s/@VERSION@/$upstream/g" -e "s/@COMMIT@/$(commit_of "$upstream")/g" "$here/bin/$tool" >"$work/${name}_$version/usr/bin/$tool"
    chmod 755 "$work/${name}_$version/usr/bin/$tool"
  done
}

for version in "${VERSIONS[@]}"; do
  upstream=${version%-*}

  package libnvidia-container1 "$version" "libc6" "NVIDIA container runtime library"

  stage libnvidia-container-tools "$version" nvidia-container-cli
  package libnvidia-container-tools "$version" "libnvidia-container1 (>= $version), libnvidia-container1 (<< 2.0.0)" \
    "NVIDIA container runtime library (command-line tools)"

  stage nvidia-container-toolkit-base "$version" nvidia-ctk nvidia-container-runtime
  mkdir -p "$work/nvidia-container-toolkit-base_$version/etc/nvidia-container-runtime"
  cat >"$work/nvidia-container-toolkit-base_$version/etc/nvidia-container-runtime/config.toml" <<TOML
#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"

[nvidia-container-cli]
environment = []
ldconfig = "@/sbin/ldconfig.real"
load-kmods = true

[nvidia-container-runtime]
log-level = "info"
mode = "auto"
runtimes = ["docker-runc", "runc", "crun"]
# stand-in $upstream
TOML
  package nvidia-container-toolkit-base "$version" "" "NVIDIA Container Toolkit Base"

  stage nvidia-container-toolkit "$version" nvidia-container-runtime-hook
  ln -s nvidia-container-runtime-hook "$work/nvidia-container-toolkit_$version/usr/bin/nvidia-container-toolkit"
  package nvidia-container-toolkit "$version" \
    "nvidia-container-toolkit-base (= $version), libnvidia-container-tools (>= $version), libnvidia-container-tools (<< 2.0.0)" \
    "NVIDIA Container toolkit"
done

# A flat repository: every version of every package (-m), and a Release file listing the indexes.
(cd "$repo" && dpkg-scanpackages -m . /dev/null 2>/dev/null >Packages)
gzip -9n <"$repo/Packages" >"$repo/Packages.gz"
{
  echo "Origin: jetson-fleet"
  echo "Label: jetson-sim nvidia-l4t stand-in"
  echo "Architectures: $arch"
  echo "Date: $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
  echo "SHA256:"
  for f in Packages Packages.gz; do
    printf ' %s %s %s\n' "$(sha256sum "$repo/$f" | cut -c1-64)" "$(stat -c %s "$repo/$f")" "$f"
  done
} >"$repo/Release"

rm -rf "$out.old"
[[ ! -e $out ]] || mv "$out" "$out.old"
mv "$repo" "$out"
rm -rf "$out.old"
echo "$out"
