# shellcheck shell=bash
# A small OCI distribution client over curl, for the model scripts: the Pulumi machine pushes and
# verifies model artifacts with it, hosts fetch model blobs with it. Sourced (inlined by
# renderModelScript) after json-lib.sh, whose `json` quotes its curl config values; it defines
# functions and variables prefixed oci_/_oci_ only.
#
# Environment it reads:
#   REGISTRY_URL       the registry's base URL, scheme://host[:port] (http://127.0.0.1:5000)
#   REPOSITORY         the repository's path in it (models/detector)
#   REGISTRY_USERNAME  optional; with REGISTRY_PASSWORD, used only when the registry asks
#   REGISTRY_PASSWORD
#
# Credentials (and bearer tokens) reach curl only through a config read from a pipe (-K with a
# process substitution of the printf builtin): never an argument, so never in `ps`, and never
# printed.

# The scheme and token a registry accepted last: later requests send them at once instead of
# going anonymous first and being told again.
_oci_auth=""
_oci_token=""
_oci_token_scope=""
# Set when this request already fetched its token: another 401 for the same scope is a refusal,
# not an expired token (a long upload can outlive one).
_oci_fresh=false

# oci_url PATH: the URL of PATH under the repository's API, /v2/<repository>/PATH.
oci_url() {
  printf '%s/v2/%s/%s' "${REGISTRY_URL%/}" "$REPOSITORY" "$1"
}

# _oci_config: the curl config lines of the current authorization (none when anonymous).
_oci_config() {
  case $_oci_auth in
    basic) printf 'user = %s\n' "$(json "$REGISTRY_USERNAME:${REGISTRY_PASSWORD:-}")" ;;
    bearer) printf 'header = %s\n' "$(json "Authorization: Bearer $_oci_token")" ;;
  esac
}

# oci_header NAME: the value of header NAME (case-insensitive) in oci_headers, the last response's.
oci_header() {
  awk -v want="${1,,}" '
    { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == want) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }
  ' <<<"$oci_headers"
}

# oci_why: how the last request went, for messages: "HTTP 404", "HTTP 401 (the registry refused the
# credentials)", "no answer (curl: (7) Failed to connect ...)".
oci_why() {
  local what="HTTP $oci_status"
  [[ $oci_status != 000 ]] || what="no answer"
  if [[ -n $oci_error ]]; then printf '%s (%s)' "$what" "$oci_error"; else printf '%s' "$what"; fi
}

# _oci_once METHOD URL [CURL_ARGS...]: one request with the current authorization.
_oci_once() {
  local method=$1 url=$2 hdr err body="" a rc=0 output=false
  shift 2
  hdr=$(mktemp) err=$(mktemp)
  # No --fail: the status is the caller's to judge. A transfer stalled for 2 minutes is given up.
  local -a args=(-sS -D "$hdr" --connect-timeout 30 --speed-limit 1 --speed-time 120 -w '%{http_code}')
  for a in "$@"; do [[ $a != -o && $a != --output ]] || output=true; done
  case $method in
    # -X HEAD would wait for a body that never comes.
    HEAD) args+=(--head) ;;
    GET) ;;
    *) args+=(-X "$method") ;;
  esac
  if ! $output; then
    body=$(mktemp)
    args+=(-o "$body")
  fi
  oci_status=$(curl -K <(_oci_config) "${args[@]}" "$@" -- "$url" 2>"$err") || rc=$?
  # With -L the file holds each response's headers: keep the last response's, without CRs.
  oci_headers=$(tr -d '\r' <"$hdr" | awk '/^HTTP\// { b = "" } { b = b $0 "\n" } END { printf "%s", b }')
  oci_body=""
  [[ -z $body ]] || oci_body=$(cat "$body")
  oci_error=""
  if ((rc)); then
    oci_status=000
    oci_error=$(tail -n 1 "$err")
  fi
  rm -f "$hdr" "$err" ${body:+"$body"}
  ((rc == 0))
}

