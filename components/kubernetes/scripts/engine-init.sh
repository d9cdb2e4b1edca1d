#!/bin/sh
# The TensorRT engines of a Kubernetes service, built on the node its pod runs on by the pod's init
# containers, in the service's own image (its TensorRT), before the service starts
# (components/kubernetes/engines.ts renders them; the script reaches them in a ConfigMap). POSIX sh:
# whatever shell the image has; the TensorRT images are Ubuntu, with coreutils and util-linux.
#
#   engine-init.sh facts         init container node-facts (uid 65534, no capabilities): the node's
#                                L4T release and GPU, as the engine key has them, from the node's
#                                /etc and /sys/firmware (mounted read-only at ENGINE_HOST_ETC and
#                                ENGINE_HOST_FIRMWARE), into ENGINE_FACTS/l4t and ENGINE_FACTS/gpu.
#   engine-init.sh build ARGS    init container engine-<model> (root: the stores are root's, as
#                                the per-host targets keep them; no capabilities): ARGS are the
#                                trtexec arguments (trtexecArgs, without --onnx and --saveEngine).
#
# build: the engine key is the same text the deploy hashes (components/models/engine.ts,
# engineKeyText), from the model's SHA-256, the image's digest, the node's facts and ARGS. The
# engine is ENGINE_ROOT/NAMESPACE/SERVICE/MODEL/KEY/model.engine, beside its build record
# engine.json, the tree the per-host targets keep (the namespace in place of the compose project):
#   - a key directory with both files is reused (touched: the prune counts it as used now);
#   - else, one build at a time on the node (ENGINE_ROOT/build.lock, shared with the per-host
#     targets' builds): the model is fetched into MODEL_STORE_ROOT/NAMESPACE/sha256/HEX unless it
#     is there (GET ENGINE_MODEL_URL, the registry's basic or bearer auth with the pull secret's
#     login, checked by SHA-256, renamed into place), the builder runs into ENGINE_DIR/.KEY.tmp for
#     at most ENGINE_TIMEOUT_SECONDS, the record is written and the directory renamed to KEY;
#     ENGINE_ROOT/NAMESPACE/builds.log gets one line per finished attempt; then the model's key
#     directories are pruned to the ENGINE_KEEP newest, KEY among them;
#   - ENGINE_LINK (in an emptyDir the service mounts read-only at its path's directory) and
#     ENGINE_LINK.json become symbolic links to the engine and its record, which the service's
#     container sees at the same place (its ENGINE_DIR/.. mounted read-only).
# Exit codes: 0 the engine is ready (reused or built); 1 a wrong parameter (a deploy bug) or a
# missing tool; 2 the model could not be fetched; 3 the build failed; 4 the build timed out. A
# failure's message (model, key, the builder's last output) is also the container's termination
# message, which `kubectl describe pod` shows; the pod does not start, and the rollout stops there.
#
# Environment (build): ENGINE_NAMESPACE ENGINE_SERVICE ENGINE_MODEL (DNS labels), ENGINE_MODEL_SHA256
# (64 hex), ENGINE_IMAGE (repository@sha256:<digest>), ENGINE_BUILDER (absolute path),
# ENGINE_TIMEOUT_SECONDS, ENGINE_KEEP, ENGINE_LINK, ENGINE_MODEL_URL, ENGINE_REGISTRY (host[:port]),
# ENGINE_REGISTRY_AUTH (a .dockerconfigjson file; empty: anonymous), ENGINE_NODE_NAME, ENGINE_FACTS,
# ENGINE_ROOT (default /var/lib/jetson-fleet/engines), ENGINE_MODEL_STORE_ROOT (default
# /var/lib/jetson-fleet/models). ENGINE_HTTP: auto (default: python3, else curl), python3 or curl.
set -eu
export LC_ALL=C

# --- the engine key (engineKeyText in components/models/engine.ts) ---------------------------------

