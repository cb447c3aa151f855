"""The update path: a project records its template and answers in cruft's .cruft.json, and
`cruft update` brings a later template commit into it.

The template is copied into a temporary git repository (cruft reads templates through git), so
these tests can commit changes to "the template" without touching this checkout.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE
from cookiecutter.main import cookiecutter

CRUFT = Path(sys.executable).parent / "cruft"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
NOT_TEMPLATE = shutil.ignore_patterns(
    ".git", ".venv", ".engine", "build", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"
)
# Files the post-generation hook removes when only one image is chosen.
ONLY_TRAINING = ["images/training", "code/train.R"]
ONLY_PROCESSING = ["images/processing", "code/preprocess.R"]


def run(command, cwd, check=True):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def commit_all(repository, message):
    run(["git", "add", "--all"], cwd=repository)
    run([*GIT, "commit", "--quiet", "-m", message], cwd=repository)
    return run(["git", "rev-parse", "HEAD"], cwd=repository).stdout.strip()


@pytest.fixture
def template_repo(tmp_path):
    """A git repository holding a copy of this template; returns (path, commit)."""
    repository = tmp_path / "template"
    shutil.copytree(TEMPLATE, repository, ignore=NOT_TEMPLATE)
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=repository)
    return repository, commit_all(repository, "Template")


def cruft_create(template, output_dir, **answers):
    run(
        [
            CRUFT,
            "create",
            "--no-input",
            "--output-dir",
            str(output_dir),
            "--extra-context",
            json.dumps(answers),
            str(template),
        ],
        cwd=output_dir,
    )
    project = output_dir / "r-on-sagemaker"
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
    commit_all(project, "Bake")
    return project


def test_cruft_create_records_the_template_commit_and_the_answers(template_repo, tmp_path):
    template, commit = template_repo
    project = cruft_create(template, tmp_path, images="processing", aws_region="eu-west-2")
    record = json.loads((project / ".cruft.json").read_text())
    assert record["template"] == str(template)
    assert record["commit"] == commit
    answers = record["context"]["cookiecutter"]
    assert answers["images"] == "processing" and answers["aws_region"] == "eu-west-2"
    assert all(not (project / path).exists() for path in ONLY_TRAINING)
    assert run([CRUFT, "check"], cwd=project).returncode == 0
    # The hooks are deterministic and offline: a fresh bake of the same commit equals the project.
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0


def test_cruft_diff_sees_a_local_change(template_repo, tmp_path):
    """Control for the determinism check above: cruft diff does report a difference."""
    template, _ = template_repo
    project = cruft_create(template, tmp_path)
    with (project / "Makefile").open("a") as makefile:
        makefile.write("# a local change\n")
    result = run([CRUFT, "diff", "--exit-code"], cwd=project, check=False)
    assert result.returncode == 1 and "a local change" in result.stdout


@pytest.mark.parametrize("images", ["both", "training", "processing"])
def test_cruft_update_applies_a_template_commit_and_keeps_local_work(template_repo, tmp_path, images):
    template, _ = template_repo
    project = cruft_create(template, tmp_path, images=images)

    # The user's own work, committed in the project.
    user_file = project / ("code/preprocess.R" if images == "processing" else "code/train.R")
    user_file.write_text(user_file.read_text() + "# tuned by the user\n")
    commit_all(project, "User change")

    # A template change in a rendered file and in a file copied verbatim (the workflow).
    source = template / "{{cookiecutter.project_slug}}"
    with (source / "Makefile").open("a") as makefile:
        makefile.write("\n# Template v2: {{ cookiecutter.project_slug }}\n")
    workflow = source / ".github" / "workflows" / "ci.yml"
    workflow.write_text(workflow.read_text().replace("name: CI\n", "name: CI v2\n", 1))
    new_commit = commit_all(template, "Template v2")

    outdated = run([CRUFT, "check"], cwd=project, check=False)
    assert outdated.returncode == 1, outdated.stdout

    update = run([CRUFT, "update", "--skip-apply-ask"], cwd=project)
    assert "has been updated" in update.stdout, update.stdout

    assert (project / "Makefile").read_text().endswith("# Template v2: r-on-sagemaker\n")
    updated_workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert "name: CI v2\n" in updated_workflow and "${{ github.workflow }}" in updated_workflow
    assert user_file.read_text().endswith("# tuned by the user\n")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == new_commit
    # The hook ran again on the update's bakes: what was pruned stays pruned, nothing conflicted.
    pruned = {"both": [], "training": ONLY_PROCESSING, "processing": ONLY_TRAINING}[images]
    assert all(not (project / path).exists() for path in pruned)
    assert not list(project.rglob("*.rej")) and not list(project.rglob("*.orig"))
    changed = run(["git", "status", "--porcelain"], cwd=project).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == [
        ".cruft.json",
        ".github/workflows/ci.yml",
        "Makefile",
    ]

    assert run([CRUFT, "check"], cwd=project).returncode == 0


def test_a_plain_cookiecutter_bake_can_be_linked_afterwards(template_repo, tmp_path):
    """`cookiecutter` writes no .cruft.json (the hooks stay free of git and network); `cruft link`
    with the same answers makes the project updatable, and the bake matches the template exactly."""
    template, commit = template_repo
    project = Path(
        cookiecutter(
            str(template), no_input=True, output_dir=str(tmp_path), extra_context={"images": "training"}
        )
    )
    assert not (project / ".cruft.json").exists()
    run(
        [CRUFT, "link", "--no-input", "--extra-context", json.dumps({"images": "training"}), str(template)],
        cwd=project,
    )
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0
    assert run([CRUFT, "check"], cwd=project).returncode == 0
