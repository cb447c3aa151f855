"""A bake and its CLI: the Makefile calls `$(CLI) <command>` with arguments the CLI takes, the CLI
reads the bake's name and images, its config/aws.json holds known settings, `make local-pipeline`
installs the SDK it needs, and the TAG / push rules of issue 25 items 8 and 12. No image is built:
the commands themselves are tested in cli/tests."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import TEST_TAG, bake, make
from rsagemaker_cli.cli import build_parser
from rsagemaker_cli.core import git
from rsagemaker_cli.core.project import find_project
from rsagemaker_cli.core.settings import BY_KEY, flatten

SLUG = "r-on-sagemaker"
PROCESSING, TRAINING = f"{SLUG}-processing:{TEST_TAG}", f"{SLUG}-training:{TEST_TAG}"

# make target and variables -> the CLI's arguments it must run.
CALLS = [
    (
        "push",
        {},
        ["push", "--image", f"processing={PROCESSING}", "--image", f"training={TRAINING}", "--tag", TEST_TAG],
    ),
    (
        "push",
        {"REGISTRY": "ghcr.io/me"},
        [
            "push",
            "--image",
            f"processing={PROCESSING}",
            "--image",
            f"training={TRAINING}",
            "--tag",
            TEST_TAG,
            "--registry",
            "ghcr.io/me",
        ],
    ),
    ("pin-base", {"BASE_IMAGE": "r-base:4.5.1"}, ["pin-base", "--image", "r-base:4.5.1"]),
    ("local-process", {}, ["local-process", "--image", PROCESSING]),
    ("local-train", {}, ["local-train", "--image", TRAINING]),
    (
        "local-serve",
        {"PORT": "9000", "MULTI_MODEL": "1"},
        ["local-serve", "--image", TRAINING, "--port", "9000", "--multi-model"],
    ),
    ("predict", {"TARGET_MODEL": "a.tar.gz"}, ["predict", "--target-model", "a.tar.gz"]),
    ("local-stop", {}, ["local-stop"]),
    ("local-transform", {"INPUT": "in"}, ["local-transform", "--image", TRAINING, "--input", "in"]),
    (
        "remote-process",
        {"NO_WAIT": "1"},
        ["remote-process", "--image", PROCESSING, "--tag", TEST_TAG, "--no-wait"],
    ),
    ("remote-train", {}, ["remote-train", "--image", TRAINING, "--tag", TEST_TAG]),
    (
        "deploy",
        {
            "IMAGE": "x/y@sha256:1",
            "SERVERLESS": "1",
            "NO_WAIT": "1",
            "MODEL_PACKAGE": "arn",
            "TRAINING_JOB": "job",
        },
        [
            "deploy",
            "--image-uri",
            "x/y@sha256:1",
            "--serverless",
            "--no-wait",
            "--model-package",
            "arn",
            "--training-job",
            "job",
        ],
    ),
    (
        "deploy",
        {"ASYNC": "1", "MULTI_MODEL": "1"},
        ["deploy", "--async", "--multi-model", "--image", TRAINING, "--tag", TEST_TAG],
    ),
    ("invoke", {"TARGET_MODEL": "a.tar.gz"}, ["invoke", "--target-model", "a.tar.gz"]),
    (
        "invoke-async",
        {"FILE": "f.csv", "CONTENT_TYPE": "text/csv", "NO_WAIT": "1"},
        ["invoke-async", "--file", "f.csv", "--content-type", "text/csv", "--no-wait"],
    ),
    (
        "autoscale",
        {"MIN": "1", "MAX": "2", "TARGET": "50"},
        ["autoscale", "--min", "1", "--max", "2", "--target", "50"],
    ),
    (
        "remote-transform",
        {"IMAGE": "u", "NO_WAIT": "1", "MODEL_PACKAGE": "p", "TRAINING_JOB": "j"},
        ["remote-transform", "--image-uri", "u", "--no-wait", "--model-package", "p", "--training-job", "j"],
    ),
    ("undeploy", {}, ["undeploy"]),
    (
        "bench",
        {"BASE_IMAGE": "b:1", "TARGET_RPS": "50", "WORKERS": "2"},
        ["bench", "--image", TRAINING, "--base-image", "b:1", "--target-rps", "50", "--workers", "2"],
    ),
    (
        "local-pipeline",
        {"MIN_ACCURACY": "0.8"},
        [
            "local-pipeline",
            "--processing-image",
            PROCESSING,
            "--training-image",
            TRAINING,
            "--min-accuracy",
            "0.8",
        ],
    ),
    (
        "pipeline",
        {"NO_WAIT": "1", "APPROVAL": "Approved"},
        [
            "pipeline",
            "--processing-image",
            PROCESSING,
            "--training-image",
            TRAINING,
            "--min-accuracy",
            "0.9",
            "--tag",
            TEST_TAG,
            "--no-wait",
            "--approval-status",
            "Approved",
        ],
    ),
    ("models", {}, ["models"]),
    ("approve", {"VERSION": "3"}, ["approve", "--version", "3"]),
]


def cli_line(output):
    """The CLI's arguments in a `make -n` listing (the one line that runs `python -m rsagemaker_cli`)."""
    lines = output.replace("\\\n", " ").splitlines()  # a recipe line continued with a backslash is one
    (line,) = [line for line in lines if " -m rsagemaker_cli " in f"{line} "]
    words = shlex.split(line)
    return words[words.index("rsagemaker_cli") + 1 :]