# l4t_release FILE: the L4T release in an nv_tegra_release file ("# R36 (release), REVISION: 4.3, ..."
# is 36.4.3), as facts.sh derives it, or "none".
l4t_release() {
  release=
  if [ -r "$1" ] && [ -f "$1" ]; then
    release=$(head -n 1 "$1" | sed -n 's/^.*R\([0-9][0-9]*\) (release), REVISION: \([0-9.][0-9.]*\).*$/\1.\2/p')
  fi
  printf '%s\n' "${release:-none}"
}

# gpu_identity FILE: a device tree's compatible entries (NUL-separated) joined with ",", or "none".
gpu_identity() {
  gpu=
  if [ -r "$1" ] && [ -f "$1" ]; then
    gpu=$(tr '\0' ',' <"$1" | sed 's/,*$//')
  fi
  printf '%s\n' "${gpu:-none}"
}

# engine_key_text SHA256 DIGEST L4T GPU ARGS...: the text the key hashes.
engine_key_text() {
  key_model=$1 key_image=$2 key_l4t=${3:-none} key_gpu=${4:-none}
  shift 4
  old_ifs=$IFS
  IFS=' '
  key_args="$*"
  IFS=$old_ifs
  printf 'jetson-fleet-engine/1\nmodel=%s\nimage=%s\nl4t=%s\ngpu=%s\nargs=%s\n' \
    "$key_model" "$key_image" "${key_l4t:-none}" "${key_gpu:-none}" "$key_args"
}

# engine_key SHA256 DIGEST L4T GPU ARGS...: the first 16 hex digits of the text's SHA-256.
engine_key() {
  engine_key_text "$@" | sha256sum | cut -c1-16
}

# --- helpers -------------------------------------------------------------------------------------------

say() { printf 'engine-init: %s\n' "$*" >&2; }

# die CODE MESSAGE: the message on stderr and as the termination message, then exit CODE.
die() {
  code=$1
  shift
  printf 'engine-init: %s\n' "$*" >&2
  if [ -w /dev/termination-log ]; then printf '%s\n' "$*" | tail -c 4000 >/dev/termination-log 2>/dev/null || true; fi
  exit "$code"
}

now_iso() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# json TEXT: a JSON string.
json() {
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$(printf '\t')/\\\\t/g" -e "s/$(printf '\r')/\\\\r/g")"
}

is_label() {
  case $1 in
    '' | -* | *- | *[!a-z0-9-]*) return 1 ;;
  esac
  [ "${#1}" -le 63 ]
}

is_hex() { # is_hex TEXT LENGTH
  case $1 in *[!0-9a-f]* | '') return 1 ;; esac
  [ "${#1}" -eq "$2" ]
}

is_count() {
  case $1 in '' | *[!0-9]* | 0*) return 1 ;; esac
}

# --- facts -------------------------------------------------------------------------------------------

facts() {
  dir=${ENGINE_FACTS:-}
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then die 1 "ENGINE_FACTS=$dir: expected the directory the node's facts go to"; fi
  etc=${ENGINE_HOST_ETC:-/host/etc}
  firmware=${ENGINE_HOST_FIRMWARE:-/host/sys/firmware}
  # /proc/device-tree is a link to /sys/firmware/devicetree/base on every Linux.
  l4t=$(l4t_release "$etc/nv_tegra_release")
  gpu=$(gpu_identity "$firmware/devicetree/base/compatible")
  printf '%s\n' "$l4t" >"$dir/l4t"
  printf '%s\n' "$gpu" >"$dir/gpu"
  say "node ${ENGINE_NODE_NAME:-?}: L4T $l4t, GPU $gpu"
}

# --- the model's fetch -------------------------------------------------------------------------------

