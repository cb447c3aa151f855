"""Shipping: `make push` to ECR or another registry, the SageMaker jobs, and no secrets in images.

Everything runs on loopback: a moto server stands in for STS, ECR, S3 and SageMaker (boto3 reaches
it through AWS_ENDPOINT_URL), and Debian's docker-registry on 127.0.0.1:5000 receives the pushes
(the podman service trusts that address as an insecure registry, see scripts/engine.sh). moto's ECR
has no registry behind it, so the push tests set the tools' test seam
SAGEMAKER_TOOLS_ECR_REGISTRY_OVERRIDE: repositories and the login token still come from the ECR API,
the layers go to the local registry.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests
from conftest import REGISTRY, TEST_TAG, free_port, make, serving

pytestmark = pytest.mark.slow

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
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
    return push_to_moto(aws)


def fake_manifest(digit="0"):
    """An image manifest for moto's ECR (it stores manifests, no layers); the digit tells images apart."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + digit * 64,
            },
            "layers": [],
        }
    )


def push_to_moto(aws):
    """The state after `make push`: the bucket exists and both images are in (moto's) ECR at TEST_TAG."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    ecr = aws.client("ecr")
    for image in ("processing", "training"):
        ecr.create_repository(repositoryName=f"{SLUG}-{image}")
        ecr.put_image(repositoryName=f"{SLUG}-{image}", imageManifest=fake_manifest(), imageTag=TEST_TAG)
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
    monkeypatch.setenv("ECR_EXPIRE_UNTAGGED_AFTER_DAYS", "7")
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
        # Only untagged images ever expire: every pushed image keeps its TAG, so the image of a
        # deployed model (a TAG in ECR) stays however many commits CI pushes after it.
        (rule,) = policy["rules"]
        assert rule["selection"] == {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 7,
        }
        assert rule["action"] == {"type": "expire"}
    assert "untagged images expire 7 days after their push; tagged ones stay" in result.stdout

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


def test_a_push_that_moves_a_tag_keeps_the_old_image_tagged(built_project, aws, registry, monkeypatch):
    project, images = built_project
    monkeypatch.setenv(REGISTRY_OVERRIDE, registry)
    ecr = aws.client("ecr")
    repository = f"{SLUG}-training"
    ecr.create_repository(repositoryName=repository)
    # ECR as an earlier push left it: another image (a rebuild of this commit) under TAG and latest.
    # Moving both tags would leave it untagged, to be expired while an endpoint may still serve it.
    earlier = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "1" * 64,
        },
        "layers": [],
    }
    for tag in (TEST_TAG, "latest"):
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(earlier), imageTag=tag)
    command = [sys.executable, "-m", "sagemaker_tools", "push", "--image", f"training={images['training']}"]
    command += ["--tag", TEST_TAG]

    def replaced_tags():
        details = ecr.describe_images(repositoryName=repository)["imageDetails"]
        return [tag for image in details for tag in image.get("imageTags", []) if "-replaced-" in tag]

    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (kept,) = replaced_tags()
    assert kept.startswith(f"{TEST_TAG}-replaced-")
    (image,) = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": kept}])["images"]
    assert json.loads(image["imageManifest"])["config"]["digest"] == earlier["config"]["digest"]
    assert f"{repository}:{TEST_TAG} named another image: kept as {repository}:{kept}" in result.stdout
    # (moto's ECR does not see the pushed layers, so it still lists the earlier image under TAG.)
    # That image now keeps a tag of its own: a further push adds none.
    again = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert replaced_tags() == [kept]


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


def make_without_tag(project, *arguments):
    """make in project with the Makefile's own TAG (the suite's make() sets TAG)."""
    env = {key: value for key, value in os.environ.items() if key != "TAG"}
    command = ["make", "--no-print-directory", "-C", str(project), f"PYTHON={sys.executable}", *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_uncommitted_changes_tag_dirty_and_push_refuses_them(default_project, aws, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(default_project, project, ignore=shutil.ignore_patterns("build", ".venv"))
    git = ["git", "-C", str(project), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "--all"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "Bake"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True, text=True
    )
    sha = sha.stdout.strip()

    def listed_tags():
        listing = make_without_tag(project, "images").stdout.split()
        return {line.rsplit(":", 1)[1] for line in listing}

    assert listed_tags() == {sha}  # a clean tree: the commit's sha
    for change in ("edit", "new file"):
        if change == "edit":
            with open(project / "code" / "train.R", "a") as script:
                script.write("# changed\n")
        else:
            subprocess.run([*git, "checkout", "--quiet", "--", "."], check=True)
            (project / "code" / "helpers.R").write_text("helper <- function() 1\n")
        assert listed_tags() == {f"{sha}-dirty"}, change
        result = make_without_tag(project, "push")
        assert_one_clear_error(result, f"TAG {sha}-dirty marks uncommitted changes", "commit", "TAG=<name>")
        assert repositories(aws) == {}  # refused before anything was created
    # An explicit TAG is the user's own name: not refused as dirty (here it is simply not built).
    named = make_without_tag(project, "push", "TAG=experiment-1")
    assert_one_clear_error(named, "experiment-1 is not built here")


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


# Runs a sagemaker_tools command in the project and records every AWS request it makes, as botocore
# sends it (the parameters after validation), to the JSON file $RECORD_AWS_CALLS: the exact request
# where moto does not keep a field in its Describe* answer.
RECORDING_CLI = """
import atexit, json, os, sys
import boto3

