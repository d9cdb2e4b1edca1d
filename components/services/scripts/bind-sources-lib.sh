# shellcheck shell=bash
# make_bind_sources: the bind mount sources BIND_SOURCES names ("UID[:GID] /PATH" per line) that
# the host lacks, made before anything starts (Docker refuses a missing bind source). Each
# directory is created by mkdir with its mode (umask 077 would give 0700); only a directory this
# run created is chowned; an existing path (directory, file or link) is never changed: it may be
# data. Messages go through the caller's log() and name the host ($host); returns 1 after logging why.
# shellcheck disable=SC2154 # host is the caller's
make_bind_sources() {
  local line owner path part at err
  local -a parts
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    owner=${line%% *} path=${line#* }
    if ! [[ $owner =~ ^[0-9]+(:[0-9]+)?$ && $path == /* && $line == *" "* ]]; then
      log "host $host: BIND_SOURCES line '$line' is not 'UID[:GID] /PATH'; the services were not changed"
      return 1
    fi
    [[ ! -e $path && ! -L $path ]] || continue
    IFS=/ read -r -a parts <<<"${path#/}"
    at=""
    for part in "${parts[@]}"; do
      at+=/$part
      [[ ! -e $at && ! -L $at ]] || continue
      if ! err=$(mkdir -m 0755 "$at" 2>&1); then
        log "host $host: cannot create the bind mount source $path: $err; the services were not changed"
        return 1
      fi
    done
    chown "$owner" "$path"
    log "host $host: created the bind mount source $path (owner $owner, mode 0755)"
  done <<<"${BIND_SOURCES:-}"
}