# fetch_python URL DEST REGISTRY AUTH_FILE SHA256: the blob into DEST, checked; a message on failure.
fetch_python() {
  python3 - "$@" <<'PY'
import base64, hashlib, json, re, sys, urllib.error, urllib.parse, urllib.request

url, dest, registry, auth_file, want = sys.argv[1:6]


def login():
    if not auth_file:
        return None
    with open(auth_file, encoding="utf-8") as f:
        auths = json.load(f).get("auths", {})
    for name in (registry, "https://" + registry, "http://" + registry):
        entry = auths.get(name)
        if isinstance(entry, dict):
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
                return user, password
            if entry.get("username") is not None:
                return entry["username"], entry.get("password", "")
    return None


def basic(creds):
    return "Basic " + base64.b64encode(("%s:%s" % creds).encode("utf-8")).decode("ascii")


def get(target, authorization=None):
    request = urllib.request.Request(target)
    if authorization:
        # Not sent on to where a redirect points (a storage backend).
        request.add_unredirected_header("Authorization", authorization)
    return urllib.request.urlopen(request, timeout=60)


def failure(e):
    body = e.read(300).decode("utf-8", "replace").strip() if hasattr(e, "read") else ""
    return "HTTP %s%s" % (e.code, (": " + body) if body else "")


creds = login()
try:
    try:
        response = get(url)
    except urllib.error.HTTPError as e:
        if e.code != 401:
            raise
        challenge = e.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if creds is None:
                sys.exit("the registry asks for a login and the pod has none (registry.username and its pull secret)")
            response = get(url, basic(creds))
        elif scheme == "bearer":
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = {k: params[k] for k in ("service", "scope") if k in params}
            realm = params.get("realm", "")
            token_url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
            token = json.load(get(token_url, basic(creds) if creds else None))
            response = get(url, "Bearer " + (token.get("token") or token.get("access_token") or ""))
        else:
            raise
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
except urllib.error.HTTPError as e:
    sys.exit("GET %s: %s" % (e.url or url, failure(e)))
except (urllib.error.URLError, OSError, ValueError) as e:
    sys.exit("GET %s: %s" % (url, getattr(e, "reason", e)))
if digest.hexdigest() != want:
    sys.exit("GET %s: the content's SHA-256 is %s; expected %s (models[].sha256)" % (url, digest.hexdigest(), want))
PY
}

# param NAME: a parameter of the bearer challenge in $challenge.
param() { printf '%s' "$challenge" | sed -n 's/.*'"$1"'="\([^"]*\)".*/\1/p'; }

# fetch_curl URL DEST REGISTRY AUTH_FILE SHA256: the same with curl (the login's "auth" field).
fetch_curl() {
  url=$1 dest=$2 registry=$3 auth_file=$4 want=$5
  headers=$dest.headers
  basic=
  if [ -n "$auth_file" ]; then
    escaped=$(printf '%s' "$registry" | sed 's/[].[\/*^$]/\\&/g')
    basic=$(tr -d ' \n\r\t' <"$auth_file" | sed -n 's/.*"\(https\{0,1\}:\/\/\)\{0,1\}'"$escaped"'":{[^}]*"auth":"\([A-Za-z0-9+/=]*\)".*/\2/p')
  fi
  code=$(curl -sS -L -o "$dest" -D "$headers" -w '%{http_code}' "$url" 2>&1) || { rm -f "$headers"; printf 'GET %s: %s\n' "$url" "$code" >&2; return 1; }
  if [ "$code" = 401 ]; then
    challenge=$(tr -d '\r' <"$headers" | sed -n 's/^[Ww][Ww][Ww]-[Aa][Uu][Tt][Hh][Ee][Nn][Tt][Ii][Cc][Aa][Tt][Ee]: *//p' | tail -n 1)
    case $challenge in
      [Bb]asic*)
        [ -n "$basic" ] || { rm -f "$headers"; printf 'the registry asks for a login and the pod has none (registry.username and its pull secret)\n' >&2; return 1; }
        authorization="Basic $basic"
        ;;
      [Bb]earer*)
        realm=$(param realm)
        if [ -n "$basic" ]; then
          token=$(curl -sS -f -G -H "Authorization: Basic $basic" --data-urlencode "service=$(param service)" --data-urlencode "scope=$(param scope)" "$realm") || { rm -f "$headers"; printf 'GET %s: the token request failed\n' "$realm" >&2; return 1; }
        else
          token=$(curl -sS -f -G --data-urlencode "service=$(param service)" --data-urlencode "scope=$(param scope)" "$realm") || { rm -f "$headers"; printf 'GET %s: the token request failed\n' "$realm" >&2; return 1; }
        fi
        token=$(printf '%s' "$token" | tr -d ' \n\r\t' | sed -n 's/.*"\(access_\)\{0,1\}token":"\([^"]*\)".*/\2/p' | head -n 1)
        authorization="Bearer $token"
        ;;
      *) authorization= ;;
    esac
    if [ -n "$authorization" ]; then
      code=$(curl -sS -L -o "$dest" -D "$headers" -w '%{http_code}' -H "Authorization: $authorization" "$url" 2>&1) || { rm -f "$headers"; printf 'GET %s: %s\n' "$url" "$code" >&2; return 1; }
    fi
  fi
  rm -f "$headers"
  if [ "$code" != 200 ]; then
    printf 'GET %s: HTTP %s: %s\n' "$url" "$code" "$(head -c 300 "$dest" | tr -d '\n')" >&2
    return 1
  fi
  got=$(sha256sum "$dest" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { printf "GET %s: the content's SHA-256 is %s; expected %s (models[].sha256)\n" "$url" "$got" "$want" >&2; return 1; }
}

