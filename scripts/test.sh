#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it (with the container engine already up):
#   1. rsagemaker: R CMD check and its reference (scripts/check-rsagemaker.sh), with the fuzzers of
#      its request parser and CSV code running beside it for a bounded time (scripts/fuzz.sh).
#   2. the packages of this checkout (scripts/dist.sh), which every bake of the suite vendors.
#   3. pytest: the CLI's tests and the template's (bake, lint, build and run the images). The arm64
#      test (a build, training and serving under qemu: minutes on one core) runs in a second pytest
#      beside the rest, so the two cores both work; its output follows the main summary.
#   usage: scripts/test.sh [PYTEST_ARGS...]   (with arguments: only pytest, with those arguments)
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-.venv/bin/python}

log() { printf '\n==> %s\n' "$*" >&2; }
started=$SECONDS

if (($# > 0)); then
  exec "$python" -m pytest "$@"
fi

mkdir -p build
log "rsagemaker: R CMD check and reference, with the fuzzers beside it (build/fuzz.log)"
bash scripts/fuzz.sh >build/fuzz.log 2>&1 &
fuzz=$!
status=0
bash scripts/check-rsagemaker.sh || status=$?
fuzz_status=0
wait "$fuzz" || fuzz_status=$?
tail -n 20 build/fuzz.log
if ((fuzz_status != 0)); then
  log "the fuzzers failed (exit $fuzz_status): build/fuzz.log"
  status=1
fi
log "rsagemaker checked in $((SECONDS - started)) s"

log "this checkout's packages (scripts/dist.sh): the suite's bakes vendor them"
bash scripts/dist.sh
export R_SAGEMAKER_DIST_BUILT=1

log "pytest: the arm64 test beside the rest (build/pytest-arm64.log)"
"$python" -m pytest -m arm64 -p no:cacheprovider >build/pytest-arm64.log 2>&1 &
arm64=$!
"$python" -m pytest -m "not arm64" || status=$?
arm64_status=0
wait "$arm64" || arm64_status=$?
log "the arm64 test (exit $arm64_status):"
tail -n 30 build/pytest-arm64.log
((arm64_status == 0)) || status=1
log "suite done in $((SECONDS - started)) s (exit $status)"
exit "$status"
