"""Shipping: `make push` to ECR or another registry, the SageMaker jobs, and no secrets in images.

Everything runs on loopback: a moto server stands in for STS, ECR, S3 and SageMaker (boto3 reaches
it through AWS_ENDPOINT_URL), and Debian's docker-registry on 127.0.0.1:5000 receives the pushes
(the podman service trusts that address as an insecure registry, see scripts/engine.sh). moto's ECR
has no registry behind it, so the push tests set the tools' test seam
SAGEMAKER_TOOLS_ECR_REGISTRY_OVERRIDE: repositories and the login token still come from the ECR API,
the layers go to the local registry.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from conftest import TEST_TAG, make

pytestmark = pytest.mark.slow

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
DOCKER_REGISTRY = Path("/usr/bin/docker-registry")
REGISTRY = "127.0.0.1:5000"  # the address the engine trusts as insecure (scripts/engine.sh)
REGISTRY_OVERRIDE = "SAGEMAKER_TOOLS_ECR_REGISTRY_OVERRIDE"
ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ship-test"
BUCKET = "ship-test-bucket"
SLUG = "r-on-sagemaker"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
)
# Settings the tools read from the environment: cleared so the developer's own cannot leak in.
SETTING_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "ECR_TAG_MUTABILITY",
    "ECR_SCAN_ON_PUSH",
)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(command, ready_url, log_path, env=None):
    """Start a loopback server, wait until ready_url answers 200, stop it at the end."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(ready_url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[0]} did not come up on {ready_url}:\n{Path(log_path).read_text()}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_moto(tmp_path_factory, name, **env):
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "moto.log"
    command = [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)]
    return f"http://127.0.0.1:{port}", serving(
        command, f"http://127.0.0.1:{port}/moto-api/data.json", log, env
    )


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    url, server = start_moto(tmp_path_factory, "moto")
    with server:
        yield url


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory):
    """A moto server that checks credentials like AWS does: unknown keys are refused."""
    url, server = start_moto(tmp_path_factory, "moto-auth", INITIAL_NO_AUTH_ACTION_COUNT="0")
    with server:
        yield url


@pytest.fixture(scope="module")
def registry(tmp_path_factory, engine):
    """Debian's docker-registry on 127.0.0.1:5000, storage in a temporary folder, no auth.

    At the end the engine's tags for it (made by the pushes) are removed; the images stay."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5000)) == 0:
            pytest.fail("127.0.0.1:5000 is taken: the push tests need it for their registry")
    folder = tmp_path_factory.mktemp("registry")
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    with serving(
        [str(DOCKER_REGISTRY), "serve", str(config)], f"http://{REGISTRY}/v2/", folder / "registry.log"
    ):
        yield REGISTRY
    for image in engine.images.list():
        for tag in image.tags:
            if tag.startswith(f"{REGISTRY}/"):
                engine.images.remove(tag)


@pytest.fixture
def aws(moto, monkeypatch):
    """A fresh moto, and the environment pointing the tools (and boto3 here) at it; returns a session."""
    import boto3

    requests.post(f"{moto}/moto-api/reset", timeout=10).raise_for_status()
    for variable in SETTING_VARIABLES + (REGISTRY_OVERRIDE,):
        monkeypatch.delenv(variable, raising=False)
    for variable in list(os.environ):
        if variable.startswith(("SAGEMAKER_", "ECR_")):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    # Neither the developer's ~/.aws files nor their profiles.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("SAGEMAKER_BUCKET", BUCKET)
    # The tests' own view of moto keeps its credentials when a test removes them from the environment.
    return boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def in_ecr(aws):
    """The state after `make push`: the bucket exists and both images are in (moto's) ECR."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    ecr = aws.client("ecr")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
    for image in ("processing", "training"):
        ecr.create_repository(repositoryName=f"{SLUG}-{image}")
        ecr.put_image(repositoryName=f"{SLUG}-{image}", imageManifest=json.dumps(manifest), imageTag=TEST_TAG)
    return aws


def manifest_of(repository, tag):
    """The manifest the registry serves for repository:tag, read back through its HTTP API."""
    response = requests.get(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}, timeout=30
    )
    assert response.status_code == 200, f"{repository}:{tag} is not in the registry: {response.text}"
    return response.json()


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_one_clear_error(result, *expected):
    assert result.returncode != 0, result.stdout
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def pushed_uris(result):
    """The image URIs listed under "Pushed N image tag(s):" (each line: URI, then its digest)."""
    listing = result.stdout.split("\nPushed ", 1)[1].splitlines()[1:]
    return [line.split()[0] for line in listing if line.startswith("  ")]


