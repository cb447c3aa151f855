"""The update path: a project records its template and answers in cruft's .cruft.json, and
`cruft update` brings a later template commit into it. A plain `cookiecutter` bake writes that file
itself (hooks/post_gen_project.py); one made with `cruft create` gets cruft's own.

The template is copied into a temporary git repository (cruft reads templates through git), so
these tests can commit changes to "the template" without touching this checkout.
"""

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE
from cookiecutter.main import cookiecutter

CRUFT = Path(sys.executable).parent / "cruft"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
# The template alone: no built packages (dist/: a bake from it is a release bake), no package sources.
NOT_TEMPLATE = shutil.ignore_patterns(
    ".git",
    ".venv*",  # .venv-sdk too: gigabytes
    ".engine",
    "build",
    "dist",
    "site",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "rsagemaker",
    "cli",
    "docs",
    "bench",
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


def commit_a_template_change(template):
    """A template change in a rendered file and in a file copied verbatim (the workflow); returns
    the template's new commit."""
    source = template / "{{cookiecutter.project_slug}}"
    with (source / "Makefile").open("a") as makefile:
        makefile.write("\n# Template v2: {{ cookiecutter.project_slug }}\n")
    workflow = source / ".github" / "workflows" / "ci.yml"
    workflow.write_text(workflow.read_text().replace("name: CI\n", "name: CI v2\n", 1))
    return commit_all(template, "Template v2")


def assert_template_change_applied(project, new_commit):
    """`cruft update` brought commit_a_template_change in cleanly, and nothing else changed."""
    assert (project / "Makefile").read_text().endswith("# Template v2: r-on-sagemaker\n")
    updated_workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert "name: CI v2\n" in updated_workflow and "${{ github.workflow }}" in updated_workflow
    assert json.loads((project / ".cruft.json").read_text())["commit"] == new_commit
    assert not list(project.rglob("*.rej")) and not list(project.rglob("*.orig"))
    changed = run(["git", "status", "--porcelain"], cwd=project).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == [
        ".cruft.json",
        ".github/workflows/ci.yml",
        "Makefile",
    ]


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
    project = output_dir / answers.get("project_slug", "r-on-sagemaker")
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

    new_commit = commit_a_template_change(template)
    outdated = run([CRUFT, "check"], cwd=project, check=False)
    assert outdated.returncode == 1 and "out of date" in outdated.stdout, outdated.stdout

    update = run([CRUFT, "update", "--skip-apply-ask"], cwd=project)
    assert "has been updated" in update.stdout, update.stdout
    assert_template_change_applied(project, new_commit)
    assert user_file.read_text().endswith("# tuned by the user\n")
    # The hook ran again on the update's bakes: what was pruned stays pruned.
    pruned = {"both": [], "training": ONLY_PROCESSING, "processing": ONLY_TRAINING}[images]
    assert all(not (project / path).exists() for path in pruned)

    assert run([CRUFT, "check"], cwd=project).returncode == 0


# ---- A plain cookiecutter bake records itself (hooks/post_gen_project.py) ----------------------

COOKIECUTTER = Path(sys.executable).parent / "cookiecutter"
TEMPLATE_CONFIG = json.loads((TEMPLATE / "cookiecutter.json").read_text())
# A free-text answer with both quotes and a backslash, as a record and a shell command must carry it.
QUOTED_NAME = 'Bob\'s "churn" \\ model'


def load_post_gen_hook():
    """The hook as a module, to call its functions (its Jinja is read only inside main())."""
    spec = importlib.util.spec_from_file_location("post_gen_project", TEMPLATE / "hooks/post_gen_project.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cookiecutter_cli(cwd, template, *answers, env=None):
    """`cookiecutter --no-input TEMPLATE key=value...` as a user types it; returns its output."""
    command = [str(COOKIECUTTER), "--no-input", str(template), *answers]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        pytest.fail(f"cookiecutter failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def git_commit_project(project):
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
    commit_all(project, "Bake")


def test_a_plain_cookiecutter_bake_records_what_cruft_create_records(template_repo, tmp_path):
    """Field by field, then byte for byte: the hook's .cruft.json for a `cookiecutter` bake is the
    file `cruft create` writes (after the hooks) for the same template, commit and answers."""
    template, commit = template_repo
    answers = {"images": "processing", "aws_region": "eu-west-2", "project_name": QUOTED_NAME}
    answers["project_slug"] = "bobs-model"
    for name in ("plain", "cruft"):
        (tmp_path / name).mkdir()
    project = Path(
        cookiecutter(str(template), no_input=True, output_dir=str(tmp_path / "plain"), extra_context=answers)
    )
    text = (project / ".cruft.json").read_text()
    record = json.loads(text)

    assert list(record) == ["template", "commit", "checkout", "context", "directory"]
    assert record["template"] == str(template)
    assert record["commit"] == commit
    assert record["checkout"] is None
    assert record["directory"] is None
    assert list(record["context"]) == ["cookiecutter"]
    recorded = record["context"]["cookiecutter"]
    # cookiecutter.json's keys in its order, then cruft's two; none of cookiecutter's own entries
    # (_output_dir, _repo_dir, _checkout).
    questions = [key for key in TEMPLATE_CONFIG if key != "__prompts__"]
    assert list(recorded) == [*questions, "_template", "_commit"]
    assert {key: recorded[key] for key in answers} == answers
    assert recorded["description"] == TEMPLATE_CONFIG["description"]
    assert recorded["base_image"] == TEMPLATE_CONFIG["base_image"][0]
    assert recorded["_copy_without_render"] == TEMPLATE_CONFIG["_copy_without_render"]
    assert recorded["_template"] == str(template)
    assert recorded["_commit"] == commit
    assert "skip" not in record  # cruft writes one only when asked to (`cruft create --skip`)

    created = cruft_create(template, tmp_path / "cruft", **answers)
    assert (created / ".cruft.json").read_text() == text


def test_cruft_writes_the_record_alone_when_cruft_bakes(template_repo, tmp_path):
    """The bakes behind `cruft create`, `cruft diff` and `cruft update` (cruft's context, with its
    `_commit`) get no .cruft.json from the hook: cruft writes its own after the hooks, so the trees
    it compares never carry a second version (one without a checkout or skip set by the user)."""
    from cookiecutter.generate import generate_files
    from cruft._commands.utils.cookiecutter import generate_cookiecutter_context

    template, commit = template_repo
    context = generate_cookiecutter_context(str(template), commit, template, no_input=True)
    assert context["cookiecutter"]["_commit"] == commit
    project = Path(generate_files(repo_dir=template, context=context, output_dir=str(tmp_path)))
    assert (project / "Makefile").is_file()
    assert not (project / ".cruft.json").exists()


@pytest.mark.parametrize("images", ["both", "processing"])
def test_a_plain_cookiecutter_bake_can_be_checked_and_updated(template_repo, tmp_path, images):
    """The issue's path: `cookiecutter TEMPLATE` (a relative path, as typed in a shell), commit;
    `cruft check` passes; a template commit; `cruft check` reports it; `cruft update -y` applies it
    cleanly; `cruft check` passes again."""
    template, commit = template_repo
    output = cookiecutter_cli(tmp_path, template.name, f"images={images}")
    project = tmp_path / "r-on-sagemaker"
    record = json.loads((project / ".cruft.json").read_text())
    assert (record["template"], record["commit"]) == (str(template), commit)
    # The closing message says how to check for and take template updates.
    assert f".cruft.json records {template} at {commit[:12]}" in output
    for command in ("cruft check", "cruft diff", "cruft update"):
        assert f"  {command} " in output
    assert "Not updatable yet" not in output and "uncommitted changes" not in output
    git_commit_project(project)

    assert run([CRUFT, "check"], cwd=project).returncode == 0
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0

    new_commit = commit_a_template_change(template)
    outdated = run([CRUFT, "check"], cwd=project, check=False)
    assert outdated.returncode == 1 and "out of date" in outdated.stdout, outdated.stdout

    update = run([CRUFT, "update", "-y"], cwd=project)
    assert "has been updated" in update.stdout, update.stdout
    assert_template_change_applied(project, new_commit)
    assert (project / "code/train.R").exists() == (images == "both")

    assert run([CRUFT, "check"], cwd=project).returncode == 0
    commit_all(project, "Template v2")
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0


def test_a_bake_through_an_abbreviation_records_the_expanded_url(template_repo, tmp_path):
    """`cookiecutter ABBREVIATION:name` clones the expanded URL; the record names that URL (the
    form cruft can clone) and the commit of the clone. Offline: a user abbreviation to file://,
    standing in for gh:, which expands the same way (checked on the hook's function below)."""
    template, commit = template_repo
    config = tmp_path / "cookiecutterrc.yaml"
    config.write_text(
        f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\n"
        f"replay_dir: {tmp_path / 'replay'}\n"
        f"abbreviations:\n  local: git+file://{template.parent}/{{0}}\n"
    )
    env = {**os.environ, "COOKIECUTTER_CONFIG": str(config)}
    (tmp_path / "out").mkdir()
    output = cookiecutter_cli(tmp_path / "out", "local:template", env=env)
    record = json.loads((tmp_path / "out/r-on-sagemaker/.cruft.json").read_text())
    url = f"file://{template}"
    assert record["template"] == url and record["context"]["cookiecutter"]["_template"] == url
    assert record["commit"] == commit
    assert f".cruft.json records {url} at {commit[:12]}" in output
    project = tmp_path / "out/r-on-sagemaker"
    git_commit_project(project)
    assert run([CRUFT, "check"], cwd=project).returncode == 0
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0


def test_a_template_in_a_subfolder_of_its_repository_records_the_directory(tmp_path):
    """`cookiecutter --directory templates/r-sagemaker REPO`: cruft's `directory` names the folder,
    the template its repository."""
    repository = tmp_path / "monorepo"
    shutil.copytree(TEMPLATE, repository / "templates/r-sagemaker", ignore=NOT_TEMPLATE)
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=repository)
    commit = commit_all(repository, "Templates")
    (tmp_path / "out").mkdir()
    command = [str(COOKIECUTTER), "--no-input", "--directory", "templates/r-sagemaker", str(repository)]
    run(command, cwd=tmp_path / "out")
    project = tmp_path / "out/r-on-sagemaker"
    record = json.loads((project / ".cruft.json").read_text())
    assert (record["template"], record["commit"]) == (str(repository), commit)
    assert record["directory"] == "templates/r-sagemaker"
    git_commit_project(project)
    assert run([CRUFT, "check"], cwd=project).returncode == 0
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0


def test_gh_expands_as_cookiecutter_expands_it(tmp_path, monkeypatch):
    empty = tmp_path / "cookiecutterrc.yaml"
    empty.write_text("default_context: {}\n")
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(empty))
    hook = load_post_gen_hook()
    assert hook.expand_template("gh:org/r-sagemaker") == "https://github.com/org/r-sagemaker.git"
    assert hook.expand_template("gl:org/r-sagemaker") == "https://gitlab.com/org/r-sagemaker.git"
    assert hook.expand_template("git+https://example.com/t.git") == "https://example.com/t.git"
    assert hook.expand_template("/some/folder") == "/some/folder"


def test_a_relative_template_folder_is_found_where_cookiecutter_works(template_repo, tmp_path, monkeypatch):
    """Cookiecutter runs the hook from inside the template folder: its working directory (/proc, on
    Linux) resolves a relative `_repo_dir`; elsewhere $PWD (where the shell started it) does. A
    folder whose path does not end in the given one is never taken."""
    template, _ = template_repo
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(template / "cookiecutter.json", other)
    hook = load_post_gen_hook()
    monkeypatch.setattr(hook.os, "getppid", os.getpid)  # this process stands in for cookiecutter
    monkeypatch.delenv("PWD", raising=False)
    monkeypatch.chdir(template)
    assert hook.template_folder("template") == template
    assert hook.template_folder("../template") == template
    assert hook.template_folder(str(template)) == template
    monkeypatch.chdir(other)  # a template folder of another name
    assert hook.template_folder("template") is None
    monkeypatch.setattr(hook.os, "getppid", lambda: 2**22 + 12345)  # no such process: no /proc entry
    monkeypatch.setenv("PWD", str(tmp_path))
    assert hook.template_folder("template") == template
    monkeypatch.setenv("PWD", str(other))
    assert hook.template_folder("template") is None


def test_a_bake_from_a_dirty_checkout_says_it_may_differ(template_repo, tmp_path):
    template, commit = template_repo
    readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nNot committed yet.\n")
    (tmp_path / "out").mkdir()
    output = cookiecutter_cli(tmp_path / "out", template)
    assert json.loads((tmp_path / "out/r-on-sagemaker/.cruft.json").read_text())["commit"] == commit
    assert f"Note: {template} has uncommitted changes, so this bake may differ from {commit[:12]}" in output


def test_a_bake_from_a_folder_outside_git_records_what_it_can_and_says_how_to_link(tmp_path):
    """No git checkout, no commit: the record keeps the folder and the answers with "commit": null,
    `cruft check` fails (it cannot clone the folder; it never reports "up to date"), and the closing
    message's `cruft link` command, followed once the folder is in git, makes the project updatable
    with the same answers."""
    folder = tmp_path / "template"
    shutil.copytree(TEMPLATE, folder, ignore=NOT_TEMPLATE)
    assert run(["git", "rev-parse", "--show-toplevel"], cwd=folder, check=False).returncode != 0
    (tmp_path / "out").mkdir()
    output = cookiecutter_cli(
        tmp_path / "out", folder, f"project_name={QUOTED_NAME}", "project_slug=bobs-model", "images=training"
    )
    project = tmp_path / "out/bobs-model"
    record = json.loads((project / ".cruft.json").read_text())
    assert list(record) == ["template", "commit", "checkout", "context", "directory"]
    assert record["template"] == str(folder)
    assert record["commit"] is None
    assert record["checkout"] is None and record["directory"] is None
    recorded = record["context"]["cookiecutter"]
    assert recorded["project_name"] == QUOTED_NAME and recorded["images"] == "training"
    assert recorded["_template"] == str(folder) and recorded["_commit"] is None
    assert "_repo_dir" not in recorded and "_output_dir" not in recorded

    assert f"Not updatable yet: the template {folder} is not a committed git checkout" in output
    assert "cruft check  " not in output
    git_commit_project(project)
    check = run([CRUFT, "check"], cwd=project, check=False)
    assert check.returncode != 0 and "up to date" not in check.stdout

    # Follow the hint: the template goes into git, then the two printed commands.
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=folder)
    commit = commit_all(folder, "Template")
    hint = output.splitlines()
    removal = hint.index("  rm .cruft.json")
    link = shlex.split(hint[removal + 1])
    assert link[:2] == ["cruft", "link"]
    (project / ".cruft.json").unlink()
    run([CRUFT, *link[1:]], cwd=project)
    linked = json.loads((project / ".cruft.json").read_text())
    assert linked["commit"] == commit
    assert linked["context"]["cookiecutter"]["project_name"] == QUOTED_NAME
    assert run([CRUFT, "diff", "--exit-code"], cwd=project).returncode == 0
    assert run([CRUFT, "check"], cwd=project).returncode == 0