calls = []


def record(params, model, **_):
    def plain(value):
        if isinstance(value, (bytes, bytearray)):
            return {"bytes": bytes(value).decode(errors="replace")}
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)

    calls.append({"service": model.service_model.service_name, "operation": model.name, "params": plain(params)})


class RecordingSession(boto3.Session):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events.register("provide-client-params.*.*", record)


boto3.Session = RecordingSession
atexit.register(lambda: open(os.environ["RECORD_AWS_CALLS"], "w").write(json.dumps(calls)))
from sagemaker_tools.__main__ import main

sys.exit(main(sys.argv[1:]))
"""


def recorded_cli(project, tmp_path, *arguments, env=None):
    """Run python -m sagemaker_tools ARGUMENTS, recording its AWS calls; returns (result, calls)."""
    record = tmp_path / f"calls-{len(list(tmp_path.glob('calls-*')))}.json"
    result = subprocess.run(
        [sys.executable, "-c", RECORDING_CLI, *arguments],
        cwd=project,
        env={**os.environ, **(env or {}), "RECORD_AWS_CALLS": str(record)},
        capture_output=True,
        text=True,
        check=False,
    )
    calls = json.loads(record.read_text()) if record.exists() else []
    return result, calls


def request_of(calls, operation):
    (params,) = [call["params"] for call in calls if call["operation"] == operation]
    return params


def test_deploy_invoke_undeploy(built_project, in_ecr, moto, tmp_path):
    project, _ = built_project
    make(project, "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    training_job = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    model_data = sagemaker.describe_training_job(TrainingJobName=training_job)["ModelArtifacts"][
        "S3ModelArtifacts"
    ]
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-training:{TEST_TAG}"
    # What the endpoint answers: moto's sagemaker-runtime returns this canned response.
    answer = "setosa\nversicolor\nvirginica\nsetosa\nvirginica\n"
    requests.post(
        f"{moto}/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": answer, "ContentType": "text/csv; charset=utf-8"}]},
        timeout=10,
    ).raise_for_status()
    with open(project / "data" / "train" / "iris.csv", newline="") as sample:
        header, *rows = list(csv.reader(sample))
    target = header.index("Species")
    features = {",".join(row[:target] + row[target + 1 :]) for row in rows}

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

        invoked, calls = recorded_cli(project, tmp_path, "invoke")
        assert invoked.returncode == 0, invoked.stdout + invoked.stderr
        # The request: five feature rows of the sample (no header, no target), CSV in and out.
        sent = request_of(calls, "InvokeEndpoint")
        assert (sent["EndpointName"], sent["ContentType"], sent["Accept"]) == (SLUG, "text/csv", "text/csv")
        body_rows = sent["Body"]["bytes"].splitlines()
        assert len(body_rows) == 5 and set(body_rows) <= features and len(set(body_rows)) == 5, body_rows
        assert "Sent 5 row(s) of data/train/iris.csv (text/csv)" in invoked.stdout
        # The answer, printed as the endpoint sent it.
        assert f"Response (text/csv; charset=utf-8):\n{answer}" in invoked.stdout

        gone = make(project, "undeploy")
        assert f"Deleted endpoint {SLUG}" in gone.stdout
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []


def test_deploy_serves_the_model_in_the_image_that_trained_it(built_project, in_ecr):
    project, _ = built_project
    make(project, "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    trained_with = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-training:{TEST_TAG}"
    # Later commits pushed other images: the model still goes out in the one that trained it.
    ecr = in_ecr.client("ecr")
    (pushed,) = ecr.batch_get_image(repositoryName=f"{SLUG}-training", imageIds=[{"imageTag": TEST_TAG}])[
        "images"
    ]
    ecr.put_image(repositoryName=f"{SLUG}-training", imageManifest=pushed["imageManifest"], imageTag="later")

    def served_image():
        endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        model = config["ProductionVariants"][0]["ModelName"]
        return sagemaker.describe_model(ModelName=model)["PrimaryContainer"]["Image"]

    result = make(project, "deploy", TAG="later")
    assert served_image() == trained_with
    assert f"image {trained_with} (the image that trained it)" in result.stdout
    make(project, "undeploy")  # (moto has no UpdateEndpoint)
    # Told otherwise, it serves the image given.
    other = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-training:later"
    result = make(project, "deploy", IMAGE=other)
    assert served_image() == other
    assert "(--image-uri (IMAGE=...))" in result.stdout
    # An image gone from ECR is caught before anything is created.
    ecr.batch_delete_image(repositoryName=f"{SLUG}-training", imageIds=[{"imageTag": TEST_TAG}])
    models = len(sagemaker.list_models()["Models"])
    result = make(project, "deploy", check=False)
    assert_one_clear_error(result, f"{trained_with} (the image that trained it", "is not in ECR any more")
    assert len(sagemaker.list_models()["Models"]) == models
    make(project, "undeploy")


SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
GROUPS = ["sg-0123456789abcdef0"]
VOLUME_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OUTPUT_KEY = "alias/ship-test-output"
TAGS = {"team": "ml", "cost-center": "42"}
PRODUCTION = {
    "SAGEMAKER_SUBNETS": ",".join(SUBNETS),
    "SAGEMAKER_SECURITY_GROUP_IDS": ",".join(GROUPS),
    "SAGEMAKER_NETWORK_ISOLATION": "true",
    "SAGEMAKER_VOLUME_KMS_KEY_ID": VOLUME_KEY,
    "SAGEMAKER_OUTPUT_KMS_KEY_ID": OUTPUT_KEY,
    "SAGEMAKER_TAGS": json.dumps(TAGS),
    "SAGEMAKER_TRAINING_SPOT": "true",
    "SAGEMAKER_TRAINING_MAX_WAIT_SECONDS": "7200",
}
AWS_TAGS = [{"Key": key, "Value": value} for key, value in TAGS.items()]


def tags_of(sagemaker, arn):
    return sorted(sagemaker.list_tags(ResourceArn=arn)["Tags"], key=lambda tag: tag["Key"])


def test_production_settings_reach_every_job_model_and_endpoint(built_project, in_ecr, tmp_path):
    project, _ = built_project
    sagemaker = in_ecr.client("sagemaker")
    expected_tags = sorted(AWS_TAGS, key=lambda tag: tag["Key"])
    vpc = {"Subnets": SUBNETS, "SecurityGroupIds": GROUPS}

    # Training: moto keeps these fields in DescribeTrainingJob.
    trained, calls = recorded_cli(
        project,
        tmp_path,
        "remote-train",
        "--image",
        f"{SLUG}-training:{TEST_TAG}",
        "--tag",
        TEST_TAG,
        env=PRODUCTION,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    name = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    job = sagemaker.describe_training_job(TrainingJobName=name)
    assert job["VpcConfig"] == vpc
    assert job["EnableNetworkIsolation"] is True
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == VOLUME_KEY
    assert job["OutputDataConfig"]["KmsKeyId"] == OUTPUT_KEY
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/{SLUG}/checkpoints/{name}/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert tags_of(sagemaker, job["TrainingJobArn"]) == expected_tags
    # Isolated, the container cannot fetch its code from S3: it arrives as the `code` channel.
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["code"] == f"s3://{BUCKET}/{SLUG}/jobs/{name}/source/sourcedir.tar.gz"
    assert s3_read(in_ecr, channels["code"])[:2] == b"\x1f\x8b"  # the gzip tarball itself
    assert (
        job["HyperParameters"]["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    )
    # moto drops Environment: checked in the request as sent. The image's digest, from ECR, is
    # kept with the model (the tag may name another image later).
    repository = f"{SLUG}-training"
    [pushed] = in_ecr.client("ecr").describe_images(
        repositoryName=repository, imageIds=[{"imageTag": TEST_TAG}]
    )["imageDetails"]
    assert request_of(calls, "CreateTrainingJob")["Environment"] == {
        "SAGEMAKER_CHECKPOINT_DIR": "/opt/ml/checkpoints",
        "R_SAGEMAKER_IMAGE": f"{job['AlgorithmSpecification']['TrainingImage']}@{pushed['imageDigest']}",
    }
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith(f"/{repository}:{TEST_TAG}")

    # Processing: moto keeps NetworkConfig and ProcessingOutputConfig, drops ProcessingResources.
    processed, calls = recorded_cli(
        project,
        tmp_path,
        "remote-process",
        "--image",
        f"{SLUG}-processing:{TEST_TAG}",
        "--tag",
        TEST_TAG,
        env=PRODUCTION,
    )
    assert processed.returncode == 0, processed.stdout + processed.stderr
    name = the_only(sagemaker.list_processing_jobs()["ProcessingJobSummaries"])["ProcessingJobName"]
    job = sagemaker.describe_processing_job(ProcessingJobName=name)
    assert job["NetworkConfig"] == {"VpcConfig": vpc, "EnableNetworkIsolation": True}
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == OUTPUT_KEY
    assert tags_of(sagemaker, job["ProcessingJobArn"]) == expected_tags
    cluster = request_of(calls, "CreateProcessingJob")["ProcessingResources"]["ClusterConfig"]
    assert cluster["VolumeKmsKeyId"] == VOLUME_KEY

    # Model, endpoint config, endpoint: moto drops the model's EnableNetworkIsolation (request checked).
    deployed, calls = recorded_cli(project, tmp_path, "deploy", env=PRODUCTION)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["VpcConfig"] == vpc
    assert request_of(calls, "CreateModel")["EnableNetworkIsolation"] is True
    assert config["KmsKeyId"] == VOLUME_KEY
    for arn in (model["ModelArn"], config["EndpointConfigArn"], endpoint["EndpointArn"]):
        assert tags_of(sagemaker, arn) == expected_tags, arn
    assert "production settings: VPC subnets" in deployed.stdout
    make(project, "undeploy")


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("SAGEMAKER_SUBNETS", "subnet-1", "vpc.subnets = 'subnet-1' (from $SAGEMAKER_SUBNETS) is invalid"),
        ("SAGEMAKER_SECURITY_GROUP_IDS", "sg-0123456789abcdef0", "go together"),
        ("SAGEMAKER_VOLUME_KMS_KEY_ID", "my key", "a KMS key ID, key ARN, alias/<name> or alias ARN"),
        ("SAGEMAKER_TAGS", '{"aws:team": "x"}', "not starting aws:"),
        ("SAGEMAKER_TAGS", "team=ml", "a JSON object"),
        ("SAGEMAKER_NETWORK_ISOLATION", "maybe", "true or false"),
        ("SAGEMAKER_TRAINING_CHECKPOINT_S3_URI", "/tmp/x", "an s3://bucket/prefix URI, 'off'"),
        ("SAGEMAKER_TRAINING_CHECKPOINT_LOCAL_PATH", "checkpoints", "an absolute path in the container"),
    ],
)
def test_each_production_setting_is_checked_with_one_line(
    built_project, in_ecr, monkeypatch, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    result = make(built_project[0], "remote-train", check=False)
    assert_one_clear_error(result, expected)
    assert s3_objects(in_ecr) == []


def test_spot_training_must_wait_at_least_its_run_time(built_project, in_ecr, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_TRAINING_SPOT", "true")
    monkeypatch.setenv("SAGEMAKER_TRAINING_MAX_WAIT_SECONDS", "600")
    result = make(built_project[0], "remote-train", check=False)
    assert_one_clear_error(
        result, "training.max_wait_seconds (from $SAGEMAKER_TRAINING_MAX_WAIT_SECONDS) = 600", "3600"
    )
    monkeypatch.setenv("SAGEMAKER_TRAINING_CHECKPOINT_S3_URI", "off")
    monkeypatch.setenv("SAGEMAKER_TRAINING_MAX_WAIT_SECONDS", "3600")
    result = make(built_project[0], "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    name = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    assert "CheckpointConfig" not in sagemaker.describe_training_job(TrainingJobName=name)
    assert "a spot job without checkpoints starts over" in result.stdout


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


# --- what of code/ is packed ----------------------------------------------------------------------------

# A code/ folder with what people keep beside their code: secrets, session files, caches, renv.
PLANTED_CODE = {
    ".env": "AWS_SECRET_ACCESS_KEY=planted\n",
    ".Renviron": "GITHUB_PAT=planted\n",
    ".Rprofile": 'source("renv/activate.R")\n',
    ".Rhistory": "q()\n",
    ".git/config": "[core]\n",
    "R/.secret": "planted\n",
    "R/helpers.R": "helper <- function() 1\n",
    "renv/activate.R": "# renv\n",
    "renv/settings.json": "{}\n",
    "renv/library/R-4.2/x86_64/pkg/DESCRIPTION": "Package: pkg\n",
    "old-model.tar.gz": "not code\n",
}
PACK_SOURCEDIR = (
    "import sys; from sagemaker_tools.opt_ml import pack_sourcedir as p; print(*p('code', sys.argv[1]))"
)
PACKED_CODE = {".Rprofile", "R/helpers.R", "renv/activate.R", "renv/settings.json"}


def test_image_and_sourcedir_pack_the_same_code_and_no_dotfiles(
    default_project, base_image, engine, tmp_path
):
    project = tmp_path / "project"
    shutil.copytree(default_project, project, ignore=shutil.ignore_patterns("build", ".venv"))
    shipped = {path.name for path in (project / "code").iterdir()}
    for relative, text in PLANTED_CODE.items():
        path = project / "code" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    expected = PACKED_CODE | shipped

    # sourcedir.tar.gz, as remote-train and local-train pack it.
    packed = subprocess.run(
        [
            sys.executable,
            "-c",
            PACK_SOURCEDIR,
            str(tmp_path / "sourcedir.tar.gz"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(packed) == expected

    # The image's default code (/opt/ml/code), through .dockerignore.
    ref = f"{SLUG}-training:dotfiles"
    make(project, "build-training", BASE_IMAGE=base_image, TAG="dotfiles")
    try:
        listing = engine.containers.run(
            ref, entrypoint=["find", "/opt/ml/code", "-type", "f", "-printf", "%P\\n"], remove=True
        )
    finally:
        engine.images.remove(ref)
    assert set(listing.decode().split()) == expected


def test_settings_command_lists_every_setting_with_its_source(default_project):
    env = {**os.environ, "SAGEMAKER_TAGS": '{"team": "ml"}', "SAGEMAKER_SUBNETS": "", "AWS_REGION": ""}
    result = subprocess.run(
        [sys.executable, "-m", "sagemaker_tools", "settings"],
        cwd=default_project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = {
        line.split()[0]: line for line in result.stdout.splitlines() if line and not line.startswith("Edit")
    }
    assert '{"team": "ml"}  [$SAGEMAKER_TAGS; env SAGEMAKER_TAGS]' in lines["tags"]
    assert "[config/aws.json; env AWS_REGION]" in lines["region"]
    assert (
        "[config/aws.json; env SAGEMAKER_TRAINING_CHECKPOINT_S3_URI]" in lines["training.checkpoint_s3_uri"]
    )
    # config/aws.json spells out every setting there is, so users see them all.
    assert sorted(lines) == flat_keys(default_project / "config" / "aws.json")


def flat_keys(config_file):
    """The setting names of a config/aws.json (objects flattened, `channels` and `tags` kept whole)."""

    def walk(document, prefix=""):
        for key, value in document.items():
            if isinstance(value, dict) and key not in ("channels", "tags"):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return sorted(walk(json.loads(config_file.read_text())))
