#!/usr/bin/env bash
# Installed as /opt/sagemaker/bin/Rscript, first on PATH, in both images: the `Rscript` of a
# processing job, whether it comes from the image's ENTRYPOINT ["Rscript"] or from ScriptProcessor's
# ContainerEntrypoint ["Rscript", "/opt/ml/processing/input/code/x.R"].
#
# Why: there Rscript is the container's PID 1, and R installs no SIGTERM handler, so the kernel
# drops the SIGTERM of `docker stop` (a PID 1 only gets the signals it handles): the job waits out
# the grace period and is killed (137). R does handle SIGINT (StopProcessingJob), but then ends
# with status 1 and no reason. As PID 1 this wrapper runs the real Rscript (the next one on PATH)
# as a child in its own process group and turns SIGTERM or SIGINT into SIGINT for that group: R
# raises an interrupt, on.exit and tryCatch(interrupt = ) handlers run, and the job ends within
# seconds with exit status 128 + the signal's number (143 or 130) and the reason in
# /opt/ml/output/message (SageMaker's ExitMessage). A second signal terminates the group.
# A failed script that wrote no message of its own gets one too: its R error (rscript-profile.R) or
# its exit status.
#
# Anywhere else (not PID 1: under run.sh, in `docker exec`, an Rscript that R code starts) it
# execs the real Rscript at once, so nothing changes there. Arguments, stdin, stdout, stderr and
# the exit status pass through unchanged.
set -uo pipefail

self=${BASH_SOURCE[0]}
log() { echo "Rscript wrapper: $*" >&2; }

# The first Rscript on PATH that is not this file.
real=""
IFS=: read -r -a path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
  candidate=${dir:-.}/Rscript
  if [[ -x $candidate && ! -d $candidate && ! $candidate -ef $self ]]; then
    real=$candidate
    break
  fi
done
if [[ -z $real ]]; then
  log "no Rscript on PATH besides $self (PATH=$PATH)"
  exit 127
fi

if (($$ != 1)); then
  exec "$real" "$@"
fi

output_dir=/opt/ml/output
message_file=$output_dir/message
command_text="Rscript $*"
((${#command_text} > 300)) && command_text="${command_text:0:300}..."

# One line of at most 1 KB (what SageMaker keeps), only where the job has an output folder.
write_message() {
  [[ -d $output_dir ]] || return 0
  local text=$1
  printf '%s\n' "${text:0:1000}" >"$message_file" 2>/dev/null ||
    log "could not write $message_file"
}

# rscript-profile.R records an uncaught R error in the message file. It is R's site profile for
# this one process (R_PROFILE) and loads the usual site profile itself; one set by the user wins.
profile="${self%/*}/../rscript-profile.R"
if [[ -d $output_dir && -z ${R_PROFILE+set} && -r $profile ]]; then
  export R_PROFILE=$profile SAGEMAKER_RSCRIPT_MESSAGE_FILE=$message_file
fi

child=0
stop_signal=""
# shellcheck disable=SC2329  # called by the traps below
on_signal() {
  local signal=$1
  ((child > 0)) || exit $((128 + $(kill -l "$signal")))
  if [[ -z $stop_signal ]]; then
    stop_signal=$signal
    log "SIG$signal: interrupting R (on.exit and tryCatch(interrupt = ) handlers run); a second signal terminates it"
    # Written now, so the reason is there even if the job is killed before R ends.
    write_message "Stopped: SIG$signal received; $command_text was interrupted"
    kill -INT -- "-$child" 2>/dev/null || true
  else
    log "SIG$signal again: terminating R"
    kill -TERM -- "-$child" 2>/dev/null || true
  fi
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

# setsid: R and every process it starts form their own process group, the target of the SIGINT
# above. <&0: a background job would otherwise read /dev/null instead of our stdin.
setsid "$real" "$@" <&0 &
child=$!

# `wait` returns early when a trapped signal arrives: wait again until the child has ended.
status=0
while true; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break
done

if [[ -n $stop_signal ]]; then
  write_message "Stopped: SIG$stop_signal received; $command_text was interrupted (R exit status $status)"
  log "stopped by SIG$stop_signal (R exit status $status)"
  exit $((128 + $(kill -l "$stop_signal")))
fi
if ((status != 0)) && [[ -d $output_dir && ! -s $message_file ]]; then
  write_message "$command_text failed with exit status $status (see the job's log)"
fi
exit "$status"