def release(template, version, rsagemaker_sum, cli_sum):
    """What scripts/release.sh records for a release: the version and the packages' sums in
    cookiecutter.json, committed and tagged vX.Y.Z."""
    config_file = template / "cookiecutter.json"
    config = json.loads(config_file.read_text())
    config["_plumbing_version"] = version
    config["_plumbing_url"] = f"https://github.com/org/r-sagemaker/releases/download/v{version}"
    config["_rsagemaker_sha256"] = rsagemaker_sum
    config["_cli_sha256"] = cli_sum
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    commit_all(template, f"Release v{version}")
    run(["git", "tag", f"v{version}"], cwd=template)


def test_cruft_update_from_one_release_to_the_next_moves_only_the_pins(template_repo, tmp_path):
    template, _ = template_repo
    release(template, "0.3.0", "a" * 64, "b" * 64)
    run(
        [CRUFT, "create", "--no-input", "--checkout", "v0.3.0", "--output-dir", str(tmp_path), str(template)],
        cwd=tmp_path,
    )
    project = tmp_path / "r-on-sagemaker"
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
    commit_all(project, "Bake")
    pins = (project / "plumbing.sha256").read_text()
    assert (
        f"{'a' * 64}  rsagemaker_0.3.0.tar.gz" in pins
        and f"{'b' * 64}  rsagemaker_cli-0.3.0-py3-none-any.whl" in pins
    )
    train = project / "code" / "train.R"
    train.write_text(train.read_text() + "# tuned by the user\n")
    commit_all(project, "User change")

    release(template, "0.3.1", "c" * 64, "d" * 64)
    run([CRUFT, "update", "--skip-apply-ask", "--checkout", "v0.3.1"], cwd=project)

    changed = sorted(
        line[3:] for line in run(["git", "status", "--porcelain"], cwd=project).stdout.splitlines()
    )
    assert changed == [
        ".cruft.json",
        "Makefile",
        "images/training/Dockerfile",
        "plumbing.sha256",
        "pyproject.toml",
    ]
    pins = (project / "plumbing.sha256").read_text()
    assert (
        f"{'c' * 64}  rsagemaker_0.3.1.tar.gz" in pins
        and f"{'d' * 64}  rsagemaker_cli-0.3.1-py3-none-any.whl" in pins
    )
    assert "0.3.0" not in pins
    # Every changed line of the Makefile, the Dockerfile and pyproject.toml is a pin: the version or
    # the release URL.
    diff = run(
        ["git", "diff", "-U0", "HEAD", "--", "Makefile", "images/training/Dockerfile", "pyproject.toml"],
        cwd=project,
    ).stdout
    changed_lines = [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed_lines and all("0.3.0" in line or "0.3.1" in line for line in changed_lines), changed_lines
    assert train.read_text().endswith("# tuned by the user\n")
    assert json.loads((project / ".cruft.json").read_text())["checkout"] == "v0.3.1"
