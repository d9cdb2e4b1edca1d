#!/usr/bin/env bash
# A TensorRT engine built on the host it runs on, a host step (root, through the launcher; its
# parameters are its environment). Engines are specific to the device, its L4T/TensorRT and the
# build settings, so each is built where it runs, in the service's own image (the TensorRT that
# loads it), and kept under a key of everything it depends on (KEY, computed by the deploy; this
# script checks it against the same text):
#   ENGINES_ROOT/PROJECT/SERVICE/MODEL/KEY/model.engine   the engine
#   ENGINES_ROOT/PROJECT/SERVICE/MODEL/KEY/engine.json    its build record
#   ENGINES_ROOT/PROJECT/SERVICE/MODEL/KEY/build.log      the builder's output
#   ENGINES_ROOT/PROJECT/builds.log                       one line per finished build attempt
#
# Create: a key directory that holds both files is the engine (`unchanged service=S model=M key=K`).
# Otherwise the builder (BUILDER, trtexec) runs in IMAGE with the model from the host's store
# (model-fetch.sh) read-only, no network, no capabilities, into a temporary directory beside the
# key's, which is renamed into place only once the engine and its record are complete: a build cut
# off at any point leaves no key directory, and the next run starts it again (removing the earlier
# run's container and files first). At most TIMEOUT seconds; a progress line every 10 s on stderr
# so a long build shows in `pulumi up`. Last line on stdout: `built service=S model=M key=K seconds=N`.
# A failed build changes no key directory: the previous engine, and the service mounting it, stay.
# Both end with the prune: of the model's key directories the KEEP newest (by mtime; an unchanged
# key is touched, so it counts as used now) stay, KEY among them, and so does any directory a
# container on the host mounts. Delete: the prune alone (the KEEP newest stay), so replacing the
# step removes nothing a service still mounts.
#
# Builds on a host run one at a time, whatever their project: a TensorRT build takes the GPU and
# much of a Jetson's memory. Each create and delete holds ENGINES_ROOT/build.lock.
#
#   PROJECT      the stack's compose project name     SERVICE, MODEL  DNS labels
#   HOST_NAME    the host's name in messages (default: hostname)
#   SHA256       the ONNX file's sha256 (64 hex)      IMAGE           repository@sha256:<digest>
#   KEY          the engine key, 16 hex digits (sha256 of the key text below)
#   BUILDER      trtexec's path in IMAGE              BUILD_ARGS      trtexec's arguments, one a line
#                                                                     (not --onnx or --saveEngine)
#   TIMEOUT      seconds (models[].engine.timeout)    KEEP            engines kept, at least 1
#   RUNTIME      the Docker runtime (nvidia)          L4T, GPU        the host's, as the key has them
#   ACTION       create (default) or delete
#   ENGINES_ROOT default /var/lib/jetson-fleet/engines
#   MODELS_ROOT  default /var/lib/jetson-fleet/models
#   LOCK_TIMEOUT seconds to wait for another build on this host (default 7200)
set -euo pipefail
# Decimal points and sort order as this script expects them, whatever the host's locale.
export LC_ALL=C

project=${PROJECT:-}
host=${HOST_NAME:-$(hostname)}
service=${SERVICE:-}
model=${MODEL:-}
hex=${SHA256:-}
image=${IMAGE:-}
key=${KEY:-}
builder=${BUILDER:-/usr/src/tensorrt/bin/trtexec}
timeout=${TIMEOUT:-1800}
keep=${KEEP:-2}
runtime=${RUNTIME:-nvidia}
l4t=${L4T:-none}
gpu=${GPU:-none}
action=${ACTION:-create}
engines=${ENGINES_ROOT:-/var/lib/jetson-fleet/engines}
models=${MODELS_ROOT:-/var/lib/jetson-fleet/models}
lock_timeout=${LOCK_TIMEOUT:-7200}
die() {
  printf '%s\n' "$*" >&2
  exit 1
}
fail() { die "host $host: model ${model:-?}: $*"; }
log() { printf 'host %s: model %s: %s\n' "$host" "$model" "$*" >&2; }