# fetch_model BLOB: the model into the node's store unless it is there.
fetch_model() {
  blob=$1
  [ -f "$blob" ] && return 0
  store=$(dirname "$(dirname "$blob")")
  mkdir -p "$store/sha256" "$store/tmp"
  part=$store/tmp/$hex.$$
  fetched=0
  client=${ENGINE_HTTP:-auto}
  if [ "$client" = auto ]; then
    if command -v python3 >/dev/null 2>&1; then client=python3; elif command -v curl >/dev/null 2>&1; then client=curl; else client=none; fi
  fi
  say "fetching model $model (sha256:$hex) from $ENGINE_MODEL_URL with $client"
  case $client in
    python3) fetch_python "$ENGINE_MODEL_URL" "$part" "${ENGINE_REGISTRY:-}" "${ENGINE_REGISTRY_AUTH:-}" "$hex" 2>"$part.err" || fetched=$? ;;
    curl) fetch_curl "$ENGINE_MODEL_URL" "$part" "${ENGINE_REGISTRY:-}" "${ENGINE_REGISTRY_AUTH:-}" "$hex" 2>"$part.err" || fetched=$? ;;
    *) die 2 "model $model: neither python3 nor curl is in image $image; expected one of them to fetch the model; nothing was changed" ;;
  esac
  if [ "$fetched" != 0 ]; then
    reason=$(tail -n 5 "$part.err")
    rm -f "$part" "$part.err"
    die 2 "model $model (sha256:$hex): the fetch failed: $reason; nothing was changed"
  fi
  rm -f "$part.err"
  chmod 0644 "$part"
  mv -f "$part" "$blob"
}

# --- the build ---------------------------------------------------------------------------------------

record() { # record RESULT SECONDS: the attempt's line in builds.log
  printf '%s host=%s service=%s model=%s key=%s result=%s seconds=%s\n' \
    "$(now_iso)" "$node" "$service" "$model" "$key" "$1" "$2" >>"$root/$namespace/builds.log"
}

# prune: keeps the ENGINE_KEEP newest key directories (by mtime), KEY always one of them; removes
# the others and the temporary directories of builds cut off earlier (the caller holds the lock).
prune() {
  for stale in "$model_dir"/.*.tmp; do
    [ ! -d "$stale" ] || rm -rf -- "$stale"
  done
  kept=1
  # Newest first; only names of 16 hex digits (no blanks, no globs) are key directories.
  # shellcheck disable=SC2045
  for name in $(ls -1t "$model_dir"); do
    if ! is_hex "$name" 16 || [ ! -d "$model_dir/$name" ] || [ "$name" = "$key" ]; then continue; fi
    if [ "$kept" -lt "$keep" ]; then
      kept=$((kept + 1))
    else
      rm -rf -- "${model_dir:?}/$name"
      say "removed engine $name of model $model (models[].engine.keep: $keep)"
    fi
  done
}

