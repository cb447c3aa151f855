"""The generated project's pre-commit hooks: all local, installed from PyPI or using Rscript, so they
run without cloning hook repositories. Every hook passes on a fresh bake of each choice of images,
and each one fails on a file broken in the way it exists to catch.

pre-commit keeps the hook environments in its cache (PRE_COMMIT_HOME, default ~/.cache/pre-commit):
the first run installs them from PyPI, later runs reuse them.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import bake

TOOLS = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
HOOK_IDS = [
    "hadolint",
    "shellcheck",
    "check-github-workflows",
    "zizmor",
    "lintr",
]


def run(command, cwd, check=True):
    environment = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def committed_bake(output_dir, images):
    project = bake(output_dir, images=images)
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    run([*GIT, "commit", "--quiet", "-m", "Bake"], cwd=project)
    return project


def pre_commit(project, *hook):
    return run(
        [TOOLS / "pre-commit", "run", *hook, "--all-files", "--color", "never"],
        cwd=project,
        check=False,
    )


def test_the_config_declares_every_hook_locally(tmp_path):
    import yaml

    project = bake(tmp_path)
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    (repository,) = config["repos"]
    assert repository["repo"] == "local"
    assert [hook["id"] for hook in repository["hooks"]] == HOOK_IDS
    for hook in repository["hooks"]:
        if hook["language"] == "python":
            # Pinned, so every clone lints with the same versions.
            assert all("==" in dependency for dependency in hook["additional_dependencies"]), hook["id"]
        else:
            assert hook["language"] == "system" and hook["entry"].startswith("Rscript "), hook["id"]


@pytest.mark.parametrize("images", ["both", "training", "processing"])
def test_every_hook_passes_on_a_fresh_bake(tmp_path, images):
    project = committed_bake(tmp_path, images)
    result = pre_commit(project)
    assert result.returncode == 0, result.stdout + result.stderr
    # One "<name>....Passed" line per hook: each found files of its kind in this bake and ran (no
    # "(no files to check)Skipped": a hook for files a bake does not have is not in its config).
    statuses = [line.rsplit(".", 1)[-1] for line in result.stdout.splitlines() if "....." in line]
    assert statuses == ["Passed"] * len(HOOK_IDS), result.stdout


def append(path, text):
    with path.open("a") as file:
        file.write(text)


def test_each_hook_fails_on_what_it_exists_to_catch(tmp_path):
    project = committed_bake(tmp_path, "both")
    workflow = project / ".github/workflows/ci.yml"
    unpinned = (
        "name: extra\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    permissions: {}\n    steps:\n      - uses: actions/checkout@v4\n"
        "        with:\n          persist-credentials: false\n"
    )
    # hook id: (file, change, what the hook says about it)
    broken = {
        "hadolint": ("images/processing/Dockerfile", lambda path: append(path, "RUN cd /tmp\n"), "DL3003"),
        "shellcheck": ("images/install-r-packages.sh", lambda path: append(path, "echo $1\n"), "SC2086"),
        "check-github-workflows": (
            ".github/workflows/ci.yml",
            lambda path: path.write_text(
                workflow.read_text().replace("runs-on: ubuntu-latest", "runs_on: x", 1)
            ),
            "runs_on",
        ),
        "zizmor": (".github/workflows/extra.yml", lambda path: path.write_text(unpinned), "unpinned-uses"),
        "lintr": ("code/train.R", lambda path: append(path, "x = 1\n"), "assignment_linter"),
    }
    for relative, change, _ in broken.values():
        change(project / relative)
    run(["git", "add", "--all"], cwd=project)
    for hook_id, (relative, _, message) in broken.items():
        result = pre_commit(project, hook_id)
        assert result.returncode != 0, f"{hook_id} passed on a broken file:\n{result.stdout}"
        assert relative in result.stdout and message in result.stdout, f"{hook_id}:\n{result.stdout}"
