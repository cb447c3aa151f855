#!/usr/bin/env bash
# How long a bake's own CI (its .github/workflows/ci.yml) takes, estimated by running the same make
# commands here, as a fresh GitHub runner runs them: no .venv, no vendor/, no image cache (the build
# runs with --no-cache). Prints one line per step and the estimate of the workflow's wall time: the
# lint and test jobs run side by side, the publish job after them.
#   usage: bash bench/bake-ci.sh [BASE_IMAGE]   (default: the stand-in base, scripts/standin-base.sh)
# Not timed here: what only a runner does (checkout, setup-python, apt-get of R, pulling the base
# image, the artifact upload and download, the push to ECR); the figures printed say which.
# Run it with the container engine up (scripts/engine.sh ensure) or through `scripts/engine.sh run`.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
template=$PWD
base=${1:-localhost/r-sagemaker-standin:bookworm}
work=$(mktemp -d /tmp/bake-ci.XXXXXX)
logs=$template/build/bake-ci # each step's output, kept
rm -rf "$logs" && mkdir -p "$logs"
tag=bake-ci-$$
trap 'docker image rm -f "r-on-sagemaker-training:$tag" "r-on-sagemaker-processing:$tag" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

declare -A seconds
step() { # step NAME COMMAND...: run it in the bake, keep its time and output
  local name=$1 started
  shift
  printf '==> %s: %s\n' "$name" "$*" >&2
  started=$(date +%s.%N)
  if ! (cd "$work/r-on-sagemaker" && "$@") >"$logs/$name.log" 2>&1; then
    tail -n 20 "$logs/$name.log" >&2
    printf 'bake-ci: %s failed (its log above)\n' "$name" >&2
    exit 1
  fi
  seconds[$name]=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$started" "$(date +%s.%N)")
  printf '    %s s\n' "${seconds[$name]}" >&2
}

printf '==> the checkout'"'"'s packages (scripts/dist.sh), then the default bake in %s\n' "$work" >&2
bash scripts/dist.sh >/dev/null
"$template/.venv/bin/cookiecutter" --no-input --output-dir "$work" "$template" >/dev/null
# The workflow's TAG is the commit's sha: the bake as a committed repository.
git -C "$work/r-on-sagemaker" init --quiet
git -C "$work/r-on-sagemaker" add --all
git -C "$work/r-on-sagemaker" -c user.name=bench -c user.email=bench@localhost -c commit.gpgsign=false \
  commit --quiet -m Bake
# A bake of a checkout vendors the checkout's packages (the hook); a runner fetches them: start empty.
rm -rf "$work/r-on-sagemaker/vendor"
mkdir -p "$work/r-on-sagemaker/vendor"
cp "$template"/dist/rsagemaker_*.tar.gz "$template"/dist/rsagemaker_cli-*.whl "$work/r-on-sagemaker/vendor/"

step vendor make vendor
step venv make venv
step lint make lint
step build make build TAG="$tag" BASE_IMAGE="$base" BUILD="docker build --no-cache"
step test make test TAG="$tag" BASE_IMAGE="$base"
step save bash -c "for image in training processing; do docker save --output '$work/'\$image.tar r-on-sagemaker-\$image:$tag; done"

python3 - "${seconds[vendor]}" "${seconds[venv]}" "${seconds[lint]}" "${seconds[build]}" "${seconds[test]}" "${seconds[save]}" <<'EOF'
import sys

vendor, venv, lint, build, test, save = map(int, sys.argv[1:])
# What a runner adds, not measured here: setup-python and apt-get of R (about 60 s in each job),
# pulling the base image (about 30 s), the artifact's upload and download and the push (about 60 s).
runner_lint, runner_test, publish = 60, 60 + 30, 60
# Each job makes its own .venv: the lint job and the test job both pay for it.
lint_job = runner_lint + venv + lint
test_job = runner_test + vendor + venv + build + test + save
total = max(lint_job, test_job) + publish
print("| Step (the bake's ci.yml) | Here (s) |")
print("|---|---:|")
for name, value in (("make vendor", vendor), ("make venv (pip: the CLI, test and lint tools)", venv), ("make lint", lint), ("make build, no cache", build),
                    ("make test", test), ("docker save of the images", save)):
    print(f"| {name} | {value} |")
print(f"\nlint job ~{lint_job} s, test job ~{test_job} s (with ~{runner_test} s of runner set-up), publish ~{publish} s:")
print(f"the workflow's wall time ~{total / 60:.1f} min (target 10)")
print("Each step's output: build/bake-ci/<step>.log")
EOF
