#!/usr/bin/env bash
# Install the R packages listed in a packages.txt (one CRAN name per line, # comments) for a
# Dockerfile RUN step. Each installs as a binary through apt (r-cran-<name>, as Debian, r-base and
# rocker/r2u provide), which takes seconds; a package apt lacks falls back to install.packages().
# Any package that does not end up loadable fails the build.
#   usage: install-r-packages.sh packages.txt
set -euo pipefail

list=${1:?usage: install-r-packages.sh packages.txt}
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$' || true)
if [[ ${#packages[@]} -eq 0 ]]; then
  echo "install-r-packages: $list lists no packages"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
from_apt=()
from_cran=()
for package in "${packages[@]}"; do
  deb="r-cran-${package,,}"
  if apt-cache show "$deb" >/dev/null 2>&1; then
    from_apt+=("$deb")
  else
    from_cran+=("$package")
  fi
done
if [[ ${#from_apt[@]} -gt 0 ]]; then
  echo "install-r-packages: apt: ${from_apt[*]}"
  apt-get install -y -qq --no-install-recommends "${from_apt[@]}"
fi
if [[ ${#from_cran[@]} -gt 0 ]]; then
  echo "install-r-packages: no apt binary, installing from CRAN: ${from_cran[*]}"
  Rscript -e 'repos <- getOption("repos"); if (is.null(repos) || identical(unname(repos["CRAN"]), "@CRAN@")) repos <- c(CRAN = "https://cloud.r-project.org")' \
    -e 'install.packages(commandArgs(trailingOnly = TRUE), repos = repos)' "${from_cran[@]}"
fi
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/Rtmp* /tmp/downloaded_packages

Rscript -e 'missing <- Filter(function(p) !requireNamespace(p, quietly = TRUE), commandArgs(trailingOnly = TRUE))' \
  -e 'if (length(missing) > 0) stop("R packages not installed: ", paste(missing, collapse = ", "), call. = FALSE)' \
  -e 'cat("install-r-packages: all loadable:", commandArgs(trailingOnly = TRUE), "\n")' "${packages[@]}"
