"""Fixtures of the CLI's tests: a project made as the template bakes one, AWS on loopback, the CLI run
in this process.

A moto server (moto[server], started once) stands in for STS, ECR, S3, SageMaker and Application
Auto Scaling; boto3 reaches it through AWS_ENDPOINT_URL, as a user's endpoint setting would. moto
completes jobs at once and creates endpoints InService. Where its Describe* answer leaves a field
out, the tests read the request as botocore sent it (Run.request()). Nothing here needs a
container engine or a built image; the template's suite (tests/ at the repository's top) runs the
commands against real images.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from cli_support import BUCKET, FIXTURE, PREFIXES, REGION, ROLE, SLUG, TAG, Run, fake_manifest

from rsagemaker_cli.cli import main
from rsagemaker_cli.core.net import free_port


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the fixture project, and the working directory in it; returns its root."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    for variable in list(os.environ):
        if variable.startswith(PREFIXES):
            monkeypatch.delenv(variable)
    # Neither the developer's ~/.aws files nor an instance's metadata service.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return root


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory):
    """moto's server on a free loopback port, for the whole session (each test resets it)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = Path(sys.executable).parent / "moto_server"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/moto-api/data.json", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"moto_server did not come up on {url}:\n{log.read_text()}")
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def aws(project, moto_url, monkeypatch):
    """A fresh moto and the commands' environment pointing at it; returns the tests' own session."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("SAGEMAKER_BUCKET", BUCKET)
    # The tests' view of moto keeps its credentials when a test removes them from the environment.
    return boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def in_ecr(aws):
    """The state after `make push`: the bucket exists and both images are in (moto's) ECR at TAG."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    ecr = aws.client("ecr")
    for image in ("processing", "training"):
        ecr.create_repository(repositoryName=f"{SLUG}-{image}")
        ecr.put_image(repositoryName=f"{SLUG}-{image}", imageManifest=fake_manifest(), imageTag=TAG)
    return aws


def plain(value):
    """A request's parameters as JSON would hold them (bytes as {"bytes": text})."""
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).decode(errors="replace")}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*arguments): run `rsagemaker ARGUMENTS` here, in the working directory; returns a Run."""

    def run(*arguments, env=None):
        calls = []

        def record(params, model, **_):
            calls.append({"operation": model.name, "params": plain(params)})

        class RecordingSession(boto3.Session):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.events.register("provide-client-params.*.*", record)

        with monkeypatch.context() as patch:
            patch.setattr(boto3, "Session", RecordingSession)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            capsys.readouterr()
            code = main([str(argument) for argument in arguments])
            captured = capsys.readouterr()
        return Run(code, captured.out, captured.err, calls)

    return run
