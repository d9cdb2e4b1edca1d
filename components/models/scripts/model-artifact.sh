#!/usr/bin/env bash
# A model as an OCI artifact in the fleet's registry, run on the machine running Pulumi (a local
# command; its parameters are its environment, the registry's credentials included).
#
# ACTION=push: uploads FILE as the one layer of an OCI image manifest (artifactType
# application/vnd.jetson-fleet.model.v1, the empty config) and tags it TAG. Content-addressed,
# so a re-run (or a run after an interruption) uploads only what the registry lacks: the blob
# is HEADed first and sent only when missing (monolithic: POST an upload, PUT the file with its
# digest); the manifest is the same bytes each time, so it has the same digest.
# Last line on stdout: `pushed model=M repository=R bytes=N manifest=sha256:HEX`, N the bytes
# uploaded (0 when the registry had the blob).
#
# ACTION=verify: GETs the manifest MANIFEST_DIGEST (an artifact source's) and requires a layer
# sha256:SHA256, so hosts fetch exactly the configured model. Prints
# `verified model=M repository=R manifest=DIGEST`.
#
# Either fails with one sentence on stderr naming the model, the registry's HTTP status and
# CONFIG_KEY (the stack config key the model came from), exit 1.
#
#   ACTION             push | verify
#   MODEL              the model's name (messages)
#   SHA256             the ONNX file's sha256, 64 lower-case hex digits
#   REGISTRY_URL       scheme://host[:port] of the registry
#   REPOSITORY         the repository's path (models/detector)
#   REGISTRY_USERNAME  optional credentials, used only when the registry asks (oci-lib.sh)
#   REGISTRY_PASSWORD
#   CONFIG_KEY         e.g. models[0].source
#   FILE, TAG          push: the local ONNX file, the tag
#   MANIFEST_DIGEST    verify: sha256:<hex>
set -euo pipefail

action=${ACTION:-}
model=${MODEL:-}
hex=${SHA256:-}
key=${CONFIG_KEY:-models[].source}
die() {
  printf '%s\n' "$*" >&2
  exit 1
}
log() { printf 'model-artifact: %s\n' "$*" >&2; }

