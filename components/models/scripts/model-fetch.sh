#!/usr/bin/env bash
# A model's content in the host's model store, a host step (root, through the launcher; its
# parameters are its environment). Content-addressed: the file is MODELS_ROOT/PROJECT/sha256/SHA256
# and nothing else is ever at that name, so a re-run, or a run after any interruption, finds it
# there (printing `present ... bytes=0`) or fetches it again.
#
# Create: a stored file whose sha256 matches is kept; a wrong one (damaged, cut short by hand) is
# removed. Otherwise the blob sha256:SHA256 of REPOSITORY is fetched into MODELS_ROOT/PROJECT/tmp/,
# its sha256 checked, and only then renamed into place (0644, root's): a half-fetched or wrong
# file never has the store's name. Prints one line:
#   present model=M sha256=HEX bytes=0 seconds=0
#   fetched model=M sha256=HEX bytes=N seconds=S.SS
# A failure (the registry's answer, a hash mismatch) keeps nothing and exits 1 with
# `host H: model M: ...` on stderr.
#
# Delete: the step's claim on the file goes; the file goes with the last claim. Each create adds a
# line to MODELS_ROOT/PROJECT/claims/SHA256: Pulumi replaces a step by creating the new one first,
# and a new step for the same content (another registry, new credentials) must not lose the file
# to the old one's delete. Nothing but that file and its claims is removed. Prints
# `removed model=M sha256=HEX` or `kept model=M sha256=HEX claims=N`.
#
#   PROJECT            the stack's compose project name (the store is per stack)
#   HOST_NAME          the host's name in messages (default: hostname)
#   MODEL              the model's name
#   SHA256             the ONNX file's sha256 (64 lower-case hex digits)
#   REGISTRY_URL       scheme://host[:port] of the registry the host fetches from
#   REPOSITORY         the repository's path in it (models/detector)
#   REGISTRY_USERNAME  optional: with it, the password is the first line of standard input (never
#                      in the environment, which /proc shows), used only when the registry asks
#   ACTION             create (default) or delete
#   MODELS_ROOT        default /var/lib/jetson-fleet/models
#   LOCK_TIMEOUT       seconds to wait for another fetch of the same content (default 3600)
set -euo pipefail
# The password arrives as data, never as a parameter: a parameter is in this process's environment.
REGISTRY_PASSWORD=
if [[ -n ${REGISTRY_USERNAME:-} ]]; then IFS= read -r REGISTRY_PASSWORD || true; fi
# Decimal points as this script expects them (EPOCHREALTIME), whatever the host's locale.
export LC_ALL=C

project=${PROJECT:-}
host=${HOST_NAME:-$(hostname)}
model=${MODEL:-}
hex=${SHA256:-}
action=${ACTION:-create}
root=${MODELS_ROOT:-/var/lib/jetson-fleet/models}
die() {
  printf '%s\n' "$*" >&2
  exit 1
}
fail() { die "host $host: model ${model:-?}: $*"; }
log() { printf 'host %s: model %s: %s\n' "$host" "$model" "$*" >&2; }

