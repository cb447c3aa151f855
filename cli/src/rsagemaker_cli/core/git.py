"""Whether the project's files are its commit's: what `push` checks before it sends images.

changes() lists what would make an image built here differ from the commit: what
`git status --porcelain` lists (tracked files changed, new files), and files git ignores that still
go into the images and sourcedir.tar.gz (code/ as it is packed, opt_ml.packed(): code/build/, say,
but not *.pyc or .Rhistory). The Makefile's TAG gets -dirty by the same rule. A project outside git,
or in a folder its repository ignores, has no commit to compare with: changes() is None.
"""

import subprocess

from .opt_ml import packed


def git(root, *arguments):
    """stdout of a local git command in root, or None when it fails (or git is missing)."""
    try:
        result = subprocess.run(
            ["git", *arguments], cwd=root, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def changes(root):
    """The paths (relative to the repository's or the project's root) that differ from HEAD, or None."""
    if git(root, "rev-parse", "--verify", "--quiet", "HEAD") is None:
        return None
    if git(root, "check-ignore", "--quiet", ".") is not None:  # exit 0: the project folder is ignored
        return None
    status = git(root, "status", "--porcelain") or ""
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    ignored = git(root, "ls-files", "--others", "--ignored", "--exclude-standard", "-z", "--", "code") or ""
    for path in ignored.split("\0"):
        if path.startswith("code/") and packed(path.removeprefix("code/")):
            changed.append(path)
    return changed