@pytest.mark.parametrize(
    ("target", "variables", "expected"), CALLS, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CALLS)]
)
def test_each_target_calls_the_cli_with_arguments_it_takes(default_project, target, variables, expected):
    arguments = cli_line(make(default_project, target, "-n", **variables).stdout)
    assert arguments == expected
    parsed = build_parser().parse_args(arguments)
    assert parsed.command == target


@pytest.mark.parametrize("images", ["both", "training", "processing"])
def test_the_cli_reads_each_bake_s_name_images_and_settings(tmp_path, images, monkeypatch):
    project = bake(tmp_path, images=images)
    found = find_project(project / "code")
    assert (found.root, found.name) == (project.resolve(), SLUG)
    assert found.images == (("processing", "training") if images == "both" else (images,))
    # config/aws.json holds only known settings (the defaults live in the CLI's table).
    written = flatten(json.loads((project / "config" / "aws.json").read_text()))
    assert set(written) <= set(BY_KEY)
    assert (
        written["region"] == "us-east-1" and written["s3_prefix"] == SLUG and written["endpoint.name"] == SLUG
    )
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SAGEMAKER_", "ECR_"))
    }
    shown = subprocess.run(
        [sys.executable, "-m", "rsagemaker_cli", "settings"],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    (line,) = [line for line in shown.stdout.splitlines() if line.startswith("s3_prefix ")]
    assert line.split()[1:3] == [SLUG, "[config/aws.json;"]


def test_the_pipeline_targets_install_the_sdk_into_venv_only(default_project):
    with_venv = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(default_project),
            "-n",
            "local-pipeline",
            f"TAG={TEST_TAG}",
        ],
        capture_output=True,
        text=True,
        env={key: value for key, value in os.environ.items() if key not in ("PYTHON", "MAKEFLAGS")},
        check=False,
    )
    assert "pip install --quiet -e '.[pipeline]'" in with_venv.stdout, with_venv.stdout + with_venv.stderr
    # A PYTHON of one's own is left as it is (the suite's, the SDK's environment).
    assert "[pipeline]" not in make(default_project, "local-pipeline", "-n").stdout


