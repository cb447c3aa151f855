"""remote-build and remote-build-role against moto: the archive uploaded (the build context as
`docker build` sees it, plus what the buildspec runs), the CodeBuild project (created, then updated),
StartBuild with the buildspec, a failed build named by its phase, and bad input refused before
anything is made. moto runs no buildspec and has no UpdateProject: botocore event hooks answer
UpdateProject and the failed BatchGetBuilds. The buildspec itself runs in the template's suite
(tests/test_remote_build_buildspec.py), against a real engine and registry."""

import hashlib
import io
import json
import shutil
import time
import types
import zipfile
from pathlib import Path

import boto3
import pytest
from cli_support import ACCOUNT, BUCKET, REGION, REGISTRY, SLUG, TAG, edit_json, fake_manifest

from rsagemaker_cli.aws import remote_build
from rsagemaker_cli.core.context import DockerIgnore

BAKE = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}"
CODEBUILD_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cli-test-codebuild"
WHEEL = "rsagemaker_cli-0.3.0-py3-none-any.whl"
BUILD = ("remote-build", "--tag", TAG, "--base-image", "docker.io/rocker/r2u:24.04")
VPC = {"id": "vpc-0123456789abcdef0", "subnets": ["subnet-0123456789abcdef0"]}
SECURITY_GROUPS = ["sg-0123456789abcdef0"]
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


