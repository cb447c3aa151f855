#!/usr/bin/env bash
# The image's entry point. SageMaker runs `docker run IMAGE train` or `docker run IMAGE serve`.
# With no argument (the SageMaker Python SDK v3's local mode starts a training container so) it
# trains when a training job's configuration is under /opt/ml/input/config, else prints the usage.
#
# train: runs `entrypoint.R train` in its own process group. R installs no SIGTERM handler, so a
#        stopped job would die without cleanup (or, as PID 1, ignore the signal until SIGKILL).
#        SIGTERM is turned into SIGINT for the group: R raises an interrupt, the user's on.exit /
#        tryCatch(interrupt = ) code can save a checkpoint, and the job ends within seconds.
# serve: one R master (entrypoint.R serve --run-dir) loads the model once and forks N workers
#        (rsagemaker's server.R: copy-on-write, so N workers hold one copy of the model), each on
#        a unix socket behind nginx, which owns the port, answers /ping itself from the workers'
#        ready files (so a busy worker cannot make a health check time out, and no live worker
#        means 503), enforces the payload limit and the request timeout, and keeps TCP_NODELAY on
#        client connections.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
entrypoint="$here/entrypoint.R"
log() { echo "run.sh: $*" >&2; }

usage() {
  echo "usage: run.sh train | serve" >&2
  echo "  train  run the training job described under /opt/ml/input" >&2
  echo "  serve  serve /opt/ml/model on port \${SAGEMAKER_BIND_TO_PORT:-8080}" >&2
  echo "  (none) train if a training job's configuration is under /opt/ml/input/config" >&2
  exit 2
}

# SageMaker writes these for every training job, and both SDK local modes write all three.
training_job_configured() {
  local config=${SAGEMAKER_BASE_DIR:-/opt/ml}/input/config name
  for name in resourceconfig.json inputdataconfig.json hyperparameters.json; do
    [[ -f $config/$name ]] && return 0
  done
  return 1
}

# Wait for a child, re-waiting when a trapped signal interrupts `wait`; return its exit status.
wait_for() {
  local pid=$1 status=0
  while true; do
    wait "$pid" && status=0 || status=$?
    kill -0 "$pid" 2>/dev/null || return "$status"
  done
}

train() {
  # The marker tells the R side that the job is being stopped, not failing (see training.R).
  SAGEMAKER_STOP_MARKER=$(mktemp -u /tmp/sagemaker-stop.XXXXXX)
  export SAGEMAKER_STOP_MARKER
  # setsid: R and the user's program get their own process group, the target of the SIGINT below.
  setsid Rscript "$entrypoint" train &
  local child=$!
  trap 'log "SIGTERM: interrupting training (the program sees an R interrupt and may save a checkpoint)"
        : >"$SAGEMAKER_STOP_MARKER"; kill -INT -- "-$child" 2>/dev/null || true' TERM INT
  local status=0
  wait_for "$child" || status=$?
  rm -f "$SAGEMAKER_STOP_MARKER"
  log "training ended with exit status $status"
  exit "$status"
}

