"""The GitHub Actions workflows of the template and of every bake, checked statically.

GitHub Actions cannot run here, so the workflows are held to what can be proven offline: the
workflow schema, zizmor's security audits, pinned actions, least permissions, `${{ }}` expressions
copied intact, every `make` target they call existing in the Makefile they call it in (and named in
the README), and the shell of the steps that compute the ECR push plan run for real on each bake.
"""

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, bake

TOOLS = Path(sys.executable).parent  # check-jsonschema, zizmor, shellcheck of the suite's venv
GENERATED_SOURCE = TEMPLATE / "{{cookiecutter.project_slug}}"
CHOICES = json.loads((TEMPLATE / "cookiecutter.json").read_text())
IMAGE_CHOICES = CHOICES["images"]
BASE_CHOICES = CHOICES["base_image"]
COMBINATIONS = list(itertools.product(IMAGE_CHOICES, BASE_CHOICES))

# Every action the workflows use, at the full commit SHA of the release named in the comment.
# Where each SHA was checked (GitHub runner logs "Download action repository '...@vN' (SHA:...)",
# and pin tables of public repositories that cite the release tag):
#   actions/checkout v4.2.2: runner logs resolving actions/checkout; pin tables "v4.2.2 | 11bd7190..."
#   actions/setup-python v5.6.0: runner log "actions/setup-python@v5 (SHA:a26af69b...)"; "v5.6.0 a26af69b"
#   aws-actions/configure-aws-credentials v4.2.1: pin maps "(b4757831..., v4.2.1)"
#   aws-actions/amazon-ecr-login v2.0.1: pin lists "@ v2.0.1 -> 062b18b9..."
#   docker/setup-buildx-action v3.11.1: runner log "docker/setup-buildx-action@v3 (SHA:e468171a...)"
#   docker/build-push-action v6.18.0: pin lists "v6.18.0 sha: 26343531..."
PINNED_ACTIONS = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "aws-actions/configure-aws-credentials": ("b47578312673ae6fa5b5096b330d9fbac3d116df", "v4.2.1"),
    "aws-actions/amazon-ecr-login": ("062b18b96a7aff071d4dc91bc00c4c1a7945b076", "v2.0.1"),
    "docker/setup-buildx-action": ("e468171a9de216ec08956ac3ada2f0791b6bd435", "v3.11.1"),
    "docker/build-push-action": ("263435318d21b8e681c14492fe198d362a7d2c83", "v6.18.0"),
}
USES_LINE = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?:\s+#\s*(?P<comment>\S+))?\s*$"
)
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]


def workflow_files(root):
    files = sorted((root / ".github" / "workflows").glob("*.yml"))
    assert files, f"no workflow in {root}/.github/workflows"
    return files


def load(path):
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def step_named(workflow, job_id, step_id):
    matches = [step for job, step in steps(workflow) if job == job_id and step.get("id") == step_id]
    assert len(matches) == 1, f"job {job_id} has no single step with id {step_id}"
    return matches[0]


def run(command, cwd=None, env=None, check=True):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def bakes(tmp_path_factory):
    """One bake per combination of choices, each committed in a git repository of its own as a user's
    project on GitHub would be (so the Makefile's TAG is the commit's short sha)."""
    projects = {}
    for images, base in COMBINATIONS:
        project = bake(tmp_path_factory.mktemp(f"{images}-"), images=images, base_image=base)
        run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
        run(["git", "add", "--all"], cwd=project)
        run([*GIT, "commit", "--quiet", "-m", "Bake"], cwd=project)
        projects[images, base] = project
    return projects


def all_workflow_dirs(bakes):
    return [TEMPLATE / ".github" / "workflows"] + [p / ".github" / "workflows" for p in bakes.values()]


# --- schema and security ----------------------------------------------------------------------------