@pytest.fixture
def buildable(project, aws, monkeypatch):
    """The fixture project with the bake's .dockerignore and role policy, vendored plumbing, caches
    in code/, the CodeBuild role set and the bucket made; remote-build polls without sleeping."""
    shutil.copy(BAKE / ".dockerignore", project / ".dockerignore")
    shutil.copy(BAKE / "config" / "codebuild-role-policy.json", project / "config")
    (project / "vendor").mkdir()
    sums = []
    for name, body in (("rsagemaker_0.3.0.tar.gz", b"r package"), (WHEEL, b"cli wheel")):
        (project / "vendor" / name).write_bytes(body)
        sums.append(f"{hashlib.sha256(body).hexdigest()}  {name}\n")
    (project / "plumbing.sha256").write_text("# The plumbing, pinned.\n" + "".join(sums))
    (project / "code" / "__pycache__").mkdir()
    (project / "code" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (project / "code" / ".Rhistory").write_text("q()\n")
    (project / "code" / "old.tar.gz").write_bytes(b"")
    monkeypatch.setenv("CODEBUILD_ROLE_ARN", CODEBUILD_ROLE)
    monkeypatch.setattr(remote_build, "POLL_SECONDS", 0)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return project


def pushed_by_the_build(session):
    """What the build's `make push` leaves in ECR (moto runs no build)."""
    ecr = session.client("ecr")
    for digit, image in enumerate(("processing", "training"), start=1):
        ecr.create_repository(repositoryName=f"{SLUG}-{image}")
        ecr.put_image(repositoryName=f"{SLUG}-{image}", imageManifest=fake_manifest(str(digit)), imageTag=TAG)


def answered(monkeypatch, operation, response):
    """Every boto3 session answers `operation` with response (botocore's before-call hook)."""

    class Hooked(boto3.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.events.register(
                f"before-call.codebuild.{operation}",
                lambda **_: (types.SimpleNamespace(status_code=200, headers={}), response),
            )

    monkeypatch.setattr(boto3, "Session", Hooked)


def uploaded_files(session):
    key = f"{SLUG}/remote-build/source-{TAG}.zip"
    body = session.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {info.filename: info.external_attr >> 16 for info in archive.infolist()}


def test_the_context_goes_up_the_project_is_made_and_the_build_started(buildable, aws, cli, monkeypatch):
    edit_json(buildable / "config" / "aws.json", vpc=VPC, kms={"output_key_id": KMS})
    monkeypatch.setenv("SAGEMAKER_SECURITY_GROUP_IDS", ",".join(SECURITY_GROUPS))
    (buildable / "images" / "training" / "run.sh").write_text("#!/bin/sh\n")
    (buildable / "images" / "training" / "run.sh").chmod(0o755)
    pushed_by_the_build(aws)
    outcome = buildable / "build" / "outcome.json"
    result = cli("--json", outcome, *BUILD)
    assert result.code == 0, result.err
    reported = json.loads(outcome.read_text())["result"]  # what R's project_remote_build() returns
    assert reported["build_id"].startswith(f"{SLUG}-images:") and reported["status"] == "SUCCEEDED"
    assert [(image["image"], image["pushed"]) for image in reported["images"]] == [
        (image, f"{REGISTRY}/{SLUG}-{image}:{TAG}") for image in ("processing", "training")
    ]
    assert all(image["by_digest"].startswith(f"{REGISTRY}/{SLUG}-") for image in reported["images"])
    assert all("@sha256:" in image["by_digest"] for image in reported["images"])

    files = uploaded_files(aws)
    assert {"Makefile", "config/aws.json", "plumbing.sha256", f"vendor/{WHEEL}"} <= set(files)
    assert {"vendor/rsagemaker_0.3.0.tar.gz", "code/train.R", "images/training/Dockerfile"} <= set(files)
    assert not [name for name in files if name.startswith("data/") or "__pycache__" in name]
    assert not {"code/.Rhistory", "code/old.tar.gz", "config/hyperparameters.json", ".dockerignore"} & set(
        files
    )
    assert files["images/training/run.sh"] & 0o111  # modes kept: the Dockerfiles run scripts
    upload = result.request("CreateMultipartUpload") if result.requests("CreateMultipartUpload") else None
    put = upload or result.request("PutObject")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == KMS

    created = result.request("CreateProject")
    assert created["name"] == f"{SLUG}-images"
    assert created["environment"]["privilegedMode"] is True
    assert created["environment"]["type"] == "LINUX_CONTAINER"
    assert created["environment"]["image"] == "aws/codebuild/standard:7.0"
    assert created["environment"]["computeType"] == "BUILD_GENERAL1_MEDIUM"
    assert created["serviceRole"] == CODEBUILD_ROLE
    assert created["vpcConfig"] == {
        "vpcId": VPC["id"],
        "subnets": VPC["subnets"],
        "securityGroupIds": SECURITY_GROUPS,
    }
    assert created["encryptionKey"] == KMS
    assert created["source"]["location"] == f"{BUCKET}/{SLUG}/remote-build/source-{TAG}.zip"

    started = result.request("StartBuild")
    assert started["buildspecOverride"] == created["source"]["buildspec"]
    # The buildspec tests/test_remote_build_buildspec.py runs against a real engine and registry.
    assert started["buildspecOverride"] == remote_build.BUILDSPEC.format(wheel=WHEEL)
    assert f"vendor/{WHEEL}" in started["buildspecOverride"]
    for target in ("build", "push"):
        assert (
            f'make --no-print-directory {target} PYTHON="$CLI_VENV/bin/python"'
            in started["buildspecOverride"]
        )
    variables = {item["name"]: item["value"] for item in started["environmentVariablesOverride"]}
    assert variables["TAG"] == TAG and variables["PLATFORM"] == "linux/amd64"
    assert variables["BASE_IMAGE"] == "docker.io/rocker/r2u:24.04"
    assert variables["ECR_EXPIRE_UNTAGGED_AFTER_DAYS"] == "14"
    assert "R_REPOS" not in variables
    for image in ("processing", "training"):
        assert f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-{image}:{TAG}@sha256:" in result.out

    # Again, on ARM: the project is updated (moto has no UpdateProject: a hook answers it).
    answered(monkeypatch, "UpdateProject", {"project": {"name": f"{SLUG}-images"}})
    again = cli(*BUILD, "--platform", "linux/arm64", "--r-repos", "http://mirror.example/cran")
    assert again.code == 0, again.err
    variables = {
        item["name"]: item["value"] for item in again.request("StartBuild")["environmentVariablesOverride"]
    }
    assert variables["R_REPOS"] == "http://mirror.example/cran"  # a renv bake's make build reads it
    assert "exists: updated" in again.out
    updated = again.request("UpdateProject")
    assert updated["environment"]["type"] == "ARM_CONTAINER"
    assert "aarch64" in updated["environment"]["image"]


def test_a_failed_build_names_its_phase_and_last_log_lines(buildable, aws, cli, monkeypatch):
    logs = aws.client("logs")
    group, stream = f"/aws/codebuild/{SLUG}-images", "build-1"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)  # moto drops events older than 14 days
    lines = [f"step {n}" for n in range(30)] + ["E: Unable to locate package r-cran-nothing"]
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now + n, "message": line} for n, line in enumerate(lines)],
    )
    failed = {
        "id": f"{SLUG}-images:1",
        "buildStatus": "FAILED",
        "buildComplete": True,
        "currentPhase": "COMPLETED",
        "logs": {"groupName": group, "streamName": stream},
        "phases": [
            {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
            {
                "phaseType": "BUILD",
                "phaseStatus": "FAILED",
                "contexts": [
                    {"statusCode": "COMMAND_EXECUTION_ERROR", "message": "make build: exit status 2"}
                ],
            },
        ],
    }
    answered(monkeypatch, "BatchGetBuilds", {"builds": [failed]})
    result = cli(*BUILD)
    result.error("failed in phase BUILD", "exit status 2", f"aws logs tail {group}")
    assert "E: Unable to locate package r-cran-nothing" in result.err
    assert "step 10" not in result.err.split("Last")[1]  # only the last lines, after the stream
    assert "step 0" in result.out


@pytest.mark.parametrize(
    "setup, expected",
    [
        ({"CODEBUILD_ROLE_ARN": ""}, "CodeBuild service role is not set"),
        ({"SAGEMAKER_BUCKET": ""}, "S3 bucket is not set"),
        ({"SAGEMAKER_VPC_ID": VPC["id"]}, "vpc.id (from $SAGEMAKER_VPC_ID) needs vpc.subnets"),
        (
            {"SAGEMAKER_SUBNETS": VPC["subnets"][0], "SAGEMAKER_SECURITY_GROUP_IDS": SECURITY_GROUPS[0]},
            "vpc.subnets (from $SAGEMAKER_SUBNETS) is set but vpc.id is not",
        ),
        ({"CODEBUILD_COMPUTE_TYPE": "huge"}, "codebuild.compute_type = 'huge'"),
        ({"vendor": None}, "vendor/ lacks rsagemaker_cli-0.3.0-py3-none-any.whl: run make vendor first"),
        ({"tag": "abc-dirty"}, "TAG abc-dirty marks uncommitted changes"),
        ({"bucket": "missing-bucket"}, "S3 bucket missing-bucket does not exist"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_made(buildable, aws, cli, monkeypatch, setup, expected):
    arguments = list(BUILD)
    for name, value in setup.items():
        if name == "vendor":
            (buildable / "vendor" / WHEEL).unlink()
        elif name == "tag":
            arguments[2] = value
        elif name == "bucket":
            monkeypatch.setenv("SAGEMAKER_BUCKET", value)
        else:
            monkeypatch.setenv(name, value)
    result = cli(*arguments)
    result.error(expected)
    made = {"PutObject", "CreateMultipartUpload", "CreateProject", "UpdateProject", "StartBuild"}
    assert not made & {call["operation"] for call in result.calls}
    assert aws.client("codebuild").list_projects()["projects"] == []


def test_the_role_gets_the_policy_filled_in_least_privilege(buildable, aws, cli, monkeypatch):
    result = cli("remote-build-role")
    assert result.code == 0, result.err
    iam = aws.client("iam")
    role = iam.get_role(RoleName=f"{SLUG}-codebuild")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codebuild.amazonaws.com"
    }
    policy = iam.get_role_policy(RoleName=f"{SLUG}-codebuild", PolicyName="rsagemaker-remote-build")
    document = policy["PolicyDocument"]
    text = json.dumps(document)
    assert "<" not in text and "Vpc" not in text and "kms:" not in text  # no VPC, no key: not granted
    resources = {sid["Sid"]: sid["Resource"] for sid in document["Statement"]}
    assert resources["EcrPush"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{SLUG}-*"
    assert resources["BuildSource"] == f"arn:aws:s3:::{BUCKET}/{SLUG}/remote-build/*"
    # Again with a VPC and a key: the role is updated, not refused.
    edit_json(buildable / "config" / "aws.json", vpc={**VPC, "security_group_ids": SECURITY_GROUPS})
    again = cli("remote-build-role", env={"SAGEMAKER_OUTPUT_KMS_KEY_ID": KMS})
    assert again.code == 0, again.err
    document = iam.get_role_policy(RoleName=f"{SLUG}-codebuild", PolicyName="rsagemaker-remote-build")[
        "PolicyDocument"
    ]
    statements = {statement["Sid"]: statement for statement in document["Statement"]}
    assert statements["KmsKey"]["Resource"] == KMS
    subnet = statements["VpcNetworkInterfacePermission"]["Condition"]["ArnEquals"]["ec2:Subnet"]
    assert subnet == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{VPC['subnets'][0]}"]


@pytest.mark.parametrize(
    "path, excluded",
    [
        ("data/train/iris.csv", True),
        ("code/train.R", False),
        ("code/.Rprofile", False),
        ("code/sub/.cache/x", True),
        ("code/a/b/__pycache__/x.pyc", True),
        ("code/renv/library/R/x", True),
        ("vendor/rsagemaker_0.3.0.tar.gz", False),
        ("vendor/rsagemaker_cli-0.3.0-py3-none-any.whl", True),
    ],
)
def test_the_dockerignore_matcher_follows_docker(path, excluded):
    assert DockerIgnore((BAKE / ".dockerignore").read_text()).excluded(path) is excluded