def repositories(session):
    return {
        repo["repositoryName"]: repo for repo in session.client("ecr").describe_repositories()["repositories"]
    }


# --- build flags --------------------------------------------------------------------------------------


def test_builds_target_amd64_without_provenance(built_project, engine):
    project, images = built_project
    for ref in images.values():
        assert engine.images.get(ref).attrs["Architecture"] == "amd64"
    # With BuildKit (docker buildx) the build must not attach a provenance attestation.
    dry_run = make(project, "build", "-n", BUILDX="yes").stdout
    assert dry_run.count("--provenance=false") == len(images)
    assert dry_run.count("--platform linux/amd64") == len(images)
    arm = make(project, "build", "-n", PLATFORM="linux/arm64").stdout
    assert arm.count("--platform linux/arm64") == len(images)


# --- push -----------------------------------------------------------------------------------------------


def test_push_to_ecr_sends_every_image_and_sets_up_the_repositories(
    built_project, engine, aws, registry, monkeypatch
):
    project, images = built_project
    monkeypatch.setenv(REGISTRY_OVERRIDE, registry)
    monkeypatch.setenv("ECR_KEEP_LAST", "7")
    result = make(project, "push")

    digests = {}
    for ref in images.values():
        repository = ref.rsplit(":", 1)[0]
        for tag in (TEST_TAG, "latest"):
            manifest = manifest_of(repository, tag)
            # The pushed config is the local image's: the very image that was built arrived.
            assert manifest["config"]["digest"] == engine.images.get(ref).id
            digests[repository, tag] = manifest
            assert f"{registry}/{repository}:{tag}" in result.stdout
    assert "Next: make remote-process / make remote-train" in result.stdout
    assert "testing" not in result.stdout + result.stderr  # the ECR password is never printed

    created = repositories(aws)
    assert sorted(created) == sorted(ref.rsplit(":", 1)[0] for ref in images.values())
    ecr = aws.client("ecr")
    for name, repo in created.items():
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True
        assert repo["imageTagMutability"] == "MUTABLE"
        policy = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
        (rule,) = policy["rules"]
        assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 7}
        assert rule["action"] == {"type": "expire"}

    # A second push changes nothing and succeeds.
    again = make(project, "push")
    assert again.stdout.count("exists") == len(images), again.stdout
    assert repositories(aws).keys() == created.keys()
    for (repository, tag), manifest in digests.items():
        assert manifest_of(repository, tag) == manifest


def test_push_with_immutable_tags_pushes_only_the_commit_tag_once(built_project, aws, registry, monkeypatch):
    project, images = built_project
    ecr = aws.client("ecr")
    # A repository made earlier with other settings is brought to the configured ones.
    ecr.create_repository(repositoryName=f"{SLUG}-training", imageScanningConfiguration={"scanOnPush": True})
    monkeypatch.setenv(REGISTRY_OVERRIDE, registry)
    monkeypatch.setenv("ECR_TAG_MUTABILITY", "IMMUTABLE")
    monkeypatch.setenv("ECR_SCAN_ON_PUSH", "false")
    result = make(project, "push")
    assert "updated tags: IMMUTABLE, scan on push: False" in result.stdout
    assert sorted(pushed_uris(result)) == sorted(f"{registry}/{ref}" for ref in images.values())
    for repo in repositories(aws).values():
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"]["scanOnPush"] is False

    # Once the tag is in ECR, an immutable repository cannot take it again: skipped, not failed.
    for ref in images.values():
        repository = ref.rsplit(":", 1)[0]
        ecr.put_image(
            repositoryName=repository,
            imageManifest=json.dumps(manifest_of(repository, TEST_TAG)),
            imageTag=TEST_TAG,
        )
    again = make(project, "push")
    assert again.stdout.count("is already in ECR and its tags are immutable: skipped") == len(images)
    assert "Pushed 0 image tag(s)" in again.stdout


def test_push_to_another_registry_involves_no_aws(built_project, engine, aws, registry, monkeypatch):
    project, images = built_project
    # Any AWS call would fail: nothing listens there, and there are no credentials.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = make(project, "push", REGISTRY=f"{registry}/team")
    for ref in images.values():
        repository = ref.rsplit(":", 1)[0]
        for tag in (TEST_TAG, "latest"):
            assert manifest_of(f"team/{repository}", tag)["config"]["digest"] == engine.images.get(ref).id
            assert f"{registry}/team/{repository}:{tag}" in result.stdout


