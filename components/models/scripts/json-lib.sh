# shellcheck shell=bash
# json TEXT: TEXT as a double-quoted JSON string (backslash, quote and control characters escaped),
# without jq, which JetPack lacks. A quoted value in curl's config takes the same escapes, so
# oci-lib.sh quotes its credentials with it too. Sourced (inlined by renderModelScript).
json() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