def test_every_workflow_matches_the_github_workflow_schema(bakes):
    files = workflow_files(TEMPLATE) + [f for p in bakes.values() for f in workflow_files(p)]
    result = run(
        [TOOLS / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_finds_nothing_at_or_above_low(bakes):
    for directory in all_workflow_dirs(bakes):
        result = run([TOOLS / "zizmor", "--offline", "--min-severity", "low", str(directory)], check=False)
        assert result.returncode == 0, f"{directory}:\n{result.stdout}\n{result.stderr}"
        assert "No findings" in result.stdout, result.stdout


def test_zizmor_really_audits_the_generated_workflow(bakes, tmp_path):
    """Control: the same workflow with one action pinned to a tag instead of a commit fails."""
    source = workflow_files(bakes[COMBINATIONS[0]])[0].read_text()
    sha, _ = PINNED_ACTIONS["actions/checkout"]
    broken = source.replace(f"actions/checkout@{sha}", "actions/checkout@v4", 1)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text(broken)
    result = run([TOOLS / "zizmor", "--offline", "--min-severity", "low", str(tmp_path)], check=False)
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout, result.stdout


def test_every_action_is_pinned_to_the_commit_of_its_release():
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "uses:" not in line:
                continue
            match = USES_LINE.match(line)
            assert match, f"{path}:{number}: cannot read {line!r}"
            action, ref, comment = match["action"], match["ref"], match["comment"]
            assert action in PINNED_ACTIONS, f"{path}:{number}: {action} is not in PINNED_ACTIONS"
            assert (ref, comment) == PINNED_ACTIONS[action], f"{path}:{number}: {action}@{ref} # {comment}"


def test_permissions_are_empty_at_the_top_and_least_per_job():
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        workflow = load(path)
        assert workflow["permissions"] == {}, path
        for job_id, job in workflow["jobs"].items():
            permissions = job.get("permissions")
            assert permissions, f"{path}: job {job_id} has no permissions block"
            wanted = {"contents": "read"}
            if any("configure-aws-credentials" in step.get("uses", "") for step in job["steps"]):
                wanted["id-token"] = "write"  # OIDC: the only way this project reaches AWS
            assert permissions == wanted, f"{path}: job {job_id}: {permissions}"


def test_no_long_lived_credentials_anywhere():
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        text = path.read_text()
        for forbidden in ("secrets.", "aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
            assert forbidden not in text, f"{path} mentions {forbidden}"


def test_checkouts_do_not_keep_the_token():
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        for job_id, step in steps(load(path)):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{path}: {job_id}"


def test_concurrency_cancels_superseded_runs():
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        concurrency = load(path)["concurrency"]
        assert "${{ github.workflow }}-${{ github.ref }}" == concurrency["group"], path
        assert concurrency["cancel-in-progress"] in (True, "${{ github.event_name == 'pull_request' }}"), path


# --- rendering ------------------------------------------------------------------------------------------


def test_generated_workflows_are_copied_verbatim_with_expressions_intact(bakes):
    sources = {path.name: path.read_text() for path in workflow_files(GENERATED_SOURCE)}
    for project in bakes.values():
        baked = {path.name: path.read_text() for path in workflow_files(project)}
        assert baked == sources, project
        for text in baked.values():
            assert "${{ github." in text and "${{ matrix." in text
            assert "cookiecutter." not in text and "{%" not in text


# --- the template's workflow ---------------------------------------------------------------------------


def test_template_ci_covers_every_combination_and_runs_weekly():
    workflow = load(TEMPLATE / ".github" / "workflows" / "ci.yml")
    matrix = workflow["jobs"]["bake"]["strategy"]["matrix"]
    assert matrix["images"] == IMAGE_CHOICES
    assert matrix["base_image"] == BASE_CHOICES
    assert workflow["jobs"]["bake"]["strategy"]["fail-fast"] is False
    # The suite on the real default base: the first base_image choice is cookiecutter's default.
    assert workflow["jobs"]["suite"]["env"]["R_SAGEMAKER_TEST_BASE"] == BASE_CHOICES[0]
    assert workflow["jobs"]["suite"]["runs-on"] == "ubuntu-latest"
    (schedule,) = workflow["on"]["schedule"]
    _minute, _hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit(), schedule  # once a week


def test_template_bake_job_runs_the_generated_projects_ci_commands():
    template = make_commands_of(TEMPLATE / ".github" / "workflows" / "ci.yml")
    generated = make_commands(GENERATED_SOURCE / ".github" / "workflows" / "ci.yml")
    in_bake = [target for directory, target in template if directory == "$PROJECT_DIR"]
    of_generated_tests = [t for job, _, t in generated if job in ("lint", "test")]
    assert in_bake == of_generated_tests == ["lint", "build", "test"]


# --- the generated project's workflow -------------------------------------------------------------------


def test_generated_ci_lints_builds_tests_then_pushes_with_oidc():
    workflow = load(GENERATED_SOURCE / ".github" / "workflows" / "ci.yml")
    assert workflow["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert "pull_request" in workflow["on"]
    publish = workflow["jobs"]["publish"]
    assert set(publish["needs"]) == {"plan", "lint", "test"}
    assert publish["if"] == "github.event_name == 'push' && vars.AWS_ROLE_ARN != ''"
    by_action = {step["uses"].split("@")[0]: step for step in publish["steps"] if "uses" in step}
    credentials = by_action["aws-actions/configure-aws-credentials"]["with"]
    assert credentials == {
        "role-to-assume": "${{ vars.AWS_ROLE_ARN }}",
        "aws-region": "${{ needs.plan.outputs.region }}",
    }
    assert "docker/setup-buildx-action" in by_action and "aws-actions/amazon-ecr-login" in by_action
    build = by_action["docker/build-push-action"]["with"]
    assert build["provenance"] is False and build["push"] is True
    assert build["platforms"] == "linux/amd64"
    assert build["file"] == "images/${{ matrix.image }}/Dockerfile"
    assert build["build-args"] == "BASE_IMAGE=${{ needs.plan.outputs.base_image }}"
    # One GitHub Actions cache per image, or the images evict each other's layers.
    assert build["cache-from"] == "type=gha,scope=${{ matrix.image }}"
    assert build["cache-to"] == "type=gha,mode=max,scope=${{ matrix.image }}"
    assert publish["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"


def run_step(step, cwd, tmp_path, **env):
    """Run a workflow step's shell as GitHub would (bash -e), with GITHUB_OUTPUT; returns its outputs."""
    output = tmp_path / "github_output"
    output.write_text("")
    environment = {**os.environ, **step.get("env", {}), **env, "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, parse_outputs(output.read_text())


def parse_outputs(text):
    """GITHUB_OUTPUT lines: name=value, or name<<DELIMITER ... DELIMITER."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            for next_line in lines:
                if next_line == delimiter:
                    break
                value.append(next_line)
            outputs[name] = "\n".join(value)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@pytest.mark.parametrize("images,base", COMBINATIONS)
def test_push_plan_lists_exactly_the_chosen_images(bakes, tmp_path, images, base):
    project = bakes[images, base]
    workflow = load(project / ".github" / "workflows" / "ci.yml")
    result, outputs = run_step(step_named(workflow, "plan", "makefile"), project, tmp_path)
    assert result.returncode == 0, result.stderr
    chosen = ["processing", "training"] if images == "both" else [images]
    short_sha = run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project).stdout.strip()
    assert json.loads(outputs["matrix"]) == [
        {"image": image, "repository": f"r-on-sagemaker-{image}", "tag": short_sha} for image in chosen
    ]
    assert outputs["region"] == CHOICES["aws_region"]
    assert outputs["base_image"] == base


@pytest.mark.parametrize(
    "ref_type,ref_name,expected_suffixes",
    [("branch", "main", [":abc1234"]), ("tag", "v1.2.0", [":abc1234", ":v1.2.0"]), ("tag", "v1/bad", None)],
)
def test_image_tags_are_the_sha_and_the_version_tag(tmp_path, ref_type, ref_name, expected_suffixes):
    workflow = load(GENERATED_SOURCE / ".github" / "workflows" / "ci.yml")
    step = step_named(workflow, "publish", "tags")
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com/r-on-sagemaker-training"
    result, outputs = run_step(
        step,
        tmp_path,
        tmp_path,
        IMAGE=registry,
        TAG="abc1234",
        GITHUB_REF_TYPE=ref_type,
        GITHUB_REF_NAME=ref_name,
    )
    if expected_suffixes is None:
        assert result.returncode != 0 and "not a valid image tag" in result.stdout
        return
    assert result.returncode == 0, result.stderr
    assert outputs["tags"].splitlines() == [registry + suffix for suffix in expected_suffixes]


def test_every_run_step_passes_shellcheck(tmp_path):
    """What actionlint does on GitHub: shellcheck each `run:` with its ${{ }} replaced by a value."""
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        for job_id, step in steps(load(path)):
            if "run" not in step:
                continue
            script = re.sub(r"\$\{\{.*?\}\}", "placeholder", step["run"])
            result = subprocess.run(
                [TOOLS / "shellcheck", "--shell=bash", "--norc", "-"],
                input=script,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, (
                f"{path}: job {job_id}: {step.get('name', step['run'][:40])}\n{result.stdout}"
            )


# --- no drift between workflows, Makefiles and READMEs ----------------------------------------------------


SHELL_SEPARATORS = ";&|()\n"


def shell_commands(script):
    """The simple commands of a shell script, as lists of words (quotes may span lines)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=SHELL_SEPARATORS)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    command = []
    for token in lexer:
        if token and all(character in SHELL_SEPARATORS for character in token):
            if command:
                yield command
            command = []
        else:
            command.append(token)
    if command:
        yield command


def make_commands(path):
    """[(job, directory, target)] for every `make` the workflow runs; directory is -C's value or '.'.
    Targets of a pattern rule given with --eval (e.g. print-%) are left out: the command defines them."""
    found = []
    for job_id, step in steps(load(path)):
        for words in shell_commands(re.sub(r"\\\n", " ", step.get("run", ""))):
            if "make" not in words:
                continue
            words = words[words.index("make") + 1 :]
            directory, defined_by_eval = ".", []
            while words:
                word = words.pop(0)
                if word == "-C":
                    directory = words.pop(0)
                elif word == "--eval":
                    defined_by_eval.append(words.pop(0).split("%")[0])
                elif word.startswith("-") or "=" in word:
                    continue
                elif not any(prefix and word.startswith(prefix) for prefix in defined_by_eval):
                    found.append((job_id, directory, word))
    return found


def make_targets(project):
    """Every explicit target of the Makefile in project, from make's own database."""
    database = run(
        ["make", "--no-print-directory", "-pRrq", "-C", str(project), "-f", "Makefile", ":"], check=False
    )
    targets = set()
    for line in database.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9][^$#/\t=:%]*):(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    assert "help" in targets, database.stdout[-2000:]
    return targets


def make_commands_of(path):
    return [(directory, target) for _, directory, target in make_commands(path)]


def test_template_workflow_runs_only_make_targets_that_exist(bakes):
    commands = make_commands_of(TEMPLATE / ".github" / "workflows" / "ci.yml")
    assert {target for directory, target in commands if directory == "."} == {"lint", "test", "setup"}
    template_targets = make_targets(TEMPLATE)
    for project in bakes.values():
        bake_targets = make_targets(project)
        for directory, target in commands:
            targets = template_targets if directory == "." else bake_targets
            assert target in targets, f"`make {target}` ({directory}) is not a target"


@pytest.mark.parametrize("images,base", COMBINATIONS)
def test_generated_workflow_runs_only_make_targets_that_exist(bakes, images, base):
    project = bakes[images, base]
    commands = make_commands_of(project / ".github" / "workflows" / "ci.yml")
    assert {target for _, target in commands} == {"lint", "build", "test", "images"}
    targets = make_targets(project)
    for _, target in commands:
        assert target in targets, f"`make {target}` is not a target of the {images} bake"


def test_readmes_document_the_make_targets_the_workflows_run(bakes):
    pairs = [(TEMPLATE / "README.md", TEMPLATE / ".github" / "workflows" / "ci.yml")]
    pairs += [(p / "README.md", p / ".github" / "workflows" / "ci.yml") for p in bakes.values()]
    for readme, workflow in pairs:
        text = readme.read_text()
        for directory, target in make_commands_of(workflow):
            if directory == ".":
                assert f"make {target}" in text, f"{readme} does not document `make {target}` ({workflow})"


def test_actionlint_is_downloaded_pinned_and_verified():
    for path in workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE):
        (step,) = [s for _, s in steps(load(path)) if s.get("name", "").startswith("actionlint")]
        assert re.fullmatch(r"\d+\.\d+\.\d+", step["env"]["ACTIONLINT_VERSION"])
        assert re.fullmatch(r"[0-9a-f]{64}", step["env"]["ACTIONLINT_SHA256"])
        assert "sha256sum --check --strict" in step["run"]
