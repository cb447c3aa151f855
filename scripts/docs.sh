#!/usr/bin/env bash
# Build the documentation site into site/ (git-ignored): the rsagemaker R package's pkgdown reference
# (from rsagemaker/_pkgdown.yml), then the mkdocs pages (mkdocs.yml, docs/) with --strict, so a broken
# link, anchor or included example fails; the reference goes to site/rsagemaker/, where the pages link
# to it (../rsagemaker/).
#   usage: scripts/docs.sh [SITE_DIR]   (default site/; after `make setup`: .venv has mkdocs-material,
#                                        R has pkgdown)
#   MKDOCS=path: another mkdocs (default .venv/bin/mkdocs)
#   R_REFERENCE=dir: a reference pkgdown already built (scripts/check-rsagemaker.sh writes one into
#   rsagemaker/docs), copied instead of building it again
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'docs.sh: error: %s\n' "$*" >&2; exit 1; }

site=${1:-site}
MKDOCS=${MKDOCS:-.venv/bin/mkdocs}
[[ -x $MKDOCS ]] || die "no mkdocs at $MKDOCS: run make setup (it installs mkdocs-material into .venv)"
export NO_MKDOCS_2_WARNING=1

# pkgdown writes into a folder of its own first: mkdocs empties the site folder before it builds.
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
if [[ -n ${R_REFERENCE:-} ]]; then
  [[ -f $R_REFERENCE/index.html ]] || die "R_REFERENCE=$R_REFERENCE holds no index.html (a pkgdown site)"
  log "rsagemaker: the pkgdown reference of $R_REFERENCE"
  cp -R -- "$R_REFERENCE" "$work/rsagemaker"
elif [[ -f rsagemaker/_pkgdown.yml ]]; then
  log "rsagemaker: pkgdown reference"
  # pkgdown.internet = FALSE: no look-up of the package on CRAN for the sidebar (no network needed).
  Rscript -e 'options(pkgdown.internet = FALSE)' \
    -e 'pkgdown::build_site("rsagemaker", override = list(destination = commandArgs(TRUE)[1]),
                            preview = FALSE, new_process = FALSE, install = TRUE)' \
    "$work/rsagemaker" >"$work/pkgdown.log" 2>&1 || { cat "$work/pkgdown.log" >&2; die "pkgdown failed"; }
  [[ -f $work/rsagemaker/index.html && -d $work/rsagemaker/reference ]] ||
    die "pkgdown wrote no reference into $work/rsagemaker"
else
  log "SKIPPED the R reference: rsagemaker/_pkgdown.yml does not exist yet, so $site/rsagemaker/ is" \
    "not built and the R package page's link to it leads nowhere"
fi

log "mkdocs build --strict into $site/"
"$MKDOCS" build --strict --site-dir "$site"

if [[ -d $work/rsagemaker ]]; then
  cp -R -- "$work/rsagemaker" "$site/rsagemaker"
  log "the R reference is in $site/rsagemaker/"
fi
log "$site/ is ready: open $site/index.html, or serve it: python3 -m http.server -d $site"