[[ $action =~ ^(push|verify)$ ]] || die "model ${model:-?}: ACTION=$action: expected push or verify ($key)"
[[ -n $model ]] || die "model ?: MODEL is required ($key)"
[[ $hex =~ ^[0-9a-f]{64}$ ]] || die "model $model: SHA256=$hex: expected 64 lower-case hex digits ($key)"
[[ ${REGISTRY_URL:-} =~ ^https?://[^/[:space:]]+/?$ ]] || die "model $model: REGISTRY_URL=${REGISTRY_URL:-}: expected http(s)://host[:port] ($key)"
[[ ${REPOSITORY:-} =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || die "model $model: REPOSITORY=${REPOSITORY:-}: expected a repository path like models/$model ($key)"
command -v curl >/dev/null || die "model $model: curl is not installed on this machine; it pushes and verifies models ($key)"
command -v sha256sum >/dev/null || die "model $model: sha256sum (coreutils) is not installed on this machine ($key)"

# shellcheck source-path=SCRIPTDIR source=json-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/json-lib.sh" # inlined by renderModelScript
# shellcheck source-path=SCRIPTDIR source=oci-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/oci-lib.sh" # inlined by renderModelScript

MANIFEST_TYPE=application/vnd.oci.image.manifest.v1+json
repo=$REPOSITORY
where="the registry $REGISTRY_URL"

# fail WHAT: the last request failed; one sentence with the model, the status and the config key.
fail() {
  die "model $model: $where answered $(oci_why) to $1 in $repo ($key)"
}

# blob_present DIGEST: 0 when the registry has it, 1 when not (404); any other answer fails the run.
blob_present() {
  if oci_request HEAD "$(oci_url "blobs/$1")"; then return 0; fi
  [[ $oci_status == 404 ]] || fail "the check for blob $1"
  return 1
}

# upload DIGEST FILE: a monolithic upload, POST then PUT with the digest (the registry checks it).
# --upload-file streams the file (--data-binary @FILE would read it all into memory first).
upload() {
  local digest=$1 file=$2 location sep="?"
  oci_request POST "$(oci_url blobs/uploads/)" --data-binary "" || fail "the start of the upload of blob $digest"
  location=$(oci_header Location)
  [[ -n $location ]] || die "model $model: $where answered HTTP $oci_status to the start of the upload of blob $digest in $repo but named no upload location ($key)"
  # A relative location is on the registry's own host.
  [[ $location =~ ^https?:// ]] || location="${REGISTRY_URL%/}/${location#/}"
  [[ $location != *\?* ]] || sep="&"
  # The digest's colon URL-encoded, as Docker sends it.
  oci_request PUT "$location${sep}digest=${digest/:/%3A}" -H "Content-Type: application/octet-stream" --upload-file "$file" \
    || fail "the upload of blob $digest"
}

if [[ $action == verify ]]; then
  digest=${MANIFEST_DIGEST:-}
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "model $model: MANIFEST_DIGEST=$digest: expected sha256:<64 hex digits> ($key)"
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  oci_request GET "$(oci_url "manifests/$digest")" -H "Accept: $MANIFEST_TYPE" -o "$tmp" || fail "the request for manifest $digest"
  # The registry serves by digest, but checking costs nothing: what is verified is what was asked
  # for (the file's exact bytes: a command substitution would drop a final newline).
  got=sha256:$(sha256sum "$tmp" | cut -d' ' -f1)
  [[ $got == "$digest" ]] || die "model $model: $where answered HTTP $oci_status with a manifest whose digest is $got, not $digest, in $repo ($key)"
  body=$(<"$tmp")
  # No jq here either: a descriptor's digest is a plain string, whatever the manifest's spacing.
  layers=${body#*\"layers\"}
  if [[ $layers == "$body" ]] || ! grep -Eq "\"digest\"[[:space:]]*:[[:space:]]*\"sha256:$hex\"" <<<"$layers"; then
    die "model $model: manifest $digest in $repo (HTTP $oci_status) has no layer sha256:$hex, the model's sha256; expected the artifact of this model ($key)"
  fi
  printf 'verified model=%s repository=%s manifest=%s\n' "$model" "$repo" "$digest"
  exit 0
fi

file=${FILE:-}
tag=${TAG:-}
[[ -f $file && -r $file ]] || die "model $model: FILE=$file is not a readable file ($key)"
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] || die "model $model: TAG=$tag: expected an OCI tag ($key)"
actual=$(sha256sum "$file" | cut -d' ' -f1)
[[ $actual == "$hex" ]] || die "model $model: $file has sha256 $actual, not the configured $hex; expected the sha256 of the file ($key)"
size=$(stat -c %s "$file")

bytes=0
if ! blob_present "sha256:$hex"; then
  log "model $model: uploading $size bytes to $repo"
  upload "sha256:$hex" "$file"
  bytes=$size
fi

# The empty config `{}` every artifact of this kind shares.
empty_digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
if ! blob_present "$empty_digest"; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  printf '{}' >"$tmp"
  upload "$empty_digest" "$tmp"
fi

# One line, fixed order: the same model gives the same bytes, so the same manifest digest.
manifest=$(printf '{"schemaVersion":2,"mediaType":"%s","artifactType":"application/vnd.jetson-fleet.model.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.jetson-fleet.model.onnx","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.title":%s}}]}' \
  "$MANIFEST_TYPE" "$empty_digest" "$hex" "$size" "$(json "$(basename "$file")")")
manifest_digest=sha256:$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
oci_request PUT "$(oci_url "manifests/$tag")" -H "Content-Type: $MANIFEST_TYPE" --data-binary "$manifest" \
  || fail "the manifest for tag $tag"
said=$(oci_header Docker-Content-Digest)
[[ -z $said || $said == "$manifest_digest" ]] \
  || die "model $model: $where stored the manifest for tag $tag in $repo as $said, not $manifest_digest (HTTP $oci_status) ($key)"
printf 'pushed model=%s repository=%s bytes=%s manifest=%s\n' "$model" "$repo" "$bytes" "$manifest_digest"