link() {
  ln -sfn "$key_dir/model.engine" "$ENGINE_LINK"
  ln -sfn "$key_dir/engine.json" "$ENGINE_LINK.json"
}

build() {
  namespace=${ENGINE_NAMESPACE:-} service=${ENGINE_SERVICE:-} model=${ENGINE_MODEL:-}
  hex=${ENGINE_MODEL_SHA256:-} image=${ENGINE_IMAGE:-} builder=${ENGINE_BUILDER:-/usr/src/tensorrt/bin/trtexec}
  timeout=${ENGINE_TIMEOUT_SECONDS:-1800} keep=${ENGINE_KEEP:-2} node=${ENGINE_NODE_NAME:-$(uname -n)}
  root=${ENGINE_ROOT:-/var/lib/jetson-fleet/engines} models=${ENGINE_MODEL_STORE_ROOT:-/var/lib/jetson-fleet/models}
  is_label "$namespace" || die 1 "ENGINE_NAMESPACE=$namespace: expected a DNS label"
  is_label "$service" || die 1 "ENGINE_SERVICE=$service: expected a DNS label"
  is_label "$model" || die 1 "ENGINE_MODEL=$model: expected a DNS label"
  is_hex "$hex" 64 || die 1 "ENGINE_MODEL_SHA256=$hex: expected 64 lower-case hex digits"
  digest=${image##*@}
  case $image in *@sha256:*) ;; *) digest= ;; esac
  is_hex "${digest#sha256:}" 64 || die 1 "ENGINE_IMAGE=$image: expected repository@sha256:<digest>"
  case $builder in /*) ;; *) die 1 "ENGINE_BUILDER=$builder: expected an absolute path (models[].engine.builder)" ;; esac
  is_count "$timeout" || die 1 "ENGINE_TIMEOUT_SECONDS=$timeout: expected whole seconds, at least 1"
  is_count "$keep" || die 1 "ENGINE_KEEP=$keep: expected a whole number, at least 1"
  if [ -z "${ENGINE_LINK:-}" ] || [ ! -d "$(dirname "$ENGINE_LINK")" ]; then die 1 "ENGINE_LINK=${ENGINE_LINK:-}: expected a path in the engines' emptyDir"; fi
  facts=${ENGINE_FACTS:-}
  if [ ! -f "$facts/l4t" ] || [ ! -f "$facts/gpu" ]; then
    die 1 "ENGINE_FACTS=$facts: the node's facts are missing; expected init container node-facts to have written l4t and gpu"
  fi
  for a in "$@"; do
    case $a in --onnx=* | --saveEngine=*) die 1 "the arguments hold $a; the build sets --onnx and --saveEngine itself" ;; esac
  done
  l4t=$(cat "$facts/l4t")
  gpu=$(cat "$facts/gpu")
  key=$(engine_key "$hex" "$digest" "$l4t" "$gpu" "$@")
  model_dir=$root/$namespace/$service/$model
  key_dir=$model_dir/$key
  umask 022
  mkdir -p "$model_dir"

  if [ -s "$key_dir/model.engine" ] && [ -s "$key_dir/engine.json" ]; then
    touch "$key_dir"
    link
    # Pruned only when no build is under way on the node (the prune removes temporary directories).
    if command -v flock >/dev/null 2>&1; then
      exec 9>>"$root/build.lock"
      if flock -n 9; then prune; fi
      exec 9>&-
    fi
    say "model $model: engine $key reused (L4T $l4t, GPU $gpu) on node $node"
    return 0
  fi

  command -v timeout >/dev/null 2>&1 || die 1 "timeout (coreutils) is not in image $image; expected it to bound the build"
  if command -v flock >/dev/null 2>&1; then
    exec 9>>"$root/build.lock"
    if ! flock -n 9; then
      say "model $model: waiting for the engine build under way on node $node ($(cat "$root/build.lock" 2>/dev/null || true))"
      flock 9
    fi
    printf 'namespace %s, service %s, model %s, key %s, node %s, since %s\n' "$namespace" "$service" "$model" "$key" "$node" "$(now_iso)" >"$root/build.lock"
  else
    say "flock is not in image $image: builds on node $node are not serialised"
  fi
  # Built by another pod while this one waited.
  if [ -s "$key_dir/model.engine" ] && [ -s "$key_dir/engine.json" ]; then
    touch "$key_dir"
    link
    prune
    say "model $model: engine $key reused (built meanwhile) on node $node"
    return 0
  fi

  blob=$models/$namespace/sha256/$hex
  fetch_model "$blob"
  [ -x "$builder" ] || die 3 "model $model, key $key: the builder $builder is not an executable in image $image (models[].engine.builder); nothing was changed"

  tmp=$model_dir/.$key.tmp
  rm -rf -- "$tmp"
  mkdir -p "$tmp"
  started=$(now_iso)
  start=$(date +%s)
  say "model $model: building engine $key with $builder (at most $timeout s) on node $node: L4T $l4t, GPU $gpu, $*"
  {
    rc=0
    timeout -k 30 "$timeout" "$builder" "--onnx=$blob" "--saveEngine=$tmp/model.engine" "$@" </dev/null 2>&1 || rc=$?
    printf '%s\n' "$rc" >"$tmp/.status"
  } | tee "$tmp/build.log"
  rc=$(cat "$tmp/.status" 2>/dev/null || echo 1)
  rm -f "$tmp/.status"
  seconds=$(($(date +%s) - start))
  if [ "$rc" = 0 ] && [ ! -s "$tmp/model.engine" ]; then
    printf '%s exited 0 but wrote no engine\n' "$builder" >>"$tmp/build.log"
    rc=1
  fi
  if [ "$rc" != 0 ]; then
    record failed "$seconds"
    last=$(tail -n 20 "$tmp/build.log" | tr -d '\r')
    rm -rf -- "$tmp"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
      die 4 "model $model, key $key: the engine build did not finish within $timeout s (models[].engine.timeout) on node $node; the builder's last output:
$last"
    fi
    die 3 "model $model, key $key: the engine build failed (exit $rc) on node $node in $image; the builder's last output:
$last"
  fi
  args_json=
  for a in "$@"; do args_json="$args_json${args_json:+,}$(json "$a")"; done
  printf '{"model":%s,"sha256":%s,"key":%s,"image":%s,"l4tRelease":%s,"gpu":%s,"args":[%s],"builtAt":%s,"seconds":%s}\n' \
    "$(json "$model")" "$(json "$hex")" "$(json "$key")" "$(json "$image")" "$(json "$l4t")" "$(json "$gpu")" \
    "$args_json" "$(json "$started")" "$seconds" >"$tmp/engine.json"
  chmod 0644 "$tmp/model.engine" "$tmp/engine.json" "$tmp/build.log"
  chmod 0755 "$tmp"
  # A key directory without both files (damaged by hand) is not an engine: replaced whole.
  rm -rf -- "$key_dir"
  mv -f -- "$tmp" "$key_dir"
  record built "$seconds"
  link
  prune
  say "model $model: engine $key built in $seconds s on node $node"
}

main() {
  step=${1:-}
  [ $# -eq 0 ] || shift
  case $step in
    facts) facts ;;
    build) build "$@" ;;
    *) die 1 "expected the step as the first argument: facts or build; got '$step'" ;;
  esac
}

# Sourced by the unit tests for the functions above.
[ "${ENGINE_INIT_LIBRARY:-}" = 1 ] || main "$@"
