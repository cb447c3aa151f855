#!/usr/bin/env bash
# Container engine for local runs and CI.
#
# If a Docker engine already answers (GitHub Actions, a laptop), use it as is.
# Otherwise serve the Docker API from podman on a socket of our own, so the
# docker CLI and the Python docker SDK work unchanged (DOCKER_HOST=unix://...).
#
#   scripts/engine.sh ensure      start the engine if needed (exports on stdout)
#   scripts/engine.sh env         print export lines: eval "$(scripts/engine.sh env)"
#   scripts/engine.sh stop        stop the podman service started by ensure
#   scripts/engine.sh run CMD...  ensure, run CMD with the engine, stop what we started
#   scripts/engine.sh status      say which engine answers
#
# Environment:
#   ENGINE_STATE_DIR             state dir (default: $REPO_ROOT/.engine)
#   ENGINE_INSECURE_REGISTRIES   plain-HTTP registries, space separated host:port
#                                (default: "127.0.0.1:5000 localhost:5000")
#   ENGINE_START_TIMEOUT         seconds to wait for the service (default: 30)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || dirname -- "$SCRIPT_DIR")
STATE_DIR=${ENGINE_STATE_DIR:-$REPO_ROOT/.engine}
mkdir -p -- "$STATE_DIR"
STATE_DIR=$(cd -- "$STATE_DIR" && pwd)
SOCK=$STATE_DIR/podman.sock
PID_FILE=$STATE_DIR/podman.pid
LOG_FILE=$STATE_DIR/podman.log
CONTAINERS_CONF_FILE=$STATE_DIR/containers.conf
REGISTRIES_CONF_FILE=$STATE_DIR/registries.conf
INSECURE_REGISTRIES=${ENGINE_INSECURE_REGISTRIES:-127.0.0.1:5000 localhost:5000}
START_TIMEOUT=${ENGINE_START_TIMEOUT:-30}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'engine.sh: error: %s\n' "$*" >&2; exit 1; }

# --- probes -----------------------------------------------------------------

