"""Shipping built images: `make push` to ECR or another registry, and no secrets in images.

Everything runs on loopback: a moto server stands in for STS and ECR (boto3 reaches it through
AWS_ENDPOINT_URL), and Debian's docker-registry on 127.0.0.1:5000 receives the pushes (the podman
service trusts that address as an insecure registry, see scripts/engine.sh). moto's ECR has no
registry behind it, so the push tests set the CLI's test seam RSAGEMAKER_ECR_REGISTRY_OVERRIDE:
repositories and the login token still come from the ECR API, the layers go to the local registry.
What the CLI sends to AWS without an image (remote jobs, endpoints, the registry, push's refusals)
is tested in cli/tests, against the same moto; the Makefile's TAG and its CLI calls in
test_cli_bake.py.
"""

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
REGISTRY_OVERRIDE = "RSAGEMAKER_ECR_REGISTRY_OVERRIDE"
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
    command = [sys.executable, "-m", "rsagemaker_cli", "push", "--image", f"training={images['training']}"]
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


def test_push_of_an_image_not_built_says_so_before_creating_anything(built_project, aws):
    result = make(built_project[0], "push", check=False, TAG="never-built")
    assert_one_clear_error(result, f"{SLUG}-processing:never-built is not built here", "make build")
    assert repositories(aws) == {}


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
    "import sys; from rsagemaker_cli.core.opt_ml import pack_sourcedir as p; print(*p('code', sys.argv[1]))"
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