# _oci_authorize: answers the 401 in oci_headers: Basic -> the credentials; Bearer -> a token from
# the challenge's realm for its service and scope (with the credentials when set). Returns 1 with
# oci_error when there is nothing new to try (no credentials, refused credentials, no token).
_oci_authorize() {
  local challenge scheme rest realm="" service="" scope="" s token_url
  challenge=$(oci_header WWW-Authenticate)
  scheme=${challenge%% *}
  scheme=${scheme,,}
  rest=${challenge#* }
  while [[ $rest =~ ([A-Za-z_]+)=\"([^\"]*)\" ]]; do
    case ${BASH_REMATCH[1],,} in
      realm) realm=${BASH_REMATCH[2]} ;;
      service) service=${BASH_REMATCH[2]} ;;
      scope) scope=${BASH_REMATCH[2]} ;;
    esac
    rest=${rest#*"${BASH_REMATCH[0]}"}
  done
  case $scheme in
    basic)
      if [[ -z ${REGISTRY_USERNAME:-} ]]; then
        oci_error="the registry asks for credentials and none were given"
        return 1
      fi
      if [[ $_oci_auth == basic ]]; then
        oci_error="the registry refused the credentials"
        return 1
      fi
      _oci_auth=basic
      ;;
    bearer)
      [[ -n $realm ]] || { oci_error="the registry's Bearer challenge names no realm"; return 1; }
      if [[ $_oci_auth == bearer && $_oci_token_scope == "$scope" ]] && $_oci_fresh; then
        oci_error="the registry refused the token its token service gave${REGISTRY_USERNAME:+ for these credentials}"
        return 1
      fi
      # The token request: anonymous, or with the credentials (Basic) when set.
      _oci_auth=""
      [[ -z ${REGISTRY_USERNAME:-} ]] || _oci_auth=basic
      local -a query=(-G -L)
      [[ -z $service ]] || query+=(--data-urlencode "service=$service")
      # Several scopes are separated by spaces; the token service takes each as a scope parameter.
      for s in $scope; do query+=(--data-urlencode "scope=$s"); done
      token_url=$realm
      if ! _oci_once GET "$token_url" "${query[@]}" || [[ $oci_status != 200 ]]; then
        oci_error="the token service $realm answered $(oci_why)"
        _oci_auth=""
        oci_status=401
        return 1
      fi
      # {"token": "...", "access_token": "...", ...}: no jq on the host, and tokens need no unescaping.
      token=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$oci_body" | head -n 1)
      [[ -n $token ]] || token=$(sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$oci_body" | head -n 1)
      if [[ -z $token ]]; then
        oci_error="the token service $realm gave no token"
        _oci_auth=""
        oci_status=401
        return 1
      fi
      _oci_auth=bearer _oci_token=$token _oci_token_scope=$scope _oci_fresh=true
      ;;
    *)
      oci_error="the registry asks for authentication scheme \"${challenge%% *}\", which this client does not speak"
      return 1
      ;;
  esac
}

# oci_request METHOD URL [CURL_ARGS...]: the request, authorized as the registry asks: anonymous
# first (or as the registry accepted last); on 401 with `WWW-Authenticate: Basic` again with the
# credentials; with `Bearer realm=...,service=...,scope=...` again with a token from the realm.
# Sets oci_status (HTTP status; 000 when the registry did not answer), oci_headers (the last
# response's), oci_body (its body, unless CURL_ARGS send it elsewhere with -o) and oci_error (why,
# in words, when it is more than the status). Returns 0 on a 2xx status, 1 otherwise.
oci_request() {
  local tries=0
  _oci_fresh=false
  while :; do
    _oci_once "$@" || return 1
    [[ $oci_status == 401 ]] || break
    # A second 401 with a new token: a push asks for a wider scope than the pull before it.
    ((tries++ < 2)) && _oci_authorize || return 1
  done
  [[ $oci_status == 2[0-9][0-9] ]]
}
