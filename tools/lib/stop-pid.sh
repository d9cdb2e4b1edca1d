# shellcheck shell=bash
# Sourced by the tools that start daemons of their own (buildkit.sh, kube-cluster.sh).
#
#   stop_pid PIDFILE
#
# Stops the process PIDFILE names (TERM, then KILL after 10 s) and removes PIDFILE; nothing to do
# when the file is missing or the process is gone.
stop_pid() {
  local file=$1 pid i
  [[ -s $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$file"
}
