#!/usr/bin/env bash
# Runs on the machine running Pulumi, not on a host. The containers mode's Docker providers reach
# each host with the machine's `ssh`; this gives that ssh the stack's private key without writing
# it to disk: an ssh-agent of its own, serving SOCKET, holds the key (read from standard input),
# and lives while any process with a file named by its pid in SOCKET.pids/ runs (each Pulumi run
# adds its language host, which lives until the update's last delete), then stops and its socket
# goes. SOCKET.pub is the public key, so ssh offers exactly this key (IdentitiesOnly).
#   docker-ssh-agent.sh SOCKET PID < private-key     loads the key, starting the agent if needed
#   docker-ssh-agent.sh keep SOCKET                  the agent's keeper (started by the line above)
# Idempotent: a second run for a socket whose agent answers adds its pid and the key again.
set -euo pipefail

# A lock directory (mkdir is atomic everywhere, unlike flock): attach and stop take turns, so a run
# never attaches to an agent that is stopping. A lock older than a minute was left by a killed run.
lock() {
  local i
  for i in $(seq 1 300); do
    mkdir "$1.lock" 2>/dev/null && return 0
    if [[ $i == 300 || -n $(find "$1.lock" -maxdepth 0 -mmin +1 2>/dev/null) ]]; then rm -rf "$1.lock"; fi
    sleep 0.1
  done
  mkdir "$1.lock"
}
unlock() { rmdir "$1.lock" 2>/dev/null || true; }
answers() { local rc=0; SSH_AUTH_SOCK=$1 ssh-add -l >/dev/null 2>&1 || rc=$?; [[ $rc != 2 ]]; }
running() {
  local f
  for f in "$1.pids"/*; do
    [[ -e $f ]] || continue
    if kill -0 "${f##*/}" 2>/dev/null; then return 0; fi
    rm -f "$f"
  done
  return 1
}

if [[ ${1:-} == keep ]]; then
  socket=$2
  ssh-agent -D -a "$socket" >/dev/null 2>&1 &
  agent=$!
  # However the keeper ends (its directory removed, a signal), the agent ends with it.
  trap 'kill "$agent" 2>/dev/null || true' EXIT
  while sleep 1; do
    lock "$socket"
    if ! kill -0 "$agent" 2>/dev/null || ! running "$socket"; then
      kill "$agent" 2>/dev/null || true
      wait "$agent" 2>/dev/null || true
      rm -rf "$socket" "$socket.pids" "$socket.pub"
      unlock "$socket"
      exit 0
    fi
    unlock "$socket"
  done
fi

socket=${1:?usage: docker-ssh-agent.sh SOCKET PID < private-key} pid=${2:?}
key=$(cat)
umask 077
lock "$socket"
trap 'unlock "$socket"' EXIT
mkdir -p "$socket.pids"
: >"$socket.pids/$pid"
if ! answers "$socket"; then
  rm -f "$socket"
  # Detached from this script's pipes, so the caller returns while the keeper goes on.
  nohup "$0" keep "$socket" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 100); do answers "$socket" && break; sleep 0.1; done
  answers "$socket" || { echo "docker-ssh-agent: no ssh-agent answers at $socket" >&2; exit 1; }
fi
# printf is a builtin: the key is in no argv, and a pipe, not a here-string's temp file, carries it.
printf '%s\n' "$key" | SSH_AUTH_SOCK=$socket ssh-add -q -
printf '%s\n' "$key" | ssh-keygen -y -f /dev/stdin >"$socket.pub"
