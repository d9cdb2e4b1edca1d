#!/usr/bin/env bash
# Merges the stack's settings into /etc/docker/daemon.json, registers the nvidia runtime with
# nvidia-ctk, and restarts Docker only when the file changed. Writes through a temp file and one
# rename, so an interruption never leaves a broken file.
#
# What the stack owns is recorded on the host (/var/lib/jetson-fleet/daemon-json.managed.json,
# mode 600: values may hold proxy credentials): each setting it wrote, as a path of keys to a value
# that is not an object (`log-opts.max-size`), with the value it wrote and the value the host had
# there before, if any.
#   - A setting the host had and the stack does not name is never touched.
#   - A setting the stack no longer names goes back to what the host had before the stack set it
#     (removed when the host had none; objects left empty by that are removed too), unless
#     someone changed it on the host since the stack wrote it: then it is the host's again.
#   - A host setting the stack overrides keeps its original value in the record until then.
# The record is written before daemon.json (old and new settings and values together) and again
# after it (the new ones only), so a run cut off anywhere is finished by the next one.
set -euo pipefail
: "${DAEMON_JSON:?}" "${NVIDIA_DEFAULT_RUNTIME:?}"
file=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
managed=${DOCKER_DAEMON_JSON_MANAGED:-/var/lib/jetson-fleet/daemon-json.managed.json}

mkdir -p "$(dirname "$file")" "$(dirname "$managed")"
tmp=$(mktemp "$file.XXXXXX")
trap 'rm -f "$tmp" "$tmp.merged" "$tmp.record"' EXIT
if [[ -s $file ]]; then cp "$file" "$tmp"; else echo '{}' >"$tmp"; fi
record='{"settings":[]}'
[[ -s $managed ]] && record=$(cat "$managed")

# One jq program: {file, pending, record}. A setting is {path, values, before?}: `values` are what
# the stack may have written there (one once a run completes; the old and the new one while a run
# is under way), `before` absent means the host had nothing there. From the environment, not an
# argument: daemon.json may hold proxy credentials (ps shows arguments).
# shellcheck disable=SC2016 # jq's variables, not the shell's
RECORD=$record jq '
  def leaves: to_entries[] | .key as $k | .value
    | if type == "object" and length > 0 then leaves | .path = [$k] + .path else {path: [$k], value: .} end;
  def has_path($p): try (if ($p | length) == 1 then has($p[0]) else (getpath($p[:-1]) | type == "object" and has($p[-1])) end) catch false;
  # Deletes path $p, then each parent it leaves empty.
  def remove($p): delpaths([$p]) | if ($p | length) > 1 and (getpath($p[:-1]) == {}) then remove($p[:-1]) else . end;
  (env.DAEMON_JSON | fromjson) as $want
  | (env.RECORD | fromjson | .settings) as $old
  | [$want | leaves] as $new
  | ($new | map(.path)) as $paths
  | ($old | map(select(.path as $p | $paths | any(. == $p) | not))) as $dropped
  # Settings the stack dropped: back to the host value, when still what the stack wrote.
  | reduce $dropped[] as $s (.;
      if has_path($s.path) and (getpath($s.path) as $v | $s.values | any(. == $v))
      then (if $s | has("before") then setpath($s.path; $s.before) else remove($s.path) end)
      else . end)
  | . as $host
  # What the host had under each wanted setting: kept from the record, else read now.
  # The value written last comes last.
  | [$new[] | .path as $p | .value as $v | ($old | map(select(.path == $p)) | first) as $known
      | {path: $p, values: [$v]}
      + if $known then {values: (($known.values | map(select(. != $v))) + [$v])} + ($known | with_entries(select(.key == "before")))
        elif ($host | has_path($p)) then {before: ($host | getpath($p))}
        else {} end] as $settings
  | {file: ($host * $want),
     pending: {settings: ($settings + $dropped)},
     record: {settings: ($settings | map(.values = [.values[-1]]))}}
' "$tmp" >"$tmp.merged"

# write_record KEY: the record from the plan, in one rename.
write_record() {
  (umask 077 && jq ".$1" "$tmp.merged" >"$tmp.record")
  mv "$tmp.record" "$managed"
}
write_record pending
jq '.file' "$tmp.merged" >"$tmp"

if [[ $NVIDIA_DEFAULT_RUNTIME == true ]]; then
  nvidia-ctk runtime configure --runtime=docker --config="$tmp" --set-as-default >/dev/null
else
  nvidia-ctk runtime configure --runtime=docker --config="$tmp" >/dev/null
  # Turning the default off must undo an earlier --set-as-default.
  jq 'if ."default-runtime" == "nvidia" then del(."default-runtime") else . end' "$tmp" >"$tmp.record" && mv "$tmp.record" "$tmp"
fi

# Root's alone: daemonJson may hold proxy credentials, and only dockerd (root) reads it.
if [[ -f $file ]] && jq -e --slurpfile new "$tmp" '. == $new[0]' "$file" >/dev/null; then
  chmod 0600 "$file"
  write_record record
  echo "daemon.json unchanged; Docker not restarted"
  # A re-run after an interruption may find the engine stopped: start it, configuration as is.
  systemctl is-active --quiet docker.service || systemctl start docker.service
else
  chmod 0600 "$tmp"
  mv "$tmp" "$file"
  write_record record
  echo "daemon.json changed; restarting Docker"
  systemctl restart docker.service
fi
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
echo "Docker is not answering: journalctl -u docker.service" >&2
exit 1
