"""The GitHub Actions workflows of the template and of every bake.

GitHub Actions cannot run here, so the workflows are held to what can be proven offline: the
workflow schema, zizmor's security audits, pinned actions, least permissions, shellcheck on every
`run:` step, every `make` target they call existing in the Makefile they call it in (and named in the
README); and the `run:` steps themselves, executed here with bash as the runner would (their
`${{ }}` expressions filled in): the push plan on every bake, the image tags, and the hand-over of the
tested images from the test job to the publish job, with the container engine and a real registry.
Every `run:` step is either run by a test here or listed with the reason it cannot be (RUN_ELSEWHERE).
"""

import io
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from conftest import NOT_TEMPLATE_FILES, REGISTRY, TEMPLATE, TEST_TAG, bake, dist

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
#   actions/upload-artifact v4.6.2: pin tables "upload-artifact v4.6.2 ea165f8d..."
#   actions/download-artifact v4.3.0: pin tables "download-artifact v4.3.0 -> d3f86a10..."
PINNED_ACTIONS = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "aws-actions/configure-aws-credentials": ("b47578312673ae6fa5b5096b330d9fbac3d116df", "v4.2.1"),
    "aws-actions/amazon-ecr-login": ("062b18b96a7aff071d4dc91bc00c4c1a7945b076", "v2.0.1"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "actions/download-artifact": ("d3f86a106a0bac45b974a628896c90dbdf5c8093", "v4.3.0"),
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


ONLY_ON_VERSION_TAGS = {"push": {"tags": ["v*"]}}


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
            if workflow["on"] == ONLY_ON_VERSION_TAGS and any(
                "gh release create" in step.get("run", "") for step in job["steps"]
            ):
                wanted["contents"] = "write"  # creating a release and uploading its files; v* tags only
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
        workflow = load(path)
        concurrency = workflow["concurrency"]
        assert "${{ github.workflow }}-${{ github.ref }}" == concurrency["group"], path
        if workflow["on"] == ONLY_ON_VERSION_TAGS:
            # A release run is its tag's only run: nothing supersedes it, and cancelling one could
            # leave a release created without its files.
            assert concurrency["cancel-in-progress"] is False, path
        else:
            assert concurrency["cancel-in-progress"] in (
                True,
                "${{ github.event_name == 'pull_request' }}",
            ), path


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
    # (`make images` in the test job only lists the images to save for the push.)
    of_generated_tests = [t for job, _, t in generated if job in ("lint", "test") and t != "images"]
    assert in_bake == of_generated_tests == ["lint", "vendor", "build", "test"]


# --- the generated project's workflow -------------------------------------------------------------------


def test_generated_ci_pushes_only_after_lint_and_test_with_oidc():
    workflow = load(GENERATED_SOURCE / ".github" / "workflows" / "ci.yml")
    assert workflow["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert "pull_request" in workflow["on"]
    publish = workflow["jobs"]["publish"]
    assert set(publish["needs"]) == {"plan", "lint", "test"}
    assert publish["if"] == "github.event_name == 'push' && vars.AWS_ROLE_ARN != ''"
    by_action = {step["uses"].split("@")[0]: step for step in publish["steps"] if "uses" in step}
    credentials = by_action["aws-actions/configure-aws-credentials"]["with"]
    assert credentials["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"


def test_the_publish_job_builds_nothing_and_pushes_the_test_jobs_artifact():
    """The hand-over, read from the workflow: the artifact the test job uploads after make test is the
    one the publish job downloads and loads, and the ID it checks is the test job's output."""
    workflow = load(GENERATED_SOURCE / ".github" / "workflows" / "ci.yml")
    test_job, publish = workflow["jobs"]["test"], workflow["jobs"]["publish"]
    test_steps = test_job["steps"]
    runs = [step.get("run", "").strip() for step in test_steps]
    save = step_named(workflow, "test", "save")
    upload = next(step for step in test_steps if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert (
        runs.index("make build") < runs.index("make test") < test_steps.index(save) < test_steps.index(upload)
    )
    assert upload["with"]["path"] == save["env"]["IMAGES_DIR"]
    assert test_job["outputs"]["image_ids"] == "${{ steps.save.outputs.image_ids }}"

    download = next(
        step for step in publish["steps"] if step.get("uses", "").startswith("actions/download-artifact@")
    )
    push = step_named(workflow, "publish", "push")
    assert download["with"]["name"] == upload["with"]["name"]
    assert push["env"]["IMAGES_DIR"] == download["with"]["path"]
    assert push["env"]["TESTED_ID"] == "${{ fromJSON(needs.test.outputs.image_ids)[matrix.image] }}"
    for step in publish["steps"]:
        assert "build-push-action" not in step.get("uses", ""), step
        for words in shell_commands(step.get("run", "")):
            assert words[:2] not in (["docker", "build"], ["make", "build"]), step


def expand(text, expressions):
    """A step's text with each ${{ expression }} replaced by its value, as the runner does."""

    def value(match):
        expression = match.group(1).strip()
        if expression not in expressions:
            pytest.fail(f"the test gives no value for ${{{{ {expression} }}}} in {text!r}")
        return expressions[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def run_step(step, cwd, tmp_path, expressions=None, **env):
    """Run a workflow step's shell as GitHub would (bash -e), with GITHUB_OUTPUT, GITHUB_ENV and
    GITHUB_STEP_SUMMARY files; the step's env gets its expressions' values (env= overrides it).
    Returns (result, outputs); the files are in tmp_path."""
    files = {name: tmp_path / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
    for path in files.values():
        path.write_text("")
    step_env = {
        key: expand(str(value), expressions or {})
        for key, value in step.get("env", {}).items()
        if key not in env
    }
    environment = {**os.environ, **step_env, **env, **{name: str(path) for name, path in files.items()}}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(step["run"], expressions or {})],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, parse_outputs(files["GITHUB_OUTPUT"].read_text())


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
    assert {target for _, target in commands} == {"lint", "vendor", "build", "test", "images"}
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
    """One actionlint step per repository (the template, a bake), and it lints every workflow there
    (the template's: release.yml too, and the workflows it generates)."""
    for root, workflows in (
        (TEMPLATE, workflow_files(TEMPLATE) + workflow_files(GENERATED_SOURCE)),
        (GENERATED_SOURCE, workflow_files(GENERATED_SOURCE)),
    ):
        found = [
            s
            for path in workflow_files(root)
            for _, s in steps(load(path))
            if s.get("name", "").startswith("actionlint")
        ]
        assert len(found) == 1, f"{root}: {len(found)} actionlint steps"
        (step,) = found
        assert re.fullmatch(r"\d+\.\d+\.\d+", step["env"]["ACTIONLINT_VERSION"])
        assert re.fullmatch(r"[0-9a-f]{64}", step["env"]["ACTIONLINT_SHA256"])
        assert "sha256sum --check --strict" in step["run"]
        (command,) = [
            words
            for words in shell_commands(re.sub(r"\\\n", " ", step["run"]))
            if words[0].endswith("/actionlint")
        ]
        patterns = [word for word in command[1:] if not word.startswith("-")]
        # Without file arguments actionlint lints every workflow of the repository it runs in.
        linted = {p for pattern in patterns for p in root.glob(pattern)} if patterns else set(workflows)
        assert set(workflows) <= linted, f"{root}: actionlint leaves out {set(workflows) - linted}"


# --- the hand-over of the tested images, run here ------------------------------------------------------

# Stands in for the two AWS calls of the push step, against the local registry as ECR's API answers:
# `aws ecr batch-get-image` (the manifest the registry serves for a tag, or no image) and `aws ecr
# put-image` (a manifest put under another tag, as ECR tags an image without a push).
AWS_SHIM = """#!{python}
import json
import sys
import urllib.error
import urllib.request

arguments = sys.argv[1:]
def value(name):
    return arguments[arguments.index(name) + 1]
repository = value("--repository-name")
url = "http://{registry}/v2/" + repository + "/manifests/"
if arguments[:2] == ["ecr", "batch-get-image"]:
    # the whole answer as JSON, or (--query) the manifest as text
    assert value("--output") == "json" or value("--query") == "images[0].imageManifest", arguments
    tag = value("--image-ids").removeprefix("imageTag=")
    start = arguments.index("--accepted-media-types") + 1
    types = []
    while start < len(arguments) and not arguments[start].startswith("--"):
        types.append(arguments[start])
        start += 1
    request = urllib.request.Request(url + tag, headers={{"Accept": ", ".join(types)}})
    try:
        with urllib.request.urlopen(request) as response:
            image = {{"imageId": {{"imageTag": tag}}, "imageManifest": response.read().decode(),
                     "imageManifestMediaType": response.headers["Content-Type"]}}
        answer = {{"images": [image], "failures": []}}
    except urllib.error.HTTPError as error:
        assert error.code == 404, error
        answer = {{"images": [], "failures": [{{"failureCode": "ImageNotFound"}}]}}
    if "--query" in arguments:
        print(answer["images"][0]["imageManifest"] if answer["images"] else "None")
    else:
        print(json.dumps(answer))
elif arguments[:2] == ["ecr", "put-image"]:
    manifest = value("--image-manifest").encode()
    media_type = value("--image-manifest-media-type")
    request = urllib.request.Request(
        url + value("--image-tag"), data=manifest, method="PUT", headers={{"Content-Type": media_type}}
    )
    urllib.request.urlopen(request).close()
    print(json.dumps({{"image": {{"imageId": {{"imageTag": value("--image-tag")}}}}}}))
else:
    raise SystemExit(f"the AWS shim does not know {{arguments}}")
"""


def served_config_digest(repository, tag):
    """The config digest of the manifest the registry serves for repository:tag (None if absent)."""
    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    )
    response = requests.get(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}, timeout=30
    )
    return response.json()["config"]["digest"] if response.status_code == 200 else None


@pytest.mark.slow
def test_publish_pushes_exactly_the_images_make_test_ran(built_project, engine, registry, tmp_path):
    project, images = built_project
    workflow = load(project / ".github" / "workflows" / "ci.yml")
    tag = f"wf-{TEST_TAG}"  # the job's TAG: a copy of the built images under a tag of this test
    repositories = {name: ref.rsplit(":", 1)[0] for name, ref in images.items()}
    for name, ref in images.items():
        engine.images.get(ref).tag(repositories[name], tag)
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    shim = tmp_path / "bin" / "aws"
    shim.parent.mkdir()
    shim.write_text(AWS_SHIM.format(python=sys.executable, registry=REGISTRY))
    shim.chmod(0o755)
    rebuilt = None
    try:
        # The test job, after make test: save the images, output their IDs.
        save = step_named(workflow, "test", "save")
        result, outputs = run_step(save, project, tmp_path, {"runner.temp": str(runner_temp)}, TAG=tag)
        assert result.returncode == 0, result.stdout + result.stderr
        tested = json.loads(outputs["image_ids"])
        assert tested == {name: engine.images.get(ref).id for name, ref in images.items()}
        artifact = runner_temp / "tested-images"
        assert sorted(path.name for path in artifact.iterdir()) == sorted(f"{name}.tar" for name in images)
        for name in images:  # the publish job's runner has only the artifact
            engine.images.remove(f"{repositories[name]}:{tag}")

        def expressions_for(name):
            return {
                "runner.temp": str(runner_temp),
                "matrix.image": name,
                "matrix.repository": repositories[name],
                "matrix.tag": tag,
                "steps.ecr.outputs.registry": REGISTRY,
                "fromJSON(needs.test.outputs.image_ids)[matrix.image]": tested[name],
                "matrix.image == 'training' && 'remote-train' || 'remote-process'": (
                    "remote-train" if name == "training" else "remote-process"
                ),
            }

        path = f"{shim.parent}:{os.environ['PATH']}"
        for name in images:
            expressions = expressions_for(name)
            refs = {"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.0.0"}
            result, tags = run_step(
                step_named(workflow, "publish", "tags"), project, tmp_path, expressions, **refs
            )
            assert result.returncode == 0, result.stderr
            expressions["steps.tags.outputs.tags"] = tags["tags"]
            result, outputs = run_step(
                step_named(workflow, "publish", "push"), project, tmp_path, expressions, PATH=path
            )
            assert result.returncode == 0, result.stdout + result.stderr
            assert outputs == {"kept": "false", "image_id": tested[name]}
            expressions["steps.push.outputs.kept"] = outputs["kept"]
            expressions["steps.push.outputs.image_id"] = outputs["image_id"]
            target = f"{REGISTRY}/{repositories[name]}"
            for pushed_tag in (tag, "v1.0.0"):
                assert served_config_digest(repositories[name], pushed_tag) == tested[name]
            assert f"{target}:{tag}: the tested image {tested[name]}" in result.stdout
            assert f"{target}:v1.0.0: the image of {target}:{tag}, {tested[name]}" in result.stdout

            summary_step = next(step for _, step in steps(workflow) if step.get("name") == "Summary")
            result, _ = run_step(summary_step, project, tmp_path, expressions)
            assert result.returncode == 0, result.stderr
            summary = (tmp_path / "github_step_summary").read_text()
            assert f"Pushed the image make test ran ({tested[name]})" in summary
            assert f"{REGISTRY}/{repositories[name]}:v1.0.0" in summary

            # Control: an artifact that is not what make test ran is refused before any push.
            wrong = {
                **expressions,
                "fromJSON(needs.test.outputs.image_ids)[matrix.image]": "sha256:" + "0" * 64,
            }
            wrong["steps.tags.outputs.tags"] = f"{REGISTRY}/{repositories[name]}:control"
            result, _ = run_step(step_named(workflow, "publish", "push"), project, tmp_path, wrong, PATH=path)
            assert result.returncode != 0
            assert "::error title=Not the tested image::" in result.stdout
            assert served_config_digest(repositories[name], "control") is None

        # Issue 25 item 10: the same commit built again (a v* tag on a commit main pushed, or a
        # re-run) is another image; the commit's tag keeps the image ECR has, which takes the version.
        name = next(iter(images))
        local_ref = f"{repositories[name]}:{tag}"
        rebuilt = rebuild(engine, images[name], local_ref)
        assert rebuilt != tested[name]
        run(["docker", "save", "--output", str(artifact / f"{name}.tar"), local_ref])
        engine.images.remove(local_ref)
        target = f"{REGISTRY}/{repositories[name]}"
        expressions = {
            **expressions_for(name),
            "fromJSON(needs.test.outputs.image_ids)[matrix.image]": rebuilt,
            "steps.tags.outputs.tags": f"{target}:{tag}\n{target}:v1.0.1",
        }
        result, outputs = run_step(
            step_named(workflow, "publish", "push"), project, tmp_path, expressions, PATH=path
        )
        assert result.returncode == 0, result.stdout + result.stderr
        for kept_tag in (tag, "v1.0.0", "v1.0.1"):
            assert served_config_digest(repositories[name], kept_tag) == tested[name], kept_tag
        assert f"::notice title=Kept {target}:{tag}::" in result.stdout
        assert outputs["kept"] == "true" and outputs["image_id"] == tested[name]
        expressions["steps.push.outputs.kept"] = outputs["kept"]
        expressions["steps.push.outputs.image_id"] = outputs["image_id"]
        summary_step = next(step for _, step in steps(workflow) if step.get("name") == "Summary")
        result, _ = run_step(summary_step, project, tmp_path, expressions)
        assert f"ECR had this commit's image already ({tested[name]}" in result.stdout

        # A version tag never moves either: another commit's image asking for v1.0.0 is refused.
        expressions["steps.tags.outputs.tags"] = f"{target}:{tag}-next\n{target}:v1.0.0"
        result, _ = run_step(
            step_named(workflow, "publish", "push"), project, tmp_path, expressions, PATH=path
        )
        assert result.returncode != 0
        assert f"::error title=Version tag taken::{target}:v1.0.0 names image {tested[name]}" in result.stdout
        assert served_config_digest(repositories[name], "v1.0.0") == tested[name]
        assert served_config_digest(repositories[name], f"{tag}-next") == rebuilt
    finally:
        for name in images:
            for leftover in (f"{repositories[name]}:{tag}",):
                if engine.images.list(name=leftover):
                    engine.images.remove(leftover)
        if rebuilt:
            engine.images.remove(rebuilt, force=True)


def rebuild(engine, ref, new_ref):
    """ref built again: the same content in another image (another ID), as a second build of one
    commit is; tagged new_ref. Returns its ID."""
    dockerfile = io.BytesIO(f"FROM {ref}\nLABEL rebuilt-by=test_workflows\n".encode())
    image, _ = engine.images.build(fileobj=dockerfile, tag=new_ref, rm=True)
    return image.id


def test_fix_tag_step_pins_the_commits_sha_for_the_job(bakes, tmp_path):
    project = bakes[COMBINATIONS[0]]
    workflow = load(project / ".github" / "workflows" / "ci.yml")
    step = next(step for _, step in steps(workflow) if step.get("name", "").startswith("Fix TAG"))
    environment = {key: value for key, value in os.environ.items() if key != "TAG"}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=project,
        env={**environment, "GITHUB_ENV": str(tmp_path / "github_env")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    short_sha = run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project).stdout.strip()
    assert (tmp_path / "github_env").read_text() == f"TAG={short_sha}\n"


def test_the_skipped_push_says_why(tmp_path):
    workflow = load(GENERATED_SOURCE / ".github" / "workflows" / "ci.yml")
    step = next(step for _, step in steps(workflow) if step.get("name") == "Say why nothing is pushed")
    assert step["if"] == "github.event_name == 'push' && vars.AWS_ROLE_ARN == ''"
    result, _ = run_step(step, tmp_path, tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(
        "::notice title=ECR push skipped::The repository variable AWS_ROLE_ARN is not set."
    )


def test_the_template_bake_step_commits_a_clean_project(tmp_path):
    workflow = load(TEMPLATE / ".github" / "workflows" / "ci.yml")
    step = step_named(workflow, "bake", "bake")
    expressions = {"matrix.images": "training", "matrix.base_image": BASE_CHOICES[0]}
    result, outputs = run_step(step, TEMPLATE, tmp_path, expressions, RUNNER_TEMP=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    project = Path(outputs["project"])
    assert (project / "Makefile").is_file() and not (project / "images" / "processing").exists()
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""


def test_the_release_rebuilds_dist_and_refuses_what_the_pins_do_not_name(tmp_path):
    """The release workflow's check, run on a copy of this checkout whose cookiecutter.json pins this
    checkout's builds (as scripts/release.sh leaves a tag); control: one pin off, and the step fails."""
    step = next(
        step
        for _, step in steps(load(TEMPLATE / ".github" / "workflows" / "release.yml"))
        if step.get("name", "").startswith("Rebuild dist/")
    )
    built = {}
    for line in (dist() / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        built[name] = digest
    checkout = tmp_path / "r-sagemaker"
    shutil.copytree(TEMPLATE, checkout, ignore=NOT_TEMPLATE_FILES)
    run(["git", "init", "--quiet"], cwd=checkout)  # dist.sh takes the files git tracks or would track
    config_path = checkout / "cookiecutter.json"
    config = json.loads(config_path.read_text())
    version = config["_plumbing_version"]
    config["_rsagemaker_sha256"] = built[f"rsagemaker_{version}.tar.gz"]
    config["_cli_sha256"] = built[f"rsagemaker_cli-{version}-py3-none-any.whl"]
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    # The step adds the checkout to git's safe.directory in the global config: here a file of the test.
    git_config = {"GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}
    outputs = tmp_path / "outputs"
    outputs.mkdir()

    result, _ = run_step(step, checkout, outputs, **git_config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"dist/ matches the pins of {version}" in result.stdout
    assert (checkout / "dist" / "SHA256SUMS").read_text() == (dist() / "SHA256SUMS").read_text()

    config["_cli_sha256"] = "0" * 64
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    result, _ = run_step(step, checkout, outputs, **git_config)
    assert result.returncode != 0
    assert (
        f"dist/ differs from the pins in cookiecutter.json: ['rsagemaker_cli-{version}-py3-none-any.whl']"
        in result.stderr
    )


def test_the_release_attaches_the_checked_files_and_nothing_else(tmp_path):
    """The attach job gets dist/ from the build job (which holds no write token) and checks it again
    before `gh release create` (a stand-in that records its arguments): it attaches what SHA256SUMS
    names, not a stray file; a changed file attaches nothing."""
    release = load(TEMPLATE / ".github" / "workflows" / "release.yml")
    assert release["jobs"]["attach"]["needs"] == "build"
    assert release["jobs"]["build"]["permissions"] == {"contents": "read"}
    step = next(step for _, step in steps(release) if step.get("name") == "Attach the files to the release")
    files = tmp_path / "dist"
    shutil.copytree(dist(), files)
    names = sorted(line.split("  ", 1)[1] for line in (files / "SHA256SUMS").read_text().splitlines())
    (files / "rsagemaker_0.0.1.tar.gz").write_text("a stray file SHA256SUMS does not name\n")
    shim = tmp_path / "bin" / "gh"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/gh-arguments\n')
    shim.chmod(0o755)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "NEWS.md").write_text("# NEWS\n")
    expressions = {"github.token": "token", "github.ref_name": "v9.9.9", "runner.temp": str(tmp_path)}
    environment = {"PATH": f"{shim.parent}:{os.environ['PATH']}", "GITHUB_REPOSITORY": "org/r-sagemaker"}
    outputs = tmp_path / "outputs"
    outputs.mkdir()

    result, _ = run_step(step, checkout, outputs, expressions, **environment)
    assert result.returncode == 0, result.stdout + result.stderr
    arguments = (tmp_path / "gh-arguments").read_text().splitlines()
    assert arguments[:4] == ["release", "create", "v9.9.9", "--repo"]
    attached = sorted(Path(argument).name for argument in arguments if argument.startswith(str(files)))
    assert attached == sorted([*names, "SHA256SUMS"])

    (tmp_path / "gh-arguments").unlink()
    with open(files / names[0], "ab") as changed:
        changed.write(b"\0")
    result, _ = run_step(step, checkout, outputs, expressions, **environment)
    assert result.returncode != 0
    assert f"{names[0]}: FAILED" in result.stdout
    assert not (tmp_path / "gh-arguments").exists()


# Every `run:` step of the workflows is run by a test of this file, or by the suite in its own way,
# or needs what is not here; a new step must be placed in one of the two lists.
RUN_HERE = {
    "generated: plan: Read the images, region and base image from the Makefile": "test_push_plan_lists_exactly_the_chosen_images",
    "generated: plan: Say why nothing is pushed": "test_the_skipped_push_says_why",
    "generated: test: Fix TAG for the whole job (the commit's sha, as the plan job reads it)": "test_fix_tag_step_pins_the_commits_sha_for_the_job",
    "generated: test: Save the tested images for the publish job": "test_publish_pushes_exactly_the_images_make_test_ran",
    "generated: publish: Image tags (the git sha as the Makefile tags it; the version on v* tags)": "test_image_tags_are_the_sha_and_the_version_tag",
    "generated: publish: Push the tested image (loaded from the test job's artifact, checked by ID)": "test_publish_pushes_exactly_the_images_make_test_ran",
    "generated: publish: Summary": "test_publish_pushes_exactly_the_images_make_test_ran",
    "template: bake: Bake into a git repository of its own, as a user would": "test_the_template_bake_step_commits_a_clean_project",
    "template release: build: Rebuild dist/ and compare with the pins": "test_the_release_rebuilds_dist_and_refuses_what_the_pins_do_not_name",
    "template release: attach: Attach the files to the release": "test_the_release_attaches_the_checked_files_and_nothing_else",
}
RUN_ELSEWHERE = {
    "generated: lint: Install R and lintr (Ubuntu packages)": "apt-get on a GitHub runner (Ubuntu); here scripts/host-packages.sh",
    "generated: lint: make lint": "tests/test_lint.py runs make lint in every bake",
    "generated: lint: actionlint": "downloads actionlint from GitHub (no network here); shellcheck runs below",
    "generated: test: Install R and testthat for the model's R tests (make test-r; Ubuntu packages)": "apt-get on Ubuntu; here scripts/host-packages.sh installs the same packages",
    "generated: test: Fetch and check the pinned plumbing (plumbing.sha256)": "make vendor: tests/test_release.py runs it on a bake of a release (its files from a folder: the release URL is not reachable here) and with a tampered file",
    "generated: test: make build": "conftest.built_project builds the default bake (make build)",
    "generated: test: make test": "tests/test_images.py runs make test in the built bake",
    "generated: publish: Check that the ECR repository exists": "needs the ECR API (aws ecr describe-repositories)",
    "template: lint: make lint": "the template's make lint (run in CI)",
    "template: lint: actionlint (the template's and the generated project's workflows)": "downloads actionlint",
    "template: suite: make test": "this suite",
    "template: bake: make setup (host R, cookiecutter)": "make setup, which runs this suite",
    "template: bake: make lint (in the bake)": "tests/test_lint.py",
    "template: bake: Build this checkout's packages (the bake vendors them)": "conftest.dist() runs scripts/dist.sh once per session; tests/test_release.py checks it builds the same bytes twice",
    "template: bake: make vendor (in the bake)": "conftest.built_project: make build checks vendor/ first (vendor/.checked runs make vendor); tests/test_release.py runs make vendor itself",
    "template: bake: make build (in the bake)": "conftest.built_project",
    "template: bake: make test (in the bake)": "tests/test_images.py",
    "template release: build: Install R, Python and git (Debian packages)": "apt-get in the debian:bookworm container; here scripts/host-packages.sh",
}


def run_step_names():
    names = []
    for label, root in (("template", TEMPLATE), ("generated", GENERATED_SOURCE)):
        for path in workflow_files(root):
            workflow = label if path.name == "ci.yml" else f"{label} {path.stem}"
            for job_id, step in steps(load(path)):
                if "run" in step:
                    names.append(f"{workflow}: {job_id}: {step.get('name') or step['run'].strip()}")
    return names


def test_every_run_step_is_run_here_or_says_why_not():
    names = run_step_names()
    assert len(names) == len(set(names)), "two run steps of one job have the same name"
    assert sorted(names) == sorted({**RUN_HERE, **RUN_ELSEWHERE}), (
        "place each run step in RUN_HERE or RUN_ELSEWHERE"
    )
    for test_name in RUN_HERE.values():
        assert callable(globals().get(test_name)), test_name