def git_project(default_project, tmp_path):
    """A copy of the default bake, committed in a repository of its own; returns (project, git, sha)."""
    project = tmp_path / "project"
    shutil.copytree(default_project, project, ignore=shutil.ignore_patterns("build", ".venv"))
    command = ["git", "-C", str(project), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*command, "init", "--quiet"], check=True)
    subprocess.run([*command, "add", "--all"], check=True)
    subprocess.run([*command, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "Bake"], check=True)
    sha = subprocess.run(
        [*command, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True, text=True
    )
    return project, command, sha.stdout.strip()


def make_without_tag(project, *arguments):
    """make in project with the Makefile's own TAG (the suite's make() sets TAG)."""
    env = {key: value for key, value in os.environ.items() if key != "TAG"}
    command = ["make", "--no-print-directory", "-C", str(project), f"PYTHON={sys.executable}", *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def tag_of(project):
    return {line.rsplit(":", 1)[1] for line in make_without_tag(project, "images").stdout.split()}


def one_error(result, *expected):
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_uncommitted_changes_tag_dirty_and_push_refuses_them(default_project, tmp_path):
    project, command, sha = git_project(default_project, tmp_path)
    assert tag_of(project) == {sha}  # a clean tree: the commit's sha
    for change in ("edit", "new file"):
        if change == "edit":
            with open(project / "code" / "train.R", "a") as script:
                script.write("# changed\n")
        else:
            subprocess.run([*command, "checkout", "--quiet", "--", "."], check=True)
            (project / "code" / "helpers.R").write_text("helper <- function() 1\n")
        assert tag_of(project) == {f"{sha}-dirty"}, change
        one_error(make_without_tag(project, "push"), f"TAG {sha}-dirty marks uncommitted changes", "commit")
        # Issue 25 item 12: a TAG of one's own from the same tree is refused too, before AWS or the engine.
        one_error(
            make_without_tag(project, "push", "TAG=experiment-1"),
            "differs from its commit",
            "TAG experiment-1",
        )


# Files git ignores (the bake's .gitignore) in code/: whether the image and sourcedir.tar.gz take them.
IGNORED = {
    "code/build/cache.R": True,  # `build/` ignores it, .dockerignore and the CLI pack it
    "code/helpers.egg-info/PKG-INFO": True,
    "code/helpers.pyc": False,
    "code/R/__pycache__/x.pyc": False,
    "code/.Rhistory": False,
    "code/.RData": False,
}


@pytest.mark.parametrize(("relative", "packed"), IGNORED.items())
def test_git_ignored_files_that_are_packed_make_the_tag_dirty(default_project, tmp_path, relative, packed):
    """Issue 25 item 8: the Makefile's TAG and the CLI's push check agree on which ignored files count."""
    project, _, sha = git_project(default_project, tmp_path)
    path = project / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n")
    assert (
        subprocess.run(["git", "-C", str(project), "check-ignore", "-q", relative], check=False).returncode
        == 0
    )
    assert tag_of(project) == {f"{sha}-dirty" if packed else sha}
    assert (git.changes(project) == [relative]) is packed


def cli_targets(makefile):
    """The targets whose recipe calls $(CLI), in the order the Makefile has them."""
    targets, current = [], None
    for line in makefile.read_text().splitlines():
        rule = re.match(r"^([a-z][a-z0-9-]*):(?!=)", line)
        if rule:
            current = rule.group(1)
        elif line.startswith("\t") and "$(CLI) " in line and current and current not in targets:
            targets.append(current)
    return targets


def test_every_target_that_calls_the_cli_passes_arguments_it_parses(default_project):
    """Whatever targets the Makefile grows, each one's CLI call parses (VERSION: approve's guard)."""
    targets = cli_targets(default_project / "Makefile")
    assert {target for target, _, _ in CALLS} <= set(targets)
    for target in targets:
        arguments = cli_line(make(default_project, target, "-n", VERSION="1").stdout)
        assert build_parser().parse_args(arguments).command == arguments[0], target


def test_a_renv_bake_s_remote_build_passes_its_mirror_to_codebuild(tmp_path):
    """make build passes R_REPOS to a renv bake's Dockerfiles; remote-build hands it to CodeBuild's
    make build (rsagemaker_cli.aws.remote_build.build_variables)."""
    project = bake(tmp_path, r_packages="renv")
    arguments = cli_line(make(project, "remote-build", "-n", R_REPOS="http://127.0.0.1:1/cran").stdout)
    parsed = build_parser().parse_args(arguments)
    assert (parsed.command, parsed.r_repos) == ("remote-build", "http://127.0.0.1:1/cran")
    assert "--r-repos" not in cli_line(make(project, "remote-build", "-n").stdout)
