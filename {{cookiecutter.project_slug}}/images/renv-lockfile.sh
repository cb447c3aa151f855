#!/usr/bin/env bash
# The R packages of an renv project (`r_packages: renv`), around images/renv-lockfile.R:
#   renv-lockfile.sh restore LOCKFILE   a Dockerfile RUN step: restore renv.lock into the site library
#   renv-lockfile.sh lock PROJECT       `make lock`, in a container of the base image: write code/renv.lock
# apt's package lists are fetched first (binaries come from apt where the versions match) and
# dropped at the end, so the image layer holds only the packages. Environment: R_REPOS (a repository
# URL that replaces the lockfile's), LOCK_DATE (lock: the snapshot date, default today), LOCK_REPOS
# (lock: the repository recorded instead of Posit Package Manager's snapshot of LOCK_DATE).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
command=${1:?usage: renv-lockfile.sh restore LOCKFILE | lock PROJECT}
target=${2:?usage: renv-lockfile.sh restore LOCKFILE | lock PROJECT}

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
status=0
Rscript "$here/renv-lockfile.R" "$command" "$target" || status=$?
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/Rtmp* /tmp/downloaded_packages
# The files `lock` wrote belong to whoever owns the mounted project (as this container sees it: with
# rootless podman that is root here and the user outside), not to the container's root.
if [[ $command == lock ]]; then
  owner=$(stat -c %u:%g "$target")
  for written in code/renv.lock code/.Rprofile code/renv; do
    if [[ -e $target/$written ]]; then chown -R "$owner" "$target/$written"; fi
  done
fi
exit "$status"