label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
[[ $model =~ $label ]] || fail "MODEL=$model: expected a DNS label; nothing was changed"
[[ $service =~ $label ]] || fail "SERVICE=$service: expected a DNS label; nothing was changed"
[[ $project =~ ^[a-z0-9][a-z0-9_-]*$ ]] || fail "PROJECT=$project: expected a compose project name; nothing was changed"
[[ $key =~ ^[0-9a-f]{16}$ ]] || fail "KEY=$key: expected 16 lower-case hex digits; nothing was changed"
[[ $keep =~ ^[1-9][0-9]*$ ]] || fail "KEEP=$keep: expected a whole number, at least 1 (models[].engine.keep); nothing was changed"
[[ $action =~ ^(create|delete)$ ]] || fail "ACTION=$action: expected create or delete; nothing was changed"
command -v docker >/dev/null || fail "docker is not installed on the host; nothing was changed"

model_dir=$engines/$project/$service/$model
key_dir=$model_dir/$key
build_log=$engines/$project/builds.log
container=jetson-fleet-engine-$project-$key

umask 022
install -d -m 0755 "$engines"

# --- the lock (see the top) -----------------------------------------------------------------------
command -v flock >/dev/null || fail "flock (util-linux) is not installed on the host; nothing was changed"
lock=$engines/build.lock
exec 9>>"$lock"
if ! flock -n 9; then
  waited=$SECONDS
  until flock -w 10 9; do
    ((SECONDS - waited < lock_timeout)) \
      || fail "another engine build still holds $lock after $lock_timeout s ($(cat "$lock" 2>/dev/null)); nothing was changed"
    log "waiting for the engine build holding $lock ($(cat "$lock" 2>/dev/null)): $((SECONDS - waited)) s"
  done
fi
# Who holds it, for the message of the next one that waits (the lock is on the file, not its text).
printf 'project %s, service %s, model %s, key %s, pid %s, since %s\n' \
  "$project" "$service" "$model" "$key" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$lock"

