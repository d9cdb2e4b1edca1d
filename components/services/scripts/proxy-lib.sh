# shellcheck shell=bash
# The blue/green proxy's host side: a stack's proxy directory DIR (proxyDirectory in proxy.ts,
# mounted read-only in the proxy container at PROXY_CONFIG_DIR) holds
#
#   haproxy.cfg.tmpl      the template renderProxyConfig made; {{target:SERVICE}} marks a server address
#   targets/SERVICE       the name of SERVICE's current container (one line)
#   haproxy.cfg           the template with the targets filled in: what the proxy loads when it starts
#   lock                  flock'ed by every change (steps for several services run in parallel)
#   pending, *.prev       a template installed but not loaded yet, and the pair it replaced
#
# Changes are graceful reloads of HAProxy's master-worker through its master CLI (socat inside the
# container, so the host needs no haproxy tools): the new worker takes the listeners, old workers
# finish their connections, bounded by the config's hard-stop-after. A change is validated inside
# the running proxy (`haproxy -c`, with the container's DNS) before it is renamed in; a refused one
# leaves files and proxy as they were. Functions return 1 with a one-line reason in proxy_error
# and print nothing; the caller names the host. Tunables (environment):
#   PROXY_LOCK_TIMEOUT    seconds to wait for DIR/lock (default 900: other switches may drain first)
#   PROXY_WORKER_TIMEOUT  seconds for a reload's new worker to serve (default 30)

PROXY_CONFIG_DIR=/usr/local/etc/haproxy
PROXY_MASTER_SOCKET=/run/haproxy/master.sock
proxy_error=""
health_output=""
# PIDs of the workers a reload replaced; the caller waits for them outside the lock (_proxy_drain).
_proxy_old_workers=""

# _proxy_name KIND VALUE: VALUE is a container or service name (no path, no placeholder syntax).
_proxy_name() {
  [[ $2 =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] && return 0
  proxy_error="$1 '$2' is not a container or service name"
  return 1
}

# _proxy_write FILE: standard input to FILE, mode 0644, by a rename in FILE's directory (atomic:
# the proxy never reads a partial file).
_proxy_write() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX") || { proxy_error="cannot write $1"; return 1; }
  if ! cat >"$tmp" || ! chmod 0644 "$tmp" || ! mv -f "$tmp" "$1"; then
    rm -f "$tmp"
    proxy_error="cannot write $1"
    return 1
  fi
}

