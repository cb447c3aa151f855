"""One version for the three artifacts, reproducible packages, and the release chain a bake relies on:
scripts/release.sh pins the packages' sums in cookiecutter.json and tags; a bake of that tag pins them
in plumbing.sha256; `make vendor` fetches exactly those files and refuses others."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOT_TEMPLATE_FILES, TEMPLATE, dist
from cookiecutter.main import cookiecutter

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]


def version_of_news():
    return re.search(r"^## (\S+)$", (TEMPLATE / "NEWS.md").read_text(), re.MULTILINE).group(1)


def test_the_three_artifacts_have_one_version():
    description = re.search(
        r"^Version: (\S+)$", (TEMPLATE / "rsagemaker/DESCRIPTION").read_text(), re.MULTILINE
    )
    cli = re.search(r'^version = "(\S+)"$', (TEMPLATE / "cli/pyproject.toml").read_text(), re.MULTILINE)
    module = re.search(
        r'^__version__ = "(\S+)"$',
        (TEMPLATE / "cli/src/rsagemaker_cli/__init__.py").read_text(),
        re.MULTILINE,
    )
    template = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_plumbing_version"]
    assert {description.group(1), cli.group(1), module.group(1), template, version_of_news()} == {template}


def test_dist_builds_the_same_bytes_twice(tmp_path):
    first = dist()
    subprocess.run(
        ["bash", str(TEMPLATE / "scripts/dist.sh"), str(tmp_path)], check=True, capture_output=True
    )
    assert (tmp_path / "SHA256SUMS").read_text() == (first / "SHA256SUMS").read_text()


def run(command, cwd, check=True, **kwargs):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def template_clone(tmp_path):
    """This checkout's files as they are now (no environments, no builds), in a repository of its own."""
    clone = tmp_path / "r-sagemaker"
    shutil.copytree(
        TEMPLATE,
        clone,
        ignore=NOT_TEMPLATE_FILES,
    )
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=clone)
    run([*GIT, "add", "--all"], cwd=clone)
    run([*GIT, "commit", "--quiet", "--allow-empty", "-m", "Work in progress"], cwd=clone)
    return clone


def test_a_release_pins_its_packages_and_a_bake_of_it_vendors_exactly_those(template_clone, tmp_path):
    news = template_clone / "NEWS.md"
    news.write_text(news.read_text().replace("## ", "## 9.8.7\n\n- A test release.\n\n## ", 1))
    run([*GIT, "commit", "--quiet", "-am", "News of 9.8.7"], cwd=template_clone)

    released = run(["bash", "scripts/release.sh", "9.8.7"], cwd=template_clone, env=git_identity())
    assert "tagged v9.8.7" in released.stderr
    assert run(["git", "tag", "--list", "v9.8.7"], cwd=template_clone).stdout.strip() == "v9.8.7"
    config = json.loads((template_clone / "cookiecutter.json").read_text())
    files = template_clone / "dist"
    r_file, cli_file = files / "rsagemaker_9.8.7.tar.gz", files / "rsagemaker_cli-9.8.7-py3-none-any.whl"
    assert config["_rsagemaker_sha256"] == hashlib.sha256(r_file.read_bytes()).hexdigest()
    assert config["_cli_sha256"] == hashlib.sha256(cli_file.read_bytes()).hexdigest()

    # A bake of the tag as a user gets it (a clone: no dist/) pins the release's sums...
    user_clone = tmp_path / "user-clone"
    run(["git", "clone", "--quiet", "--branch", "v9.8.7", str(template_clone), str(user_clone)], cwd=tmp_path)
    project = Path(cookiecutter(str(user_clone), no_input=True, output_dir=str(tmp_path / "bakes")))
    assert not (project / "vendor").exists()
    pins = (project / "plumbing.sha256").read_text()
    assert f"{config['_rsagemaker_sha256']}  rsagemaker_9.8.7.tar.gz" in pins
    assert "9.8.7" in (project / "images/training/Dockerfile").read_text()

    # ... and make vendor takes the release's files (here from a folder standing in for the release).
    vendored = run(["make", "-C", str(project), "vendor", f"PLUMBING_URL=file://{files}"], cwd=project)
    assert "checked against plumbing.sha256" in vendored.stdout
    assert (project / "vendor/rsagemaker_9.8.7.tar.gz").read_bytes() == r_file.read_bytes()

    # A file that is not the pinned one is refused, naming it.
    (project / "vendor/rsagemaker_9.8.7.tar.gz").write_bytes(b"not the release")
    refused = run(["make", "-C", str(project), "vendor"], cwd=project, check=False)
    assert refused.returncode != 0
    assert "rsagemaker_9.8.7.tar.gz: FAILED" in refused.stdout + refused.stderr
    assert "does not hold the files plumbing.sha256 pins" in refused.stderr


def git_identity():
    import os

    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@localhost",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@localhost",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
