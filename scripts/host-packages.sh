#!/usr/bin/env bash
# Install the Debian packages the template's suite and demo need on this machine (as root, or
# through sudo): podman (the container engine when no Docker engine runs), debootstrap (the
# stand-in base image), R with the packages the host-side R tests use (reticulate: docs/examples/sdk_v3.R,
# the SageMaker SDK driven from R; r-base-dev, testthat, withr: a bake's `make test-r`
# installs rsagemaker from source and runs its testthat file; roxygen2, pkgdown: rsagemaker's check
# and reference, scripts/check-rsagemaker.sh; processx: the project_*() functions stream output through R), docker-registry (push
# tests), docker-compose (the SageMaker SDK's local modes), wrk (benchmark), qemu-user-static and
# binfmt-support (the arm64 images, built and run under emulation), chromium (the monitoring
# report opened headless, tests/test_monitor_r.py), clang and libclang-rt-14-dev (libFuzzer with
# ASan and UBSan: scripts/fuzz.sh). Skips apt entirely when
# everything is already installed.
#   usage: scripts/host-packages.sh
set -euo pipefail

# netavark aardvark-dns iptables catatonit uidmap: podman's networking (-p) and init, pulled in
# only as Recommends otherwise.
PACKAGES="podman runc netavark aardvark-dns iptables catatonit uidmap debootstrap
  r-base-core r-cran-jsonlite r-cran-data.table r-cran-rpart r-cran-lintr r-cran-plumber
  r-cran-reticulate r-base-dev r-cran-testthat r-cran-withr r-cran-processx r-cran-roxygen2 r-cran-pkgdown
  docker-registry docker-compose wrk make git python3-venv curl ca-certificates
  qemu-user-static binfmt-support chromium clang libclang-rt-14-dev"

log() { printf '==> %s\n' "$*" >&2; }

read -r -d '' -a packages <<<"$PACKAGES" || true # split on blanks and newlines
# The docker CLI: Debian ships it only in docker.io (with dockerd, which is not started).
command -v docker >/dev/null 2>&1 || packages+=(docker.io)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  log "host packages already installed (${#packages[@]})"
  exit 0
fi
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "host-packages.sh: need root (or sudo) for apt-get" >&2; exit 1; }
  SUDO=(sudo)
fi
log "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
log "apt-get install ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
log "host packages installed"