# A Docker engine that answers without us: the caller's DOCKER_HOST (unless it
# is our own podman socket) or the default socket.
real_docker_answers() {
  local host=${DOCKER_HOST:-}
  if [[ $host == "unix://$SOCK" ]]; then
    host=
  fi
  if command -v docker >/dev/null 2>&1; then
    if [[ -n $host ]]; then
      DOCKER_HOST=$host timeout 20 docker info >/dev/null 2>&1
    else
      env -u DOCKER_HOST timeout 20 docker info >/dev/null 2>&1
    fi
  elif [[ -z $host && -S /var/run/docker.sock ]] && command -v curl >/dev/null 2>&1; then
    [[ $(curl -fsS --max-time 5 --unix-socket /var/run/docker.sock http://d/_ping 2>/dev/null) == OK ]]
  else
    return 1
  fi
}

service_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be our podman service.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "unix://$SOCK" || return 1
  printf '%s\n' "$pid"
}

socket_answers() {
  [[ -S $SOCK ]] || return 1
  if command -v curl >/dev/null 2>&1; then
    [[ $(curl -fsS --max-time 5 --unix-socket "$SOCK" http://d/_ping 2>/dev/null) == OK ]]
  else
    DOCKER_HOST="unix://$SOCK" timeout 20 docker info >/dev/null 2>&1
  fi
}

podman_answers() { service_pid >/dev/null && socket_answers; }

print_podman_env() {
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCK"
  printf 'export DOCKER_BUILDKIT=0\n'
  printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF_FILE"
  printf 'export CONTAINERS_REGISTRIES_CONF=%q\n' "$REGISTRIES_CONF_FILE"
}

# --- setup ------------------------------------------------------------------

install_podman() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || [[ -x /usr/sbin/runc ]] || missing+=(runc)
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "no Docker engine answers and ${missing[*]} is missing; install ${missing[*]} (Debian: apt-get install podman runc) or start Docker"
  fi
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # iptables + netavark: port publishing (-p) for rootful podman.
  apt-get install -y -qq --no-install-recommends \
    podman runc netavark aardvark-dns iptables catatonit uidmap >/dev/null
}

write_configs() {
  # Container rlimits may not exceed the host's (no CAP_SYS_RESOURCE in sandboxes).
  local nofile=20000 nproc=32768 hard
  hard=$(ulimit -Hn)
  if [[ $hard =~ ^[0-9]+$ ]] && ((hard < nofile)); then nofile=$hard; fi
  hard=$(ulimit -Hu)
  if [[ $hard =~ ^[0-9]+$ ]] && ((hard < nproc)); then nproc=$hard; fi

  cat >"$CONTAINERS_CONF_FILE.tmp" <<EOF
# Written by scripts/engine.sh
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
  mv -f -- "$CONTAINERS_CONF_FILE.tmp" "$CONTAINERS_CONF_FILE"

  {
    printf '# Written by scripts/engine.sh\n'
    printf 'unqualified-search-registries = ["docker.io"]\n'
    local reg
    for reg in $INSECURE_REGISTRIES; do
      printf '\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$reg"
    done
  } >"$REGISTRIES_CONF_FILE.tmp"
  mv -f -- "$REGISTRIES_CONF_FILE.tmp" "$REGISTRIES_CONF_FILE"
}

start_service() {
  rm -f -- "$SOCK"
  : >"$LOG_FILE"
  log "starting podman system service on unix://$SOCK (log: $LOG_FILE)"
  # setsid: the service survives Ctrl-C in the caller's terminal; no fds of
  # the caller are kept open (so "$(engine.sh ensure)" returns).
  CONTAINERS_CONF=$CONTAINERS_CONF_FILE CONTAINERS_REGISTRIES_CONF=$REGISTRIES_CONF_FILE \
    setsid podman system service --time=0 "unix://$SOCK" \
    </dev/null >>"$LOG_FILE" 2>&1 &
  local pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"

  local waited=0
  until socket_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      printf 'engine.sh: podman service exited; last lines of %s:\n' "$LOG_FILE" >&2
      tail -n 20 -- "$LOG_FILE" >&2 || true
      rm -f -- "$PID_FILE"
      exit 1
    fi
    if ((waited >= START_TIMEOUT * 2)); then
      printf 'engine.sh: podman service did not answer on %s within %ss; last lines of %s:\n' \
        "$SOCK" "$START_TIMEOUT" "$LOG_FILE" >&2
      tail -n 20 -- "$LOG_FILE" >&2 || true
      stop_service >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "podman service answers (pid $pid, $(podman --version 2>/dev/null || echo podman))"
}

stop_service() {
  local pid i
  if pid=$(service_pid); then
    log "stopping podman service (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "podman service still running; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    log "no podman service of ours is running"
  fi
  rm -f -- "$PID_FILE" "$SOCK"
}

# Sets ENGINE_KIND (docker|podman) and ENGINE_STARTED (0|1).
ENGINE_KIND=
ENGINE_STARTED=0
ensure() {
  if real_docker_answers; then
    ENGINE_KIND=docker
    log "a Docker engine answers at ${DOCKER_HOST:-the default socket}; using it"
    return 0
  fi
  ENGINE_KIND=podman
  install_podman
  if podman_answers; then
    log "reusing podman service on unix://$SOCK (pid $(service_pid))"
    return 0
  fi
  if service_pid >/dev/null; then
    log "podman service does not answer; restarting it"
    stop_service
  fi
  write_configs
  start_service
  ENGINE_STARTED=1
}

# --- subcommands ------------------------------------------------------------

cmd_ensure() {
  ensure
  if [[ $ENGINE_KIND == podman ]]; then
    print_podman_env
  fi
}

cmd_env() {
  if real_docker_answers; then
    return 0
  fi
  if podman_answers; then
    print_podman_env
    return 0
  fi
  die "no container engine answers; run: scripts/engine.sh ensure"
}

cmd_status() {
  if real_docker_answers; then
    log "Docker engine at ${DOCKER_HOST:-the default socket}"
  elif podman_answers; then
    log "podman service on unix://$SOCK (pid $(service_pid))"
  else
    log "no container engine answers"
    return 1
  fi
}

RUN_CLEANED=0
run_cleanup() {
  ((RUN_CLEANED)) && return 0
  RUN_CLEANED=1
  if ((ENGINE_STARTED)); then
    stop_service
  fi
}

RUN_CHILD=
RUN_SIGNAL=
# Ctrl-C reaches CMD directly (same process group): let it finish its own
# cleanup (which may still need the engine). TERM is forwarded to CMD.
run_on_signal() {
  RUN_SIGNAL=$1
  if [[ -z $RUN_CHILD ]]; then
    run_cleanup
    exit $((128 + $(kill -l "$1")))
  fi
  if [[ $1 == TERM ]]; then
    kill -TERM "$RUN_CHILD" 2>/dev/null || true
  fi
}

cmd_run() {
  (($# > 0)) || die "usage: engine.sh run CMD [ARGS...]"
  trap 'run_cleanup' EXIT
  trap 'run_on_signal INT' INT
  trap 'run_on_signal TERM' TERM
  ensure
  if [[ $ENGINE_KIND == podman ]]; then
    eval "$(print_podman_env)"
  fi
  log "running: $*"
  # In the background so that traps run at once; stdin and SIGINT as in the foreground.
  (
    trap - INT QUIT
    exec "$@"
  ) <&0 &
  RUN_CHILD=$!
  local rc=0
  while kill -0 "$RUN_CHILD" 2>/dev/null; do
    wait "$RUN_CHILD" || true
  done
  wait "$RUN_CHILD" || rc=$?
  RUN_CHILD=
  run_cleanup
  if [[ -n $RUN_SIGNAL ]] && ((rc == 0)); then
    rc=$((128 + $(kill -l "$RUN_SIGNAL")))
  fi
  return "$rc"
}

main() {
  local sub=${1:-}
  (($# > 0)) && shift
  case $sub in
    ensure) cmd_ensure ;;
    env) cmd_env ;;
    stop) stop_service ;;
    run) cmd_run "$@" ;;
    status) cmd_status ;;
    -h | --help | help) sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
    *) die "usage: engine.sh {ensure|env|stop|run CMD...|status}" ;;
  esac
}

main "$@"
