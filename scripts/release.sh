#!/usr/bin/env bash
# Cut release vVERSION of the three artifacts: set the one version in rsagemaker/DESCRIPTION,
# cli/pyproject.toml (and the CLI's __version__) and cookiecutter.json, build the packages
# (scripts/dist.sh, reproducible), pin their checksums in cookiecutter.json (what every bake of
# this tag writes to plumbing.sha256), commit and tag. NEWS.md must have a "## VERSION" entry first.
#   usage: scripts/release.sh VERSION        e.g. scripts/release.sh 0.3.1
# Then push the commit and the tag: .github/workflows/release.yml rebuilds dist/ from the tag, checks
# the bytes against these pins and attaches the files to the GitHub release.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

die() { printf 'release.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

version=${1:-}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "usage: scripts/release.sh X.Y.Z (got '${version}')"
[[ -z $(git status --porcelain) ]] || die "the work tree has uncommitted changes: commit or stash them first"
git rev-parse -q --verify "refs/tags/v$version" >/dev/null && die "tag v$version exists already"
grep -qx "## $version" NEWS.md || die "NEWS.md has no '## $version' entry: write it first"

log "setting version $version"
sed -i "s/^Version: .*/Version: $version/" rsagemaker/DESCRIPTION
sed -i "0,/^version = \".*\"/s//version = \"$version\"/" cli/pyproject.toml
sed -i "s/^__version__ = \".*\"/__version__ = \"$version\"/" cli/src/rsagemaker_cli/__init__.py

bash scripts/dist.sh
sum_of() { sed -n "s/^\([0-9a-f]\{64\}\)  $1\$/\1/p" dist/SHA256SUMS; }
python3 - "$version" "$(sum_of "rsagemaker_$version.tar.gz")" \
  "$(sum_of "rsagemaker_cli-$version-py3-none-any.whl")" <<'EOF'
import json
import sys
from pathlib import Path

version, r_sum, cli_sum = sys.argv[1:]
path = Path("cookiecutter.json")
config = json.loads(path.read_text())
config["_plumbing_version"] = version
config["_plumbing_url"] = f"https://github.com/org/r-sagemaker/releases/download/v{version}"
config["_rsagemaker_sha256"] = r_sum
config["_cli_sha256"] = cli_sum
path.write_text(json.dumps(config, indent=2) + "\n")
EOF

git add rsagemaker/DESCRIPTION cli/pyproject.toml cli/src/rsagemaker_cli/__init__.py cookiecutter.json
git commit --quiet -m "Release v$version" -m "The pins of this release's packages (scripts/dist.sh):
$(cat dist/SHA256SUMS)"
git tag -a "v$version" -m "r-sagemaker $version"
log "tagged v$version; dist/ holds the files to attach. Next: git push && git push origin v$version"