# Also keeps each name a single directory level below the store.
[[ $model =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || fail "MODEL=$model: expected a DNS label; nothing was changed"
[[ $project =~ ^[a-z0-9][a-z0-9_-]*$ ]] || fail "PROJECT=$project: expected a compose project name; nothing was changed"
[[ $hex =~ ^[0-9a-f]{64}$ ]] || fail "SHA256=$hex: expected 64 lower-case hex digits; nothing was changed"
[[ $action =~ ^(create|delete)$ ]] || fail "ACTION=$action: expected create or delete; nothing was changed"
command -v sha256sum >/dev/null || fail "sha256sum (coreutils) is not installed on the host; nothing was changed"

dir=$root/$project
blob=$dir/sha256/$hex
claims=$dir/claims/$hex
tmp_dir=$dir/tmp
umask 022
install -d -m 0755 "$root" "$dir" "$dir/sha256" "$dir/claims"
# Temporary files are root's only until they are whole and checked.
install -d -m 0700 "$tmp_dir"

# One fetch or delete of the same content at a time (two stacks' steps never share a store).
if command -v flock >/dev/null; then
  exec 9>>"$tmp_dir/$hex.lock"
  flock -w "${LOCK_TIMEOUT:-3600}" 9 || fail "another fetch of sha256 $hex still holds $tmp_dir/$hex.lock after ${LOCK_TIMEOUT:-3600} s; nothing was changed"
fi

# claim: this step's line in the claims file (create, once the file is in place).
claim() { printf 'model=%s\n' "$model" >>"$claims"; }

if [[ $action == delete ]]; then
  taken=false
  kept=()
  if [[ -f $claims ]]; then
    while IFS= read -r line; do
      if ! $taken && [[ $line == "model=$model" ]]; then taken=true; else kept+=("$line"); fi
    done <"$claims"
    # A claim made under another name (the model renamed in the config): take any one.
    if ! $taken && ((${#kept[@]})); then kept=("${kept[@]:1}"); fi
  fi
  if ((${#kept[@]})); then
    printf '%s\n' "${kept[@]}" >"$claims.tmp"
    mv -f "$claims.tmp" "$claims"
    printf 'kept model=%s sha256=%s claims=%s\n' "$model" "$hex" "${#kept[@]}"
    exit 0
  fi
  rm -f -- "$blob" "$claims"
  printf 'removed model=%s sha256=%s\n' "$model" "$hex"
  exit 0
fi

if [[ -f $blob ]]; then
  stored=$(sha256sum "$blob" | cut -d' ' -f1)
  if [[ $stored == "$hex" ]]; then
    chmod 0644 "$blob"
    claim
    printf 'present model=%s sha256=%s bytes=0 seconds=0\n' "$model" "$hex"
    exit 0
  fi
  log "the stored file $blob has sha256 $stored; removing it and fetching the model again"
  rm -f -- "$blob"
fi

command -v curl >/dev/null || fail "curl is not installed on the host; expected curl to fetch the model from ${REGISTRY_URL:-the registry}; nothing was kept"
[[ ${REGISTRY_URL:-} =~ ^https?://[^/[:space:]]+/?$ ]] || fail "REGISTRY_URL=${REGISTRY_URL:-}: expected http(s)://host[:port]; nothing was kept"
[[ ${REPOSITORY:-} =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || fail "REPOSITORY=${REPOSITORY:-}: expected a repository path; nothing was kept"

# shellcheck source-path=SCRIPTDIR source=json-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/json-lib.sh" # inlined by renderModelScript
# shellcheck source-path=SCRIPTDIR source=oci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/oci-lib.sh" # inlined by renderModelScript

# Parts of a fetch cut off earlier (this run holds the lock, so none is being written).
rm -f -- "$tmp_dir/$hex".part.*
part=$(mktemp "$tmp_dir/$hex.part.XXXXXX")
trap 'rm -f -- "$part"' EXIT
start=$EPOCHREALTIME
# -L: a registry may redirect a blob to its storage (curl sends the credentials to the registry's host only).
oci_request GET "$(oci_url "blobs/sha256:$hex")" -L -o "$part" \
  || fail "the registry $REGISTRY_URL answered $(oci_why) to the request for blob sha256:$hex in $REPOSITORY; nothing was kept"
got=$(sha256sum "$part" | cut -d' ' -f1)
[[ $got == "$hex" ]] || fail "the blob fetched from $REGISTRY_URL ($REPOSITORY) has sha256 $got, not $hex; nothing was kept"
chmod 0644 "$part"
mv -f -- "$part" "$blob"
bytes=$(stat -c %s "$blob")
seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
claim
printf 'fetched model=%s sha256=%s bytes=%s seconds=%s\n' "$model" "$hex" "$bytes" "$seconds"
