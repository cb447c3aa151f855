#!/usr/bin/env bash
# Check the rsagemaker R package as R checks packages, then build its reference site.
#   1. roxygen2: NAMESPACE and man/ regenerated from the #' comments must equal the files in the
#      tree (in CI, what is committed); --update writes them into the tree instead.
#   2. R CMD build, then R CMD check --no-manual (testthat suite and examples included): any ERROR
#      or WARNING fails; NOTEs are printed (rsagemaker/README.md says why each one is there).
#   3. pkgdown: the reference site, offline, from the package R CMD check installed.
# usage: scripts/check-rsagemaker.sh [--update] [SITE_DIR]
#   SITE_DIR: where the site goes (default rsagemaker/docs, git-ignored). KEEP_WORK=1 keeps the
#   build folder (the tarball, rsagemaker.Rcheck) and says where it is.
# Needs R with r-base-dev, roxygen2 7.2.3, testthat, withr and pkgdown 2.0.7 (Debian bookworm's
# r-cran-* packages); no network. About 1 minute on 2 cores.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
root=$PWD

update=false
if [[ ${1:-} == --update ]]; then
  update=true
  shift
fi
site=${1:-rsagemaker/docs}
[[ $site == /* ]] || site=$root/$site

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'check-rsagemaker.sh: error: %s\n' "$*" >&2; exit 1; }
started=$SECONDS
step_started=$SECONDS
done_step() { log "   ($((SECONDS - step_started)) s)"; step_started=$SECONDS; }

version=$(sed -n 's/^Version: *//p' rsagemaker/DESCRIPTION)
[[ -n $version ]] || die "rsagemaker/DESCRIPTION has no Version"
for package in roxygen2 testthat withr pkgdown; do
  Rscript -e "quit(status = !requireNamespace('$package', quietly = TRUE))" ||
    die "the R package $package is not installed (apt-get install r-cran-$package)"
done

work=$(mktemp -d)
if [[ ${KEEP_WORK:-} == 1 ]]; then
  trap 'log "work folder kept: $work"' EXIT
else
  trap 'rm -rf -- "$work"' EXIT
fi

# The package as git has it: tracked files and untracked ones git does not ignore, as they are in
# the tree now (no compiled objects, no site, nothing git ignores), as scripts/dist.sh builds it.
mkdir -p "$work/src"
git ls-files -z --cached --others --exclude-standard -- rsagemaker |
  while IFS= read -r -d '' file; do
    [[ -e $file ]] && printf '%s\0' "$file"
  done | tar --null -T - -cf - | tar -C "$work/src" -xf -

# --- 1. roxygen2 ------------------------------------------------------------------------------------
log "roxygen2 $(Rscript -e 'cat(format(packageVersion("roxygen2")))'): NAMESPACE and man/ from the #' comments"
cp -a "$work/src/rsagemaker" "$work/roxygen"
# From nothing: a page whose topic is gone must go too. The NAMESPACE stays for roxygen to rewrite
# (it refuses one it did not write: a warning, so a failure here). The R files are sourced, not
# compiled: what roxygen reads of them (the functions' arguments) needs no C.
rm -rf "$work/roxygen/man"
Rscript -e 'roxygen2::roxygenise(commandArgs(trailingOnly = TRUE)[[1]], load_code = "source")' "$work/roxygen" \
  >"$work/roxygen.log" 2>&1 ||
  { cat "$work/roxygen.log" >&2; die "roxygen2 failed"; }
if grep -q '^Warning\|^✖' "$work/roxygen.log"; then
  cat "$work/roxygen.log" >&2
  die "roxygen2 warned (above)"
fi
differences=$(
  cd "$work"
  diff -ruN src/rsagemaker/man roxygen/man
  diff -uN src/rsagemaker/NAMESPACE roxygen/NAMESPACE
) || true
if [[ -n $differences ]]; then
  if $update; then
    rm -rf rsagemaker/man
    cp -a "$work/roxygen/man" "$work/roxygen/NAMESPACE" rsagemaker/
    rm -rf "$work/src/rsagemaker/man"
    cp -a "$work/roxygen/man" "$work/roxygen/NAMESPACE" "$work/src/rsagemaker/"
    log "   updated rsagemaker/NAMESPACE and rsagemaker/man/ (commit them)"
  else
    printf '%s\n' "$differences" >&2
    die "rsagemaker/NAMESPACE or man/ differ from what roxygen2 generates (above): run scripts/check-rsagemaker.sh --update, or roxygen2::roxygenise(\"rsagemaker\"), and commit the result"
  fi
else
  log "   NAMESPACE and $(find "$work/roxygen/man" -name '*.Rd' | wc -l) Rd files match"
fi
done_step

# --- 2. R CMD build, R CMD check ----------------------------------------------------------------------
log "R CMD build rsagemaker ($version)"
(cd "$work" && R CMD build --no-manual src/rsagemaker >build.log 2>&1) ||
  { cat "$work/build.log" >&2; die "R CMD build failed"; }
tarball=$work/rsagemaker_$version.tar.gz
[[ -f $tarball ]] || die "R CMD build made no $tarball"
done_step

log "R CMD check --no-manual rsagemaker_$version.tar.gz"
# test-project.R runs the project CLI against moto_server: the template's .venv has both.
[[ -n ${RSAGEMAKER_CLI:-} || ! -x $root/.venv/bin/rsagemaker ]] || export RSAGEMAKER_CLI=$root/.venv/bin/rsagemaker
# R CMD check reads the repositories' package lists for its dependency-cycle check: an empty local
# repository instead of CRAN, so the check needs no network.
mkdir -p "$work/repository/src/contrib"
: >"$work/repository/src/contrib/PACKAGES"
printf 'options(repos = c(CRAN = "file://%s/repository"))\n' "$work" >"$work/check-profile.R"
status=0
(cd "$work" && R_PROFILE_USER=$work/check-profile.R R CMD check --no-manual "$tarball" >check.log 2>&1) || status=$?
check_log=$work/rsagemaker.Rcheck/00check.log
[[ -f $check_log ]] || { cat "$work/check.log" >&2; die "R CMD check wrote no log"; }
# Every check that did not end in OK, with its detail (indented lines up to the next "* checking").
awk '/^\* / { show = ($0 ~ /\.\.\. (NOTE|WARNING|ERROR)$/ || $0 ~ /(NOTE|WARNING|ERROR)$/) }
     /^Status:/ { show = 0 } show' "$check_log" | sed 's/^/    /' >&2
result=$(grep '^Status:' "$check_log" || echo "Status: none (the check stopped)")
log "   $result"
if ((status != 0)) || grep -q 'ERROR\|WARNING' <<<"$result"; then
  if [[ -f $work/rsagemaker.Rcheck/tests/testthat.Rout.fail ]]; then
    tail -n 60 "$work/rsagemaker.Rcheck/tests/testthat.Rout.fail" >&2
  fi
  die "R CMD check: $result (the whole log: KEEP_WORK=1 scripts/check-rsagemaker.sh)"
fi
tests=$(grep -Eo '\[ FAIL [0-9]+ \| WARN [0-9]+ \| SKIP [0-9]+ \| PASS [0-9]+ \]' \
  "$work/rsagemaker.Rcheck/tests/testthat.Rout" | tail -n 1 || true)
log "   testthat: ${tests:-see rsagemaker.Rcheck/tests/testthat.Rout}"
done_step

# --- 3. pkgdown -----------------------------------------------------------------------------------
log "pkgdown $(Rscript -e 'cat(format(packageVersion("pkgdown")))'): the reference site into ${site#"$root"/}"
# The package R CMD check installed runs the examples (no second installation); pkgdown.internet
# FALSE keeps pkgdown from asking CRAN and Bioconductor about the package.
rm -rf "$work/src/rsagemaker/docs"
R_LIBS=$work/rsagemaker.Rcheck${R_LIBS:+:$R_LIBS} Rscript -e '
  args <- commandArgs(trailingOnly = TRUE)
  options(pkgdown.internet = FALSE)
  pkgdown::build_site(args[[1]], new_process = FALSE, install = FALSE, preview = FALSE,
    override = list(destination = args[[2]]))
' "$work/src/rsagemaker" "$work/site" >"$work/pkgdown.log" 2>&1 ||
  { cat "$work/pkgdown.log" >&2; die "pkgdown failed"; }
if grep -qi '^warning\|^error\|Error in ' "$work/pkgdown.log"; then
  cat "$work/pkgdown.log" >&2
  die "pkgdown warned or failed (above)"
fi
rm -rf -- "$site"
mkdir -p -- "$(dirname -- "$site")"
cp -a "$work/site" "$site"
log "   $(find "$site/reference" -name '*.html' | wc -l) reference pages; open $site/index.html"
done_step

log "rsagemaker $version checked in $((SECONDS - started)) s: $result"