# _proxy_render DIR: prints DIR/haproxy.cfg.tmpl with each {{target:SERVICE}} replaced by
# DIR/targets/SERVICE; a service without a target gets 127.0.0.1 and its server line `disabled`,
# so haproxy starts and answers 503 (HTTP) or closes (TCP) for it.
_proxy_render() {
  local dir=$1 line service target
  while IFS= read -r line || [[ -n $line ]]; do
    while [[ $line =~ \{\{target:([a-zA-Z0-9_.-]+)\}\} ]]; do
      service=${BASH_REMATCH[1]} target=""
      [[ ! -f $dir/targets/$service ]] || target=$(<"$dir/targets/$service")
      if [[ -n $target ]]; then
        line=${line//"{{target:$service}}"/$target}
      else
        line="${line//"{{target:$service}}"/127.0.0.1} disabled"
      fi
    done
    printf '%s\n' "$line"
  done <"$dir/haproxy.cfg.tmpl"
}

# _proxy_locked DIR FUNCTION ARGS...: FUNCTION ARGS under an exclusive flock on DIR/lock; its status.
_proxy_locked() {
  local dir=$1 fd rc
  shift
  command -v flock >/dev/null || { proxy_error="flock (util-linux) is not installed"; return 1; }
  if ! install -d -m 0755 "$dir" "$dir/targets" 2>/dev/null; then
    proxy_error="cannot create the proxy directory $dir"
    return 1
  fi
  exec {fd}>>"$dir/lock"
  if ! flock -w "${PROXY_LOCK_TIMEOUT:-900}" "$fd"; then
    exec {fd}>&-
    proxy_error="another proxy change still holds $dir/lock after ${PROXY_LOCK_TIMEOUT:-900}s"
    return 1
  fi
  "$@"
  rc=$?
  exec {fd}>&-
  return "$rc"
}

# _proxy_mcli CONTAINER COMMAND: the master CLI's answer to COMMAND.
_proxy_mcli() {
  printf '%s\n' "$2" | docker exec -i "$1" socat -t 5 - "UNIX-CONNECT:$PROXY_MASTER_SOCKET" 2>/dev/null
}

# _proxy_running CONTAINER: 0 when the proxy container runs.
_proxy_running() {
  [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
}

# _proxy_workers CONTAINER SECTION: PIDs of the master's current ("workers") or "old workers".
_proxy_workers() {
  _proxy_mcli "$1" "show proc" | awk -v want="# $2" '/^#/ { section = $0; next } section == want && $2 == "worker" { print $1 }'
}

# _proxy_failed_reloads CONTAINER: the master's count of reloads that failed to load the config.
_proxy_failed_reloads() {
  _proxy_mcli "$1" "show proc" | sed -nE 's/^[0-9]+ +master +[0-9]+ +\[failed: ([0-9]+)\].*/\1/p'
}

# _proxy_serves CONTAINER SERVICE TARGET: 0 when the current worker's servers named SERVICE (one
# per route) all have the address TARGET (srv_fqdn, field 18 of `show servers state`).
_proxy_serves() {
  _proxy_mcli "$1" "@1 show servers state" | awk -v s="$2" -v t="$3" '
    $4 == s { n++; if ($18 != t) bad = 1 } END { exit !(n > 0 && !bad) }'
}

# _proxy_check DIR CONTAINER FILE: haproxy inside CONTAINER accepts DIR/FILE.
_proxy_check() {
  local out
  if ! out=$(docker exec "$2" haproxy -c -f "$PROXY_CONFIG_DIR/$3" 2>&1); then
    out=$(grep -m 1 -E 'ALERT|error' <<<"$out" || tail -n 1 <<<"$out")
    # Without "[ALERT]    (pid) : ": the pid differs on each run.
    proxy_error="haproxy refused the config: $(tr -s ' ' <<<"$out" | sed -E 's/^ //; s/^\[[A-Z]+\] *\([0-9]+\) *: *//; s/\.$//')"
    return 1
  fi
}

# _proxy_reload DIR CONTAINER [SERVICE TARGET]: a graceful reload, then waits (PROXY_WORKER_TIMEOUT)
# until a new worker serves, and with SERVICE, until it routes SERVICE to TARGET. Sets
# _proxy_old_workers to the workers it replaced.
_proxy_reload() {
  local proxy=$2 service=${3:-} target=${4:-} old failed current pid fresh deadline
  old=$(_proxy_workers "$proxy" workers)
  failed=$(_proxy_failed_reloads "$proxy")
  [[ -n $old && -n $failed ]] || { proxy_error="the master CLI of $proxy does not answer"; return 1; }
  _proxy_mcli "$proxy" reload >/dev/null
  deadline=$((SECONDS + ${PROXY_WORKER_TIMEOUT:-30}))
  while :; do
    current=$(_proxy_workers "$proxy" workers) fresh=""
    for pid in $current; do
      grep -qxF "$pid" <<<"$old" || fresh=$pid
    done
    if [[ -n $fresh ]] && { [[ -z $service ]] || _proxy_serves "$proxy" "$service" "$target"; }; then
      _proxy_old_workers=$old
      return 0
    fi
    if [[ $(_proxy_failed_reloads "$proxy") != "$failed" ]]; then
      proxy_error="haproxy failed to load the new config on reload (see docker logs $proxy); the old worker keeps serving"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      proxy_error="no new haproxy worker served the new config within ${PROXY_WORKER_TIMEOUT:-30}s of the reload"
      return 1
    fi
    sleep 0.2
  done
}

# _proxy_drain DIR CONTAINER: waits until the workers in _proxy_old_workers have exited, for at
# most the config's hard-stop-after plus 15 s (haproxy ends them at hard-stop-after).
_proxy_drain() {
  local limit pid left deadline
  limit=$(sed -nE 's/^[[:space:]]*hard-stop-after[[:space:]]+([0-9]+)s?[[:space:]]*$/\1/p' "$1/haproxy.cfg" | head -n 1)
  deadline=$((SECONDS + ${limit:-60} + 15))
  while [[ -n $_proxy_old_workers ]]; do
    left=""
    for pid in $(_proxy_workers "$2" "old workers"); do
      grep -qxF "$pid" <<<"$_proxy_old_workers" && left+="$pid "
    done
    [[ -n $left ]] || break
    if ((SECONDS >= deadline)); then
      proxy_error="old haproxy worker(s) ${left% } still running $((${limit:-60} + 15))s after the reload"
      return 1
    fi
    sleep 0.5
  done
  _proxy_old_workers=""
}

# proxy_install DIR TEMPLATE_TEXT: writes DIR/haproxy.cfg.tmpl and renders DIR/haproxy.cfg from it
# and DIR/targets (a service without a target: its server `disabled`). Atomic renames; files 0644
# in 0755 directories (the proxy container's user reads them). An unchanged template changes
# nothing. A changed one keeps the pair it replaces as *.prev and marks DIR/pending until a
# proxy_reload (or proxy_switch) loads it; a refused reload puts that pair back. Does not reload.
# Returns 0; 1 with proxy_error when DIR cannot be written.
proxy_install() {
  proxy_error=""
  _proxy_locked "$1" _proxy_install "$@"
}
_proxy_install() {
  local dir=$1 text=$2
  # The file ends in one newline, however the text came (an environment value keeps its own).
  while [[ $text == *$'\n' ]]; do text=${text%$'\n'}; done
  if [[ -f $dir/haproxy.cfg.tmpl && $(<"$dir/haproxy.cfg.tmpl") == "$text" && -f $dir/haproxy.cfg ]]; then
    return 0
  fi
  # Keep the loaded pair: an earlier install not loaded yet already kept it.
  if [[ ! -f $dir/pending && -f $dir/haproxy.cfg.tmpl && -f $dir/haproxy.cfg ]]; then
    if ! cp -p "$dir/haproxy.cfg.tmpl" "$dir/haproxy.cfg.tmpl.prev" || ! cp -p "$dir/haproxy.cfg" "$dir/haproxy.cfg.prev"; then
      proxy_error="cannot write $dir"
      return 1
    fi
  fi
  printf '%s\n' "$text" | _proxy_write "$dir/haproxy.cfg.tmpl" || return 1
  _proxy_render "$dir" | _proxy_write "$dir/haproxy.cfg" || return 1
  : >"$dir/pending"
}

# _proxy_restore_install DIR: after a refused config, puts back the template proxy_install
# replaced, rendered with the current targets, so haproxy.cfg stays one the proxy can start with.
# Nothing pending (or nothing kept, the first install): nothing to put back.
_proxy_restore_install() {
  local dir=$1
  [[ -f $dir/pending ]] || return 0
  if [[ -f $dir/haproxy.cfg.tmpl.prev ]]; then
    mv -f "$dir/haproxy.cfg.tmpl.prev" "$dir/haproxy.cfg.tmpl"
    _proxy_render "$dir" | _proxy_write "$dir/haproxy.cfg" || true
    proxy_error+="; the previous template was put back"
  fi
  rm -f "$dir/pending" "$dir/haproxy.cfg.prev"
}

# _proxy_apply DIR CONTAINER [SERVICE TARGET]: renders DIR/haproxy.cfg.next, validates it in
# CONTAINER, renames it in and reloads (waiting as _proxy_reload does). Returns 2 when haproxy
# refused it: nothing renamed or reloaded. 1 when the reload failed: the previous haproxy.cfg is
# put back and reloaded (best effort).
_proxy_apply() {
  local dir=$1 proxy=$2
  _proxy_render "$dir" | _proxy_write "$dir/haproxy.cfg.next" || return 1
  if ! _proxy_check "$dir" "$proxy" haproxy.cfg.next; then
    rm -f "$dir/haproxy.cfg.next"
    return 2
  fi
  cp -p "$dir/haproxy.cfg" "$dir/haproxy.cfg.live" 2>/dev/null || : >"$dir/haproxy.cfg.live"
  mv -f "$dir/haproxy.cfg.next" "$dir/haproxy.cfg"
  if ! _proxy_reload "$@"; then
    local reason=$proxy_error
    if [[ -s $dir/haproxy.cfg.live ]]; then
      mv -f "$dir/haproxy.cfg.live" "$dir/haproxy.cfg"
      _proxy_reload "$dir" "$proxy" >/dev/null 2>&1 || true
    fi
    proxy_error=$reason
    return 1
  fi
  rm -f "$dir/haproxy.cfg.live" "$dir/pending" "$dir/haproxy.cfg.tmpl.prev" "$dir/haproxy.cfg.prev"
}

# proxy_switch DIR PROXY_CONTAINER SERVICE CONTAINER: routes SERVICE to CONTAINER. Under DIR/lock:
# records CONTAINER in DIR/targets/SERVICE, renders and validates haproxy.cfg.next in the running
# proxy, renames it in, reloads gracefully and waits until the new worker routes SERVICE to
# CONTAINER; then, outside the lock, waits until the replaced workers have exited (the drain).
# Returns 0 (also when the proxy already routes SERVICE to CONTAINER: no reload); 1 with
# proxy_error, the previous target and config restored (nothing reloaded when the config was
# refused; a template proxy_install left pending is then put back too, as proxy_reload does).
# A drain that overruns returns 1 too, but the switch stands.
proxy_switch() {
  proxy_error=""
  _proxy_name container "$2" && _proxy_name service "$3" && _proxy_name container "$4" || return 1
  _proxy_locked "$1" _proxy_switch "$@" || return 1
  _proxy_drain "$1" "$2"
}
_proxy_switch() {
  local dir=$1 proxy=$2 service=$3 container=$4 previous=""
  _proxy_old_workers=""
  [[ -f $dir/haproxy.cfg.tmpl ]] || { proxy_error="no proxy config was installed in $dir"; return 1; }
  grep -qF "{{target:$service}}" "$dir/haproxy.cfg.tmpl" \
    || { proxy_error="the proxy config has no route for service $service"; return 1; }
  _proxy_running "$proxy" || { proxy_error="the proxy container $proxy is not running"; return 1; }
  [[ ! -f $dir/targets/$service ]] || previous=$(<"$dir/targets/$service")
  if [[ $previous == "$container" && ! -f $dir/pending ]] && _proxy_serves "$proxy" "$service" "$container"; then
    return 0
  fi
  printf '%s\n' "$container" | _proxy_write "$dir/targets/$service" || return 1
  local rc=0
  _proxy_apply "$dir" "$proxy" "$service" "$container" || rc=$?
  ((rc)) || return 0
  if [[ -n $previous ]]; then
    printf '%s\n' "$previous" | _proxy_write "$dir/targets/$service" || true
  else
    rm -f "$dir/targets/$service"
  fi
  # Refused with a template installed but not loaded yet: the template is the likely cause.
  ((rc != 2)) || _proxy_restore_install "$dir"
  return 1
}

# proxy_reload DIR PROXY_CONTAINER: loads the current template and targets (after proxy_install
# changed the template): render, validate, reload, wait for the new worker and the drain, as
# proxy_switch does. Nothing to load (the config unchanged and no template pending): returns 0,
# no reload. Refused: the template proxy_install replaced is put back, nothing reloaded, 1 with
# proxy_error.
proxy_reload() {
  proxy_error=""
  _proxy_name container "$2" || return 1
  _proxy_locked "$1" _proxy_reload_locked "$@" || return 1
  _proxy_drain "$1" "$2"
}
_proxy_reload_locked() {
  local dir=$1 proxy=$2
  _proxy_old_workers=""
  [[ -f $dir/haproxy.cfg.tmpl ]] || { proxy_error="no proxy config was installed in $dir"; return 1; }
  _proxy_running "$proxy" || { proxy_error="the proxy container $proxy is not running"; return 1; }
  if [[ ! -f $dir/pending && -f $dir/haproxy.cfg && $(_proxy_render "$dir") == "$(<"$dir/haproxy.cfg")" ]]; then
    return 0
  fi
  local rc=0
  _proxy_apply "$dir" "$proxy" || rc=$?
  ((rc)) || return 0
  # A refused config: the template goes back. After a failed reload _proxy_apply already went back.
  ((rc != 2)) || _proxy_restore_install "$dir"
  return 1
}

# proxy_forget DIR PROXY_CONTAINER SERVICE CONTAINER: when SERVICE's target is still CONTAINER
# (the service left the stack), clears it and, when the rendered config changes, loads it (in
# the running proxy: validate, reload, wait, drain; no proxy running: the file only). Otherwise
# nothing. Returns 0; 1 with proxy_error (the target kept).
proxy_forget() {
  proxy_error=""
  _proxy_name container "$2" && _proxy_name service "$3" && _proxy_name container "$4" || return 1
  _proxy_locked "$1" _proxy_forget "$@" || return 1
  _proxy_drain "$1" "$2"
}
_proxy_forget() {
  local dir=$1 proxy=$2 service=$3 container=$4
  _proxy_old_workers=""
  [[ -f $dir/targets/$service && $(<"$dir/targets/$service") == "$container" ]] || return 0
  rm -f "$dir/targets/$service"
  [[ -f $dir/haproxy.cfg.tmpl ]] || return 0
  if [[ -f $dir/haproxy.cfg && $(_proxy_render "$dir") == "$(<"$dir/haproxy.cfg")" ]]; then
    return 0
  fi
  if ! _proxy_running "$proxy"; then
    _proxy_render "$dir" | _proxy_write "$dir/haproxy.cfg"
    return
  fi
  if ! _proxy_apply "$dir" "$proxy"; then
    printf '%s\n' "$container" | _proxy_write "$dir/targets/$service" || true
    return 1
  fi
}

# wait_container_healthy CONTAINER TIMEOUT_SECONDS: 0 once Docker reports CONTAINER healthy (a
# container without a health check: running for 2 s). 1 when it is unhealthy, exited, dead or
# restarting, missing, or TIMEOUT_SECONDS pass; then health_output is one line: the last health
# check's output, else the state and the last 5 log lines.
wait_container_healthy() {
  local name=$1 deadline state status health started
  health_output=""
  deadline=$((SECONDS + $2))
  while :; do
    if ! state=$(docker inspect -f '{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.StartedAt}}' "$name" 2>/dev/null); then
      health_output="container $name does not exist"
      return 1
    fi
    IFS='|' read -r status health started <<<"$state"
    [[ $health == healthy ]] && return 0
    if [[ -z $health && $status == running ]] && (($(date +%s) - $(date -d "$started" +%s) >= 2)); then
      return 0
    fi
    if [[ $health == unhealthy || $status =~ ^(exited|dead|restarting)$ ]] || ((SECONDS >= deadline)); then
      health_output=$(docker inspect -f '{{$out := ""}}{{if .State.Health}}{{range .State.Health.Log}}{{$out = .Output}}{{end}}{{end}}{{$out}}' "$name" 2>/dev/null \
        | tr -s '\n\r\t' ' ' | sed 's/^ *//; s/ *$//')
      if [[ -z $health_output ]]; then
        health_output="container $status"
        [[ $status != running || -z $health ]] || health_output+=", health $health"
        ((SECONDS < deadline)) || health_output="not healthy after $2s ($health_output)"
        health_output+="; last log lines: $(docker logs --tail 5 "$name" 2>&1 | tr -s '\n\r\t' ' ' | sed 's/ *$//')"
      elif [[ $health != unhealthy ]] && ((SECONDS >= deadline)); then
        health_output="not healthy after $2s (health ${health:-none}): $health_output"
      fi
      return 1
    fi
    sleep 0.5
  done
}
