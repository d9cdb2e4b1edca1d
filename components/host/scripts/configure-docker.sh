#!/usr/bin/env bash
# Merges the stack's settings into /etc/docker/daemon.json (keys the host already has survive),
# registers the nvidia runtime with nvidia-ctk, and restarts Docker only when the file changed.
# Writes through a temp file and one rename, so an interruption never leaves a broken file.
set -euo pipefail
: "${DAEMON_JSON:?}" "${NVIDIA_DEFAULT_RUNTIME:?}"
file=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}

mkdir -p "$(dirname "$file")"
tmp=$(mktemp "$file.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if [[ -s $file ]]; then cp "$file" "$tmp"; else echo '{}' >"$tmp"; fi
# From the environment, not an argument: daemon.json may hold proxy credentials (ps shows arguments).
jq '. * (env.DAEMON_JSON | fromjson)' "$tmp" >"$tmp.merged" && mv "$tmp.merged" "$tmp"

if [[ $NVIDIA_DEFAULT_RUNTIME == true ]]; then
  nvidia-ctk runtime configure --runtime=docker --config="$tmp" --set-as-default >/dev/null
else
  nvidia-ctk runtime configure --runtime=docker --config="$tmp" >/dev/null
  # Turning the default off must undo an earlier --set-as-default.
  jq 'if ."default-runtime" == "nvidia" then del(."default-runtime") else . end' "$tmp" >"$tmp.merged" && mv "$tmp.merged" "$tmp"
fi

if [[ -f $file ]] && jq -e --slurpfile new "$tmp" '. == $new[0]' "$file" >/dev/null; then
  echo "daemon.json unchanged; Docker not restarted"
  # A re-run after an interruption may find the engine stopped: start it, configuration as is.
  systemctl is-active --quiet docker.service || systemctl start docker.service
else
  chmod 0644 "$tmp"
  mv "$tmp" "$file"
  echo "daemon.json changed; restarting Docker"
  systemctl restart docker.service
fi
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
echo "Docker is not answering: journalctl -u docker.service" >&2
exit 1