# --- the prune --------------------------------------------------------------------------------------
# in_use: the host directories every container on the host (running or not) mounts, one a line.
# Fails when Docker does not answer: then nothing is known to be unused.
in_use() {
  local ids
  ids=$(docker ps -aq) || return 1
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086 # one id a word
  docker inspect -f '{{range .Mounts}}{{.Source}}{{"\n"}}{{end}}' $ids 2>/dev/null | sed '/^$/d' || true
}
# mounted DIR: 0 when a line of $mounts is DIR or a path below it.
mounted() {
  awk -v d="$1" '$0 == d || index($0, d "/") == 1 { found = 1 } END { exit !found }' <<<"$mounts"
}
# prune [KEY]: keeps the KEEP newest key directories (KEY always one of them) and every one a
# container mounts (an engine is a file in it); removes the others, and temporary directories of
# builds cut off earlier (this run holds the lock, so none is being written).
prune() {
  local want=${1:-} mounts d name kept=0
  local -a dirs=()
  [[ -d $model_dir ]] || return 0
  if ! mounts=$(in_use); then
    log "Docker did not list the host's containers; no engine was pruned"
    return 0
  fi
  rm -rf -- "$model_dir"/.*.tmp
  [[ -z $want || ! -d $model_dir/$want ]] || kept=1
  mapfile -t dirs < <(find "$model_dir" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{16}' -printf '%T@ %f\n' | sort -rn | cut -d' ' -f2)
  for name in "${dirs[@]}"; do
    [[ $name != "$want" ]] || continue
    d=$model_dir/$name
    if ((kept < keep)); then
      kept=$((kept + 1))
    elif mounted "$d"; then
      log "kept engine $name beyond KEEP=$keep: a container on the host mounts it"
    else
      rm -rf -- "$d"
      log "removed engine $name (KEEP=$keep)"
    fi
  done
}

if [[ $action == delete ]]; then
  prune
  printf 'pruned service=%s model=%s keep=%s\n' "$service" "$model" "$keep"
  exit 0
fi

# --- the key -----------------------------------------------------------------------------------------
[[ $hex =~ ^[0-9a-f]{64}$ ]] || fail "SHA256=$hex: expected 64 lower-case hex digits; nothing was changed"
[[ $image =~ ^[^@[:space:]]+@(sha256:[0-9a-f]{64})$ ]] || fail "IMAGE=$image: expected repository@sha256:<digest>; nothing was changed"
digest=${BASH_REMATCH[1]}
[[ $timeout =~ ^[1-9][0-9]*$ ]] || fail "TIMEOUT=$timeout: expected whole seconds, at least 1 (models[].engine.timeout); nothing was changed"
[[ $builder == /* ]] || fail "BUILDER=$builder: expected an absolute path in the image (models[].engine.builder); nothing was changed"
[[ $runtime =~ ^[A-Za-z0-9_.-]+$ ]] || fail "RUNTIME=$runtime: expected a Docker runtime name; nothing was changed"
args=()
while IFS= read -r line; do
  [[ -z $line ]] || args+=("$line")
done <<<"${BUILD_ARGS:-}"
for a in "${args[@]}"; do
  [[ $a != --onnx=* && $a != --saveEngine=* ]] || fail "BUILD_ARGS holds $a; the build sets --onnx and --saveEngine itself; nothing was changed"
done

# The same text the deploy hashes (components/models/engine.ts, engineKeyText): a key computed from
# other inputs would name an engine built from something else.
text=$(printf 'jetson-fleet-engine/1\nmodel=%s\nimage=%s\nl4t=%s\ngpu=%s\nargs=%s\n' "$hex" "$digest" "$l4t" "$gpu" "${args[*]}")
computed=$(printf '%s\n' "$text" | sha256sum | cut -c1-16)
[[ $computed == "$key" ]] || fail "KEY=$key is not the key of these inputs ($computed); expected the deploy and this script to hash the same text; nothing was changed"
# The host must be the one the key describes: an engine built on (or for) another L4T or GPU would
# not load. The same derivations as facts.sh.
host_l4t=none
if [[ -r /etc/nv_tegra_release && $(head -n 1 /etc/nv_tegra_release) =~ R([0-9]+)\ \(release\),\ REVISION:\ ([0-9.]+) ]]; then
  host_l4t="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
fi
host_gpu=none
if [[ -r /proc/device-tree/compatible ]]; then
  host_gpu=$(tr '\0' ',' </proc/device-tree/compatible)
  while [[ $host_gpu == *, ]]; do host_gpu=${host_gpu%,}; done
  [[ -n $host_gpu ]] || host_gpu=none
fi
[[ $host_l4t == "$l4t" && $host_gpu == "$gpu" ]] \
  || fail "the host has L4T $host_l4t and GPU $host_gpu, but the engine key was computed for L4T $l4t and GPU $gpu; refresh the host's facts (pulumi refresh) and deploy again; nothing was changed"

# --- unchanged -----------------------------------------------------------------------------------------
if [[ -s $key_dir/model.engine && -s $key_dir/engine.json ]]; then
  # Used now: the prune counts it among the newest.
  touch "$key_dir"
  prune "$key"
  printf 'unchanged service=%s model=%s key=%s\n' "$service" "$model" "$key"
  exit 0
fi

# --- the build -------------------------------------------------------------------------------------------
install -d -m 0755 "$engines/$project" "$engines/$project/$service" "$model_dir"
blob=$models/$project/sha256/$hex
[[ -f $blob ]] || fail "the model sha256:$hex is not in the host's model store ($blob); expected the model's fetch step to have put it there; nothing was changed"

if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "pulling $image"
  out=$(docker pull -q "$image" 2>&1) || fail "pulling $image failed: $(tail -n 3 <<<"$out" | tr '\n' ' '); nothing was changed"
fi

tmp=$model_dir/.$key.tmp
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
start=$SECONDS
# record RESULT SECONDS: the attempt's line in builds.log.
record() {
  printf '%s host=%s service=%s model=%s key=%s result=%s seconds=%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$host" "$service" "$model" "$key" "$1" "$2" >>"$build_log"
}
# A run cut off earlier may have left its container (still building) and its files.
docker rm -f "$container" >/dev/null 2>&1 || true
rm -rf -- "$tmp"
install -d -m 0755 "$tmp"
out=$tmp/build.log
# Whatever ends this run (an error, SIGTERM, the SSH session dropping), the build's container and
# temporary files go with it.
cleanup() {
  [[ -z ${pid:-} ]] || { docker rm -f "$container" >/dev/null 2>&1 || true; }
  rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 130' INT
# Its session gone (the deploy cut off), the next progress line cannot be written: stop too.
trap 'exit 141' PIPE

# The builder's container: the image's TensorRT, the model read-only, the output directory; no
# network, no capabilities, no new privileges. Its client does not hold the lock (fd 9): a build
# orphaned by a cut-off run must not block the next run, which removes it.
docker run --name "$container" --rm --runtime "$runtime" --network none --user 0:0 --cap-drop ALL \
  --security-opt no-new-privileges --entrypoint "$builder" \
  -v "$blob:/jetson-fleet/model.onnx:ro" -v "$tmp:/jetson-fleet/out" \
  "$image" --onnx=/jetson-fleet/model.onnx --saveEngine=/jetson-fleet/out/model.engine "${args[@]}" \
  </dev/null >"$out" 2>&1 9>&- &
pid=$!
log "building the engine (key $key) in $image, at most $timeout s"
last() { tail -n "$1" "$out" 2>/dev/null | tr -d '\r'; }
next=10
rc=0
while kill -0 "$pid" 2>/dev/null; do
  if ((SECONDS - start >= timeout)); then
    docker rm -f "$container" >/dev/null 2>&1 || true
    wait "$pid" || true
    record failed "$((SECONDS - start))"
    fail "the engine build did not finish within $timeout s (models[].engine.timeout) in $image; the build container was removed; the previous engine and service $service are unchanged; the builder's last output:
$(last 20)"
  fi
  if ((SECONDS - start >= next)); then
    log "building the engine (key $key): $((SECONDS - start)) s, $(last 1 | cut -c1-200)"
    next=$((next + 10))
  fi
  sleep 1
done
wait "$pid" || rc=$?
pid=""

if ((rc == 0)) && [[ ! -s $tmp/model.engine ]]; then
  printf '%s: exited 0 but wrote no engine (/jetson-fleet/out/model.engine)\n' "$builder" >>"$out"
  rc=1
fi
seconds=$((SECONDS - start))
if ((rc)); then
  record failed "$seconds"
  # Docker's own codes: the image has nothing to run at that path.
  hint=""
  ((rc != 126 && rc != 127)) || hint=" (is $builder, models[].engine.builder, trtexec's path in the image?)"
  fail "the engine build failed (exit $rc$hint) in $image; the previous engine and service $service are unchanged; the builder's last output:
$(last 20)"
fi

# shellcheck source-path=SCRIPTDIR source=json-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/json-lib.sh" # inlined by renderModelScript
json_args=""
for a in "${args[@]}"; do json_args+="${json_args:+,}$(json "$a")"; done
printf '{"model":%s,"sha256":%s,"key":%s,"image":%s,"l4tRelease":%s,"gpu":%s,"args":[%s],"builtAt":%s,"seconds":%s}\n' \
  "$(json "$model")" "$(json "$hex")" "$(json "$key")" "$(json "$image")" "$(json "$l4t")" "$(json "$gpu")" \
  "$json_args" "$(json "$started")" "$seconds" >"$tmp/engine.json"
chmod 0644 "$tmp/model.engine" "$tmp/engine.json" "$out"
chmod 0755 "$tmp"
# A key directory without both files (damaged by hand) is not an engine: replaced whole.
rm -rf -- "$key_dir"
mv -T -- "$tmp" "$key_dir"
trap - EXIT
record built "$seconds"
prune "$key"
printf 'built service=%s model=%s key=%s seconds=%s\n' "$service" "$model" "$key" "$seconds"