# The CPUs this container may use: the affinity mask (nproc), lowered by a cgroup CPU quota.
cpu_count() {
  local count quota period
  count=$(nproc)
  if [[ -r /sys/fs/cgroup/cpu.max ]]; then
    read -r quota period </sys/fs/cgroup/cpu.max
  elif [[ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
    quota=$(</sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    period=$(</sys/fs/cgroup/cpu/cpu.cfs_period_us)
  fi
  if [[ ${quota:-max} =~ ^[1-9][0-9]*$ && ${period:-0} =~ ^[1-9][0-9]*$ ]]; then
    quota=$(((quota + period - 1) / period))
    ((quota < count)) && count=$quota
  fi
  echo "$count"
}

# Request bodies larger than this are buffered on disk by nginx, not in its memory.
MAX_BUFFER_MB=16

serve_settings() {
  port=${SAGEMAKER_BIND_TO_PORT:-8080}
  cpus=$(cpu_count)
  # The count asked for, else the CPUs: the master may lower the latter to what fits in memory.
  workers=${SAGEMAKER_MODEL_SERVER_WORKERS:-$cpus}
  timeout=${SAGEMAKER_MODEL_SERVER_TIMEOUT:-60}
  # The payload limit follows the mode (serving.R's max_payload_bytes() applies the same): 6 MB
  # real-time; batch transform's MaxPayloadInMB, where 0 means no limit (SageMaker then sends the
  # records chunked); 1024 MB on an asynchronous endpoint, which SageMaker does not announce:
  # `make deploy ASYNC=1` sets SAGEMAKER_ASYNC_INFERENCE=true on the model.
  max_mb=6
  # SageMaker sets SAGEMAKER_BATCH=true, the SDKs' local modes "True".
  local batch=${SAGEMAKER_BATCH:-} async=${SAGEMAKER_ASYNC_INFERENCE:-}
  if [[ ${batch,,} == true && -n ${SAGEMAKER_MAX_PAYLOAD_IN_MB:-} ]]; then
    max_mb=$SAGEMAKER_MAX_PAYLOAD_IN_MB
    if ! [[ $max_mb =~ ^(0|[1-9][0-9]*)$ ]]; then
      log "invalid SAGEMAKER_MAX_PAYLOAD_IN_MB '$max_mb': expected a whole number (0: no limit)"
      exit 2
    fi
  elif [[ ${async,,} == true ]]; then
    max_mb=1024
  fi
  for setting in port workers timeout; do
    if ! [[ ${!setting} =~ ^[1-9][0-9]*$ ]]; then
      log "invalid $setting '${!setting}': expected a positive whole number"
      exit 2
    fi
  done
  # nginx: client_max_body_size 0 is no limit. Bodies up to body_buffer_mb stay in memory, larger
  # ones go to temporary files in the run directory (client_body_temp_path).
  if ((max_mb == 0)); then
    max_body=0 body_buffer_mb=$MAX_BUFFER_MB payload="no payload limit"
  else
    max_body=${max_mb}m body_buffer_mb=$((max_mb < MAX_BUFFER_MB ? max_mb : MAX_BUFFER_MB))
    payload="max payload ${max_mb} MB"
  fi
  rundir=${SAGEMAKER_SERVE_DIR:-/tmp/sagemaker-serve}
  # The workers read these: their own time limit, the payload limit, /execution-parameters (the
  # master sets SAGEMAKER_MODEL_SERVER_WORKERS to the count it chose).
  export SAGEMAKER_MODEL_SERVER_TIMEOUT=$timeout
}

write_nginx_conf() {
  local servers="" ready_files="" i
  for ((i = 1; i <= workers; i++)); do
    servers+="    server unix:$rundir/worker-$i.sock max_fails=1 fail_timeout=1s;"$'\n'
    ready_files+="/worker-$i.ready "
  done
  # The workers stop a request at $timeout s themselves; nginx waits a little longer.
  sed -e "s|@RUNDIR@|$rundir|g" -e "s|@PORT@|$port|g" -e "s|@TIMEOUT@|$timeout|g" \
    -e "s|@PROXY_TIMEOUT@|$((timeout + 2))|g" -e "s|@MAX_MB@|$max_mb|g" \
    -e "s|@MAX_BODY@|$max_body|g" -e "s|@BODY_BUFFER_MB@|$body_buffer_mb|g" \
    -e "s|@READY_FILES@|$ready_files|g" \
    "$here/nginx.conf.template" |
    awk -v servers="$servers" '{ if ($0 ~ /@SERVERS@/) printf "%s", servers; else print }' \
      >"$rundir/nginx.conf"
}

# Whether something already listens on the port (another server in the container): nginx would
# fail to bind it.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The master (rsagemaker's serve_forked) writes the worker count it chose once the model is
# loaded: wait for it (or for the master's end, or nginx's: an nginx that cannot start is noticed
# at once, not once a long model load is over), and if it differs from the count nginx was
# started with, rewrite nginx's upstream and reload it (SIGHUP: nothing is in flight yet).
follow_worker_count() {
  local master_pid=$1 nginx_pid=$2 chosen
  while [[ ! -e $rundir/workers && $stopping == 0 ]] && kill -0 "$master_pid" 2>/dev/null &&
    kill -0 "$nginx_pid" 2>/dev/null; do
    sleep 0.05
  done
  [[ -e $rundir/workers ]] && kill -0 "$nginx_pid" 2>/dev/null || return 0
  chosen=$(<"$rundir/workers")
  if [[ $chosen =~ ^[1-9][0-9]*$ && $chosen != "$workers" ]]; then
    workers=$chosen
    write_nginx_conf
    kill -HUP "$nginx_pid" 2>/dev/null || true
    log "nginx now in front of $workers R worker(s)"
  fi
}

serve() {
  serve_settings
  if port_taken "$port"; then
    log "port $port is taken by another process: nginx cannot listen on it (SAGEMAKER_BIND_TO_PORT chooses another)"
    exit 1
  fi
  rm -rf "$rundir"
  mkdir -p "$rundir"
  write_nginx_conf
  local master=(serve --run-dir "$rundir" --cpus "$cpus") master_pid=0 nginx_pid=0 status=0
  [[ -n ${SAGEMAKER_MODEL_SERVER_WORKERS:-} ]] && master+=(--workers "$workers")
  stopping=0
  # SIGTERM: nginx stops accepting and finishes the requests in flight (SIGQUIT), then the R
  # processes go.
  trap 'stopping=1; log "SIGTERM: finishing the requests in flight, then stopping"
    ((nginx_pid > 0)) && kill -QUIT "$nginx_pid" 2>/dev/null || true' TERM INT
  # setsid: the master and the workers it forks get a process group of their own, stopped as one.
  setsid Rscript "$entrypoint" "${master[@]}" &
  master_pid=$!
  nginx -e stderr -c "$rundir/nginx.conf" &
  nginx_pid=$!
  log "serving on port $port: nginx (pid $nginx_pid) in front of the R master (pid $master_pid) and its workers, timeout ${timeout}s, $payload"
  follow_worker_count "$master_pid" "$nginx_pid"
  if [[ $stopping == 0 ]] && ! kill -0 "$nginx_pid" 2>/dev/null; then
    wait "$nginx_pid" || status=$?
    log "nginx exited at start (status $status): it cannot serve (its own error is above; usually another process holds the port); stopping the container"
    kill -TERM -- "-$master_pid" 2>/dev/null || true
    wait "$master_pid" 2>/dev/null || true
    exit $((status == 0 ? 1 : status))
  fi

  wait -n "$nginx_pid" "$master_pid" || status=$?
  while [[ $stopping == 1 ]] && kill -0 "$nginx_pid" 2>/dev/null; do
    wait "$nginx_pid" || true
  done
  kill -TERM -- "-$master_pid" 2>/dev/null || true
  wait "$master_pid" 2>/dev/null || true
  if [[ $stopping == 1 ]]; then
    log "stopped"
    exit 0
  fi
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  log "a server process exited (status $status); stopping the container"
  exit $((status == 0 ? 1 : status))
}

if (($# == 0)) && training_job_configured; then
  log "no argument and a training job under ${SAGEMAKER_BASE_DIR:-/opt/ml}/input/config: training"
  set -- train
fi
case "${1:-}" in
  train) train ;;
  serve) serve ;;
  *) usage ;;
esac
