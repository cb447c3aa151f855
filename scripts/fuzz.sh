#!/usr/bin/env bash
# Build rsagemaker's fuzzing harnesses (rsagemaker/fuzz: the HTTP request parser and the CSV reader
# and writer) with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer (Debian's clang), and
# run each for a bounded time from its seed corpus. Fails on any report: a crash, a sanitizer
# finding, a failed assertion of a harness, a leak, a timeout or running out of memory; the input
# that caused it is kept and named.
#   usage: scripts/fuzz.sh [TARGET...]      TARGET: http, csv (default: both)
#   FUZZ_SECONDS  how long each target runs (default 60)
#   FUZZ_WORK     where builds, the grown corpora and any crash input go (default: a temporary
#                 folder, removed when every target passed)
#   CC            the compiler (default clang; needs libclang-rt-<version>-dev for -fsanitize=fuzzer)
# rsagemaker/fuzz/README.md says how to run longer and how to replay a finding.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/rsagemaker/src
fuzz=$root/rsagemaker/fuzz
seconds=${FUZZ_SECONDS:-60}
cc=${CC:-clang}
log() { printf '==> %s\n' "$*" >&2; }

if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: FUZZ_SECONDS must be a positive whole number, not '$seconds'" >&2
  exit 2
fi
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz.sh: no $cc; on Debian: apt-get install clang libclang-rt-14-dev (or the version of your clang)" >&2
  exit 1
fi

targets=("$@")
((${#targets[@]} > 0)) || targets=(http csv)

keep=${FUZZ_WORK:+yes}
work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/rsagemaker-fuzz.XXXXXX")}
mkdir -p "$work"

flags=(-g -O1 -fno-omit-frame-pointer "-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=all
  -Wall -Wextra -Werror -I"$src")

build() {
  local name=$1
  case $name in
    http) "$cc" "${flags[@]}" "$fuzz/fuzz_http_request.c" "$src/http_parse.c" -o "$work/$name/fuzzer" ;;
    csv) "$cc" "${flags[@]}" "$fuzz/fuzz_csv.c" "$src/csv_core.c" -lm -o "$work/$name/fuzzer" ;;
    *)
      echo "fuzz.sh: unknown target '$name' (http, csv)" >&2
      return 2
      ;;
  esac
}

# The longest input worth trying: a request head may take 64 KB (and a body after it); CSV cases
# are small bodies and a few hundred numbers.
max_len() { case $1 in http) echo 70000 ;; csv) echo 16384 ;; esac }

failed=()
for name in "${targets[@]}"; do
  mkdir -p "$work/$name/corpus"
  log "$name: building"
  build "$name"
  log "$name: fuzzing for ${seconds}s from $(find "$fuzz/corpus/$name" -type f | wc -l) seed(s)"
  status=0
  # New inputs go to the work corpus (first), never into the repository's seeds (second).
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$work/$name/fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$name")" -artifact_prefix="$work/$name/" -print_final_stats=1 \
    "$work/$name/corpus" "$fuzz/corpus/$name" >"$work/$name/log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$name/log")
  findings=$(find "$work/$name" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' \
    -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | sort)
  if ((status != 0)) || [[ -n $findings ]]; then
    log "$name: FAILED (exit status $status) after ${runs:-?} runs"
    grep -E 'ERROR|runtime error|Assertion|SUMMARY' "$work/$name/log" | head -20 >&2 || true
    [[ -n $findings ]] && log "$name: the input that failed: $findings (replay: $work/$name/fuzzer FILE)"
    failed+=("$name")
    keep=yes
  else
    log "$name: passed: ${runs:-?} runs in ${seconds}s (${rate:-?}/s), corpus $(find "$work/$name/corpus" -type f | wc -l) inputs"
  fi
done

if ((${#failed[@]} > 0)); then
  log "failed: ${failed[*]}; logs and inputs kept in $work"
  exit 1
fi
if [[ -n $keep ]]; then log "builds, corpora and logs in $work"; else rm -rf "$work"; fi