def test_push_with_bad_credentials_says_so(built_project, aws, moto_with_auth, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_with_auth)
    result = make(built_project[0], "push", check=False)
    assert_one_clear_error(result, "AWS rejected the credentials", "InvalidClientTokenId", "AWS_PROFILE")


def test_push_without_credentials_says_how_to_set_them(built_project, aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = make(built_project[0], "push", check=False)
    assert_one_clear_error(result, "no AWS credentials found", "AWS_ACCESS_KEY_ID")
    assert repositories(aws) == {}


def test_push_to_an_unknown_region_says_so(built_project, aws, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "xx-nowhere-9")
    result = make(built_project[0], "push", check=False)
    assert_one_clear_error(result, "unknown AWS region 'xx-nowhere-9'", "$AWS_REGION")
    assert repositories(aws) == {}


def test_push_of_an_image_not_built_says_so_before_creating_anything(built_project, aws):
    result = make(built_project[0], "push", check=False, TAG="never-built")
    assert_one_clear_error(result, f"{SLUG}-processing:never-built is not built here", "make build")
    assert repositories(aws) == {}


# --- remote jobs ----------------------------------------------------------------------------------------


def s3_objects(session, prefix=""):
    listing = session.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def s3_read(session, uri):
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def the_only(items):
    assert len(items) == 1, items
    return items[0]


def test_remote_train_creates_the_job_sagemaker_runs(built_project, in_ecr, tmp_path):
    project, _ = built_project
    result = make(project, "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    name = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    job = sagemaker.describe_training_job(TrainingJobName=name)

    assert (
        job["AlgorithmSpecification"]["TrainingImage"]
        == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-training:{TEST_TAG}"
    )
    assert job["RoleArn"] == ROLE
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"

    # Hyperparameters: each value JSON-encoded, as the SageMaker SDK sends them in script mode.
    hyperparameters = job["HyperParameters"]
    configured = json.loads((project / "config" / "hyperparameters.json").read_text())
    for key, value in configured.items():
        assert hyperparameters[key] == json.dumps(value)
    assert hyperparameters["sagemaker_program"] == '"train.R"'
    assert hyperparameters["sagemaker_job_name"] == json.dumps(name)
    assert hyperparameters["sagemaker_region"] == json.dumps(REGION)
    source_uri = json.loads(hyperparameters["sagemaker_submit_directory"])
    assert source_uri == f"s3://{BUCKET}/{SLUG}/jobs/{name}/source/sourcedir.tar.gz"

    # sourcedir.tar.gz: the files of code/ at the archive's root, as they are here.
    tarball = tmp_path / "sourcedir.tar.gz"
    tarball.write_bytes(s3_read(in_ecr, source_uri))
    code_files = sorted(path.name for path in (project / "code").iterdir() if path.is_file())
    with tarfile.open(tarball) as archive:
        assert sorted(archive.getnames()) == code_files
        assert archive.extractfile("train.R").read() == (project / "code" / "train.R").read_bytes()

    # Channels from S3: data/train/ uploaded under the job's prefix.
    (channel,) = job["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    train_uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_uri == f"s3://{BUCKET}/{SLUG}/jobs/{name}/input/train/"
    assert s3_read(in_ecr, train_uri + "iris.csv") == (project / "data" / "train" / "iris.csv").read_bytes()
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/{SLUG}/output"

    assert f"Training job {name} completed." in result.stdout
    assert "/aws/sagemaker/TrainingJobs" in result.stdout
    assert "Next: make deploy" in result.stdout
    assert json.loads((project / "build" / "last-training-job.json").read_text())["job_name"] == name


def test_remote_train_takes_configured_channels_as_they_are(built_project, in_ecr, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_TRAINING_CHANNELS", json.dumps({"train": "s3://elsewhere/iris/"}))
    make(built_project[0], "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    name = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    (channel,) = sagemaker.describe_training_job(TrainingJobName=name)["InputDataConfig"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://elsewhere/iris/"
    assert not [key for key in s3_objects(in_ecr) if "/input/" in key]


def test_remote_process_runs_the_script_as_script_processor_does(built_project, in_ecr):
    project, _ = built_project
    result = make(project, "remote-process")
    sagemaker = in_ecr.client("sagemaker")
    name = the_only(sagemaker.list_processing_jobs()["ProcessingJobSummaries"])["ProcessingJobName"]
    job = sagemaker.describe_processing_job(ProcessingJobName=name)

    assert (
        job["AppSpecification"]["ImageUri"]
        == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-processing:{TEST_TAG}"
    )
    assert job["AppSpecification"]["ContainerEntrypoint"] == [
        "Rscript",
        "/opt/ml/processing/input/code/preprocess.R",
    ]
    assert job["RoleArn"] == ROLE
    # (moto does not keep ProcessingResources; the instance type is checked in the output instead.)
    assert "ml.t3.medium" in result.stdout
    inputs = {item["InputName"]: item["S3Input"] for item in job["ProcessingInputs"]}
    assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
    assert s3_read(in_ecr, inputs["code"]["S3Uri"]) == (project / "code" / "preprocess.R").read_bytes()
    assert inputs["data"]["LocalPath"] == "/opt/ml/processing/input/data"
    assert (
        s3_read(in_ecr, inputs["data"]["S3Uri"] + "train/iris.csv")
        == (project / "data/train/iris.csv").read_bytes()
    )
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{BUCKET}/{SLUG}/output/{name}/"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    assert f"Processing job {name} completed." in result.stdout
    assert "/aws/sagemaker/ProcessingJobs" in result.stdout


def test_deploy_invoke_undeploy(built_project, in_ecr):
    project, _ = built_project
    make(project, "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    training_job = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    model_data = sagemaker.describe_training_job(TrainingJobName=training_job)["ModelArtifacts"][
        "S3ModelArtifacts"
    ]
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-training:{TEST_TAG}"

    for variables, expected_variant in (
        ({}, {"InstanceType": "ml.t2.medium", "InitialInstanceCount": 1}),
        ({"SERVERLESS": "1"}, {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}),
    ):
        result = make(project, "deploy", **variables)
        endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
        assert endpoint["EndpointStatus"] == "InService"
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        (variant,) = config["ProductionVariants"]
        assert {key: variant.get(key) for key in expected_variant} == expected_variant
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        assert model["PrimaryContainer"]["Image"] == image
        assert model["PrimaryContainer"]["ModelDataUrl"] == model_data
        assert model["ExecutionRoleArn"] == ROLE
        assert f"/aws/sagemaker/Endpoints/{SLUG}" in result.stdout
        assert "Next: make invoke" in result.stdout

        invoked = make(project, "invoke")
        assert "Sent 5 row(s) of data/train/iris.csv (text/csv)" in invoked.stdout
        assert "5.1,3.5,1.4,0.2\n" in invoked.stdout  # header and target column left out
        assert "Response" in invoked.stdout

        gone = make(project, "undeploy")
        assert f"Deleted endpoint {SLUG}" in gone.stdout
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []


FAILING_JOB = """
import sagemaker_tools.remote as remote

remote.POLL_SECONDS = 0
states = iter([
    {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"},
    {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
    {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
    {"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "TrainingJobName": "job-1",
     "FailureReason": "AlgorithmError: no .csv files in the train channel"},
])
done = remote.wait_for(lambda: next(states), "TrainingJobStatus", remote.JOB_DONE, "training job job-1", "")
raise SystemExit(remote.report_job("training", done, "TrainingJobName", "TrainingJobStatus"))
"""


def test_waiting_shows_each_status_then_the_failure_reason_and_the_logs(default_project):
    result = subprocess.run(
        [sys.executable, "-c", FAILING_JOB], cwd=default_project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    progress = [
        line.split("[")[0].strip() for line in result.stdout.splitlines() if line.startswith("  training")
    ]
    assert progress == [
        "training job job-1: InProgress (Starting)",
        "training job job-1: InProgress (Training)",
        "training job job-1: Failed",
    ]
    assert "Training job job-1 failed: AlgorithmError: no .csv files in the train channel" in result.stderr
    assert "aws logs tail /aws/sagemaker/TrainingJobs --log-stream-name-prefix job-1" in result.stdout


@pytest.mark.parametrize(
    "unset, expected",
    [
        (
            ["SAGEMAKER_ROLE_ARN"],
            ("SageMaker execution role is not set", "SAGEMAKER_ROLE_ARN", "config/aws.json"),
        ),
        (["SAGEMAKER_BUCKET"], ("S3 bucket is not set", "SAGEMAKER_BUCKET", "config/aws.json")),
        (["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], ("no AWS credentials found", "AWS_PROFILE")),
        (["AWS_SECRET_ACCESS_KEY"], ("incomplete AWS credentials", "AWS_SECRET_ACCESS_KEY")),
    ],
)
def test_missing_settings_stop_remote_jobs_before_anything_is_uploaded(
    built_project, in_ecr, monkeypatch, unset, expected
):
    for variable in unset:
        monkeypatch.delenv(variable)
    for target in ("remote-train", "remote-process"):
        result = make(built_project[0], target, check=False)
        assert_one_clear_error(result, *expected)
    assert s3_objects(in_ecr) == []
    assert in_ecr.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert in_ecr.client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"] == []


def test_missing_region_names_both_ways_to_set_it(built_project, in_ecr, monkeypatch, tmp_path):
    # The Makefile exports a default AWS_REGION, so this runs the tools directly on a copy whose
    # config/aws.json has no region.
    project = tmp_path / "project"
    for part in ("sagemaker_tools", "code", "data", "config"):
        shutil.copytree(built_project[0] / part, project / part)
    config = json.loads((project / "config" / "aws.json").read_text())
    (project / "config" / "aws.json").write_text(json.dumps({**config, "region": ""}))
    monkeypatch.delenv("AWS_REGION")
    command = [
        sys.executable,
        "-m",
        "sagemaker_tools",
        "remote-train",
        "--image",
        f"{SLUG}-training:{TEST_TAG}",
    ]
    result = subprocess.run(
        [*command, "--tag", TEST_TAG], cwd=project, capture_output=True, text=True, check=False
    )
    assert_one_clear_error(result, "AWS region is not set", "config/aws.json", "AWS_REGION")
    assert s3_objects(in_ecr) == []


def test_remote_train_before_push_says_to_push(built_project, aws):
    aws.client("s3").create_bucket(Bucket=BUCKET)
    result = make(built_project[0], "remote-train", check=False)
    assert_one_clear_error(result, f"{SLUG}-training:{TEST_TAG} is not in ECR", "make push")
    assert s3_objects(aws) == []


# --- no secrets in images -------------------------------------------------------------------------------

SENTINELS = {
    "AWS_ACCESS_KEY_ID": "AKIASENTINEL0000KEY0",
    "AWS_SECRET_ACCESS_KEY": "sentinel-secret-5f3c9a1e",
    "AWS_SESSION_TOKEN": "sentinel-token-0b7d2e44",
}


def contains_any(stream, needles, chunk_size=1 << 20):
    """Whether a binary stream contains any needle, also across chunk boundaries."""
    overlap = max(len(needle) for needle in needles) - 1
    tail = b""
    while chunk := stream.read(chunk_size):
        window = tail + chunk
        if any(needle in window for needle in needles):
            return True
        tail = window[-overlap:]
    return False


def test_no_aws_credentials_end_up_in_images(default_project, base_image, engine, monkeypatch, tmp_path):
    project = default_project
    for variable, value in SENTINELS.items():
        monkeypatch.setenv(variable, value)
    # Credentials files lying in the project must stay out of the build context too.
    planted = [project / ".aws" / "credentials", project / ".env"]
    for path in planted:
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in SENTINELS.items()))
    try:
        make(project, "build", BASE_IMAGE=base_image, TAG="nosecrets")
    finally:
        shutil.rmtree(project / ".aws")
        (project / ".env").unlink()
    needles = [value.encode() for value in SENTINELS.values()]
    refs = [f"{SLUG}-{image}:nosecrets" for image in ("processing", "training")]
    try:
        for ref in refs:
            image = engine.images.get(ref)
            # History and configuration: no AWS_ variable at all.
            for step in image.history():
                assert "AWS_" not in (step.get("CreatedBy") or ""), step
            assert "AWS_" not in json.dumps(image.attrs["Config"]), image.attrs["Config"]
            # Every file of the saved image (config, manifest, layers): none of the values.
            archive_path = tmp_path / "image.tar"
            with open(archive_path, "wb") as archive_file:
                archive_file.writelines(image.save(named=True))
            with tarfile.open(archive_path) as archive:
                members = [member for member in archive if member.isfile()]
                assert any(member.name.endswith(".json") for member in members)
                for member in members:
                    leaked = contains_any(archive.extractfile(member), needles)
                    assert not leaked, f"{ref}: {member.name} holds an AWS credential"
                    if member.name.endswith(".json"):
                        assert b"AWS_" not in archive.extractfile(member).read(), member.name
            archive_path.unlink()
    finally:
        for ref in refs:
            engine.images.remove(ref)
