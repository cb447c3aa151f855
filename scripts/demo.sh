#!/usr/bin/env bash
# The template's main job, end to end: bake the default project into build/demo, build its images,
# then process -> train -> serve -> predict locally against an emulated /opt/ml (no AWS account).
# Called by `make demo` (which provides the container engine).
#   DEMO_BASE_IMAGE  base image to build on; default: the project's default base when it can be
#                    pulled, else the stand-in base (scripts/standin-base.sh) on machines that
#                    cannot reach Docker Hub.
#   DEMO_TAG         image tag of the demo's builds (default: demo)
#   DEMO_PORT        the local endpoint's port on 127.0.0.1 (default: 8080)
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
template=$PWD
python=$template/.venv/bin/python
demo=$template/build/demo
project=$demo/r-on-sagemaker
tag=${DEMO_TAG:-demo}
port=${DEMO_PORT:-8080}

log() { printf '\n==> %s\n' "$*"; }

log "Building this checkout's packages (scripts/dist.sh): the bake runs on them"
bash scripts/dist.sh

log "Baking the default project into $project"
rm -rf "$demo"
mkdir -p "$demo"
"$template/.venv/bin/cookiecutter" --no-input --output-dir "$demo" "$template"

base=${DEMO_BASE_IMAGE:-}
if [[ -z $base ]]; then
  default_base=$(sed -n 's/^BASE_IMAGE ?= //p' "$project/Makefile")
  if timeout 300 docker pull -q "$default_base" >/dev/null 2>&1; then
    base=$default_base
  else
    log "Cannot pull $default_base here: building on the stand-in base instead"
    base=localhost/r-sagemaker-standin:bookworm
    bash scripts/standin-base.sh "$base"
  fi
fi

run() {
  log "make $*"
  make --no-print-directory -C "$project" "$@" PYTHON="$python" BASE_IMAGE="$base" TAG="$tag" PORT="$port"
}
stop_endpoint() { make --no-print-directory -C "$project" local-stop PYTHON="$python" TAG="$tag" >/dev/null 2>&1 || true; }
trap stop_endpoint EXIT

run build
run local-process
run local-train
run local-serve
run predict
run local-stop

log "Demo complete. The baked project is in $project; try: cd $project && make help"
