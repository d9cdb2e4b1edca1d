# shellcheck shell=bash
# Shared by the host steps (sourced, not run): apt that waits for other package managers,
# finishes interrupted runs, and installs exact versions held against upgrades.
export DEBIAN_FRONTEND=noninteractive
# Waits for a dpkg lock held by another process (unattended-upgrades, a user's apt) instead of failing.
APT=(apt-get -y -q -o DPkg::Lock::Timeout=900 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# A run cut off mid-install leaves packages half-configured; finishing it first makes re-runs converge.
apt_recover() {
  local i
  for i in $(seq 1 90); do
    dpkg --configure -a && return 0
    echo "dpkg is busy (attempt $i); waiting" >&2
    sleep 10
  done
  return 1
}

# Makes the stack's apt source list exactly APT_SOURCES (removed when that is empty) and refreshes
# the package lists when it changed or they are missing. A marker set before the list changes and
# cleared after a successful update makes a run cut off in between update on the next run.
apt_sources() {
  local list=/etc/apt/sources.list.d/jetson-fleet.list pending=/var/lib/jetson-fleet/apt-sources.pending want
  want=$(printf '%s\n' "${APT_SOURCES:-}")
  if [[ -n ${APT_SOURCES:-} && $(cat "$list" 2>/dev/null) != "$want" ]]; then
    mkdir -p "${pending%/*}" && : >"$pending"
    printf '%s\n' "$want" >"$list.tmp"
    mv "$list.tmp" "$list"
  elif [[ -z ${APT_SOURCES:-} && -e $list ]]; then
    mkdir -p "${pending%/*}" && : >"$pending"
    rm -f "$list"
  fi
  if [[ -e $pending || -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null) ]]; then
    "${APT[@]}" update
    rm -f "$pending"
  fi
}

# The one available version of PACKAGE equal to VERSION or starting with it ("27.5.1" matches
# "5:27.5.1-1~ubuntu.22.04~jammy"); fails when none or several match.
apt_version() {
  local pkg=$1 want=$2 matches
  matches=$(apt_matches "$pkg" "$want")
  if [[ -z $matches ]]; then
    "${APT[@]}" update >&2
    matches=$(apt_matches "$pkg" "$want")
  fi
  case $(printf '%s' "$matches" | grep -c .) in
    1) printf '%s\n' "$matches" ;;
    0) echo "no version of $pkg matches $want in the configured apt sources" >&2; return 1 ;;
    *) echo "several versions of $pkg match $want: $(tr '\n' ' ' <<<"$matches"); pin the exact one" >&2; return 1 ;;
  esac
}

# The known versions of PACKAGE equal to, or (without epoch) starting with, VERSION.
apt_matches() {
  apt-cache madison "$1" | awk -v w="$2" '{ v = $3; sub(/^[0-9]+:/, "", v) } $3 == w || index(v, w) == 1 { print $3 }' | sort -u
}

installed_version() {
  dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null | awk '$1 == "installed" { print $2 }'
}

# Installs PACKAGE=VERSION pairs unless exactly those are installed, then holds them so
# unattended upgrades leave them alone.
apt_install_pinned() {
  local spec pkg ver needed=()
  for spec in "$@"; do
    pkg=${spec%%=*} ver=${spec#*=}
    [[ $(installed_version "$pkg") == "$ver" ]] || needed+=("$spec")
  done
  if ((${#needed[@]})); then
    apt-mark unhold "${@%%=*}" >/dev/null 2>&1 || true
    "${APT[@]}" install --allow-downgrades --allow-change-held-packages "${needed[@]}"
  else
    echo "already installed: $*"
  fi
  apt-mark hold "${@%%=*}" >/dev/null
}
