"""What the contract tests share that is not a fixture: the default bake they read and copy.

The bake is made once per session (tests/conftest.py's default_bake, the same folder as the
default_project fixture), so the contract tests and the template's tests read, build and run one
project. Its code/, data/ and images/ files are the template's, copied as they are."""

import subprocess
import sys
from shutil import copytree, ignore_patterns

from conftest import default_bake

PROJECT_ROOT = default_bake()


def copy_project(folder):
    """A copy of the default bake in folder/project, without what its runs left (build/, caches)."""
    copy = folder / "project"
    copytree(PROJECT_ROOT, copy, ignore=ignore_patterns("build", ".venv", ".git", "__pycache__", ".*_cache"))
    return copy


def cli(project, *args, timeout=300):
    """The project CLI run in project (as the bake's Makefile runs it), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "rsagemaker_cli", *args],
        cwd=project,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
