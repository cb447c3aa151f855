#!/usr/bin/env bash
# Build r-sagemaker's release artifacts into dist/, byte for byte the same from the same sources, and
# write dist/SHA256SUMS. A bake pins these sums (plumbing.sha256), so anyone can rebuild a release
# from its tag and check it against the pins.
#   dist/rsagemaker_<version>.tar.gz               the R package's source tarball (R CMD build)
#   dist/rsagemaker_cli-<version>-py3-none-any.whl  the project CLI
#   usage: scripts/dist.sh [OUT_DIR]     (default dist/; SOURCE_DATE_EPOCH: default 2026-01-01)
# Takes the working tree's files that git tracks or would track (so uncommitted edits are built, and
# nothing git ignores, such as compiled objects, gets in).
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
out=$(mkdir -p -- "${1:-dist}" && cd -- "${1:-dist}" && pwd)
# One fixed date for every build: a release is then reproducible from its tag alone.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dist.sh: error: %s\n' "$*" >&2; exit 1; }

r_version=$(sed -n 's/^Version: *//p' rsagemaker/DESCRIPTION)
cli_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' cli/pyproject.toml | head -n 1)
[[ -n $r_version && $r_version == "$cli_version" ]] ||
  die "rsagemaker/DESCRIPTION says $r_version, cli/pyproject.toml says $cli_version: one version for both"
version=$r_version

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# Copy the files git tracks or would track (tracked, and untracked but not ignored), as they are now.
copy_tree() {
  local folder=$1
  mkdir -p "$work/src"
  git ls-files -z --cached --others --exclude-standard -- "$folder" |
    while IFS= read -r -d '' file; do
      [[ -e $file ]] && printf '%s\0' "$file"
    done | tar --null -T - -cf - | tar -C "$work/src" -xf -
}

# Deterministic tar + gzip of one folder under $2 (sorted names, fixed times and owners, no gzip name).
repack() {
  local parent=$1 name=$2 target=$3
  tar -C "$parent" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --mode='u+rw,go+r,go-w' --format=gnu -cf - "$name" | gzip -n -9 >"$target"
}

# Only this version's packages stay: SHA256SUMS names them, and the release attaches dist/.
rm -f -- "$out"/rsagemaker_*.tar.gz "$out"/rsagemaker_cli-*-py3-none-any.whl
log "rsagemaker $version: R CMD build"
copy_tree rsagemaker
(cd "$work/src" && R CMD build --no-build-vignettes --no-manual --resave-data=no rsagemaker >"$work/r-build.log" 2>&1) ||
  { cat "$work/r-build.log" >&2; die "R CMD build failed"; }
mkdir "$work/r"
tar -C "$work/r" -xzf "$work/src/rsagemaker_${version}.tar.gz"
# R CMD build stamps the date and the user: the stamp becomes the fixed date, so the bytes repeat.
packaged=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S UTC')
sed -i "s/^Packaged: .*/Packaged: $packaged; r-sagemaker dist.sh/" "$work/r/rsagemaker/DESCRIPTION"
repack "$work/r" rsagemaker "$out/rsagemaker_${version}.tar.gz"

log "rsagemaker-cli $version: wheel"
# From a copy of the tracked files: a build/ folder left in cli/ by an earlier build would bring
# modules that are gone into the wheel (setuptools adds to build/lib, it never empties it).
copy_tree cli
python3 -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" "$work/src/cli" >"$work/wheel.log" 2>&1 ||
  { cat "$work/wheel.log" >&2; die "building the CLI wheel failed"; }
cp "$work/wheel/rsagemaker_cli-${version}-py3-none-any.whl" "$out/"

(cd "$out" && sha256sum "rsagemaker_${version}.tar.gz" "rsagemaker_cli-${version}-py3-none-any.whl" >SHA256SUMS)
log "built into $out:"
sed 's/^/    /' "$out/SHA256SUMS" >&2
log "Next: bake from this checkout (the post-gen hook vendors these files), or attach them to the v$version release"
