"""deploy, invoke and undeploy, against moto: what the endpoint serves (the image by digest), the
kinds of endpoints, multi-model endpoints.

moto's InvokeEndpoint answers a canned body for any request, TargetModel included: the request
itself is checked.
"""

import csv
import json
import tarfile

import pytest
import requests
from cli_support import BUCKET, REGISTRY, ROLE, SLUG, TAG, digest_of, fake_manifest, the_only

from rsagemaker_cli.aws.deployable import training_image

TRAIN = ("remote-train", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
PREFIX = f"{SLUG}/multi-model/{SLUG}"  # s3_prefix / multi-model / endpoint name


def served(sagemaker):
    endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    return variant, sagemaker.describe_model(ModelName=variant["ModelName"])


def canned_answer(moto_url, body, content_type="text/csv; charset=utf-8"):
    requests.post(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": body, "ContentType": content_type}]},
        timeout=10,
    ).raise_for_status()


def test_deploy_invoke_undeploy(project, in_ecr, moto_url, cli):
    assert cli(*TRAIN).code == 0
    sagemaker = in_ecr.client("sagemaker")
    job = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    model_data = sagemaker.describe_training_job(TrainingJobName=job)["ModelArtifacts"]["S3ModelArtifacts"]
    image = f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}"
    answer = "setosa\nversicolor\nvirginica\nsetosa\nvirginica\n"
    canned_answer(moto_url, answer)
    with open(project / "data" / "train" / "iris.csv", newline="") as sample:
        header, *rows = list(csv.reader(sample))
    target = header.index("Species")
    features = {",".join(row[:target] + row[target + 1 :]) for row in rows}

    for flags, expected_variant in (
        ((), {"InstanceType": "ml.t2.medium", "InitialInstanceCount": 1}),
        (("--serverless",), {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}),
    ):
        result = cli("deploy", *flags)
        assert result.code == 0, result.err
        assert sagemaker.describe_endpoint(EndpointName=SLUG)["EndpointStatus"] == "InService"
        variant, model = served(sagemaker)
        assert {key: variant.get(key) for key in expected_variant} == expected_variant
        assert model["PrimaryContainer"]["Image"] == image
        assert model["PrimaryContainer"]["ModelDataUrl"] == model_data
        assert model["ExecutionRoleArn"] == ROLE
        assert f"/aws/sagemaker/Endpoints/{SLUG}" in result.out
        assert "Next: make invoke" in result.out
        record = json.loads((project / "build" / "endpoint.json").read_text())
        assert record["serving"] == {"image": image, "model_data": model_data}

        invoked = cli("invoke")
        assert invoked.code == 0, invoked.err
        # Five feature rows of the sample (no header, no target), CSV in and out.
        sent = invoked.request("InvokeEndpoint")
        assert (sent["EndpointName"], sent["ContentType"], sent["Accept"]) == (SLUG, "text/csv", "text/csv")
        body_rows = sent["Body"]["bytes"].splitlines()
        assert len(body_rows) == 5 and set(body_rows) <= features and len(set(body_rows)) == 5, body_rows
        assert "Sent 5 row(s) of data/train/iris.csv (text/csv)" in invoked.out
        assert f"Response (text/csv; charset=utf-8):\n{answer}" in invoked.out

        gone = cli("undeploy")
        assert f"Deleted endpoint {SLUG}" in gone.out
        assert sagemaker.list_endpoints()["Endpoints"] == []
        assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
        assert sagemaker.list_models()["Models"] == []
        assert not (project / "build" / "endpoint.json").exists()


def test_deploy_serves_the_image_that_trained_the_model_by_digest(project, in_ecr, cli):
    """Issue 25 item 11: the model names the image by digest, so pushing the training tag again (a
    rebuild, another commit's image under a reused TAG) never changes what the endpoint serves."""
    assert cli(*TRAIN).code == 0
    sagemaker, ecr = in_ecr.client("sagemaker"), in_ecr.client("ecr")
    trained_with = f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}"
    # The tag moves to other bytes after training (the earlier image keeps a tag of its own, as
    # `make push` leaves it; moto, unlike ECR, drops an image left with no tag).
    ecr.put_image(
        repositoryName=f"{SLUG}-training", imageManifest=fake_manifest(), imageTag=f"{TAG}-replaced-1"
    )
    ecr.put_image(repositoryName=f"{SLUG}-training", imageManifest=fake_manifest("7"), imageTag=TAG)
    assert f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}" != trained_with

    result = cli("deploy")
    assert result.code == 0, result.err
    assert served(sagemaker)[1]["PrimaryContainer"]["Image"] == trained_with
    assert f"image {trained_with} (the image that trained it)" in result.out
    cli("undeploy")
    # Told to serve another image by tag, it serves that tag's bytes, named by digest.
    other = f"{REGISTRY}/{SLUG}-training:{TAG}"
    result = cli("deploy", "--image-uri", other)
    assert (
        served(sagemaker)[1]["PrimaryContainer"]["Image"]
        == f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}"
    )
    assert "(--image-uri (IMAGE=...))" in result.out
    cli("undeploy")
    # An image gone from ECR is caught before anything is created.
    ecr.batch_delete_image(repositoryName=f"{SLUG}-training", imageIds=[{"imageTag": f"{TAG}-replaced-1"}])
    cli("deploy").error(f"{trained_with} (the image that trained it", "is not in ECR any more")
    assert sagemaker.list_models()["Models"] == []


def test_a_job_started_by_tag_is_served_by_the_digest_it_recorded():
    """Training jobs of an earlier version ran repo:TAG; the digest they ran is in their environment."""
    tagged = f"{REGISTRY}/{SLUG}-training:{TAG}"
    digest = "sha256:" + "5" * 64
    description = {
        "AlgorithmSpecification": {"TrainingImage": tagged},
        "Environment": {"R_SAGEMAKER_IMAGE": f"{tagged}@{digest}"},
    }
    assert training_image(description) == f"{REGISTRY}/{SLUG}-training@{digest}"
    by_digest = {"AlgorithmSpecification": {"TrainingImage": f"{REGISTRY}/{SLUG}-training@{digest}"}}
    assert training_image(by_digest) == f"{REGISTRY}/{SLUG}-training@{digest}"


def test_a_job_started_by_tag_without_a_record_is_served_by_the_tags_digest_now(in_ecr, cli):
    sagemaker = in_ecr.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName="old-job",
        AlgorithmSpecification={
            "TrainingImage": f"{REGISTRY}/{SLUG}-training:{TAG}",
            "TrainingInputMode": "File",
        },
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    result = cli("deploy", "--training-job", "old-job", "--no-wait")
    assert result.code == 0, result.err
    image = f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}"
    assert result.request("CreateModel")["PrimaryContainer"]["Image"] == image


@pytest.fixture
def model_tarballs(project, tmp_path):
    """Two model tarballs in the project's build/models/."""
    models = project / "build" / "models"
    models.mkdir(parents=True)
    for name in ("iris-a", "iris-b"):
        content = tmp_path / name / "model.rds"
        content.parent.mkdir()
        content.write_text(f"{name}\n")
        with tarfile.open(models / f"{name}.tar.gz", "w:gz") as archive:
            archive.add(content, arcname="model.rds")
    return {path.name: path.read_bytes() for path in models.iterdir()}


def test_deploy_multi_model_serves_every_model_from_one_s3_prefix(in_ecr, moto_url, model_tarballs, cli):
    sagemaker = in_ecr.client("sagemaker")
    deployed = cli("deploy", "--multi-model", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
    assert deployed.code == 0, deployed.err
    s3 = in_ecr.client("s3")
    for name, data in model_tarballs.items():
        assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}")["Body"].read() == data
        assert f"Uploaded build/models/{name} to s3://{BUCKET}/{PREFIX}/{name}" in deployed.out
    variant, model = served(sagemaker)
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.t2.medium", 1)
    assert model["PrimaryContainer"] == {
        "Image": f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}",
        "ModelDataUrl": f"s3://{BUCKET}/{PREFIX}/",
        "Mode": "MultiModel",
    }
    assert model["ExecutionRoleArn"] == ROLE
    assert "make invoke TARGET_MODEL=iris-a.tar.gz" in deployed.out
    assert "make invoke TARGET_MODEL=iris-b.tar.gz" in deployed.out

    canned_answer(moto_url, "setosa\n", "text/csv")
    invoked = cli("invoke", "--target-model", "iris-b.tar.gz", "--rows", "1")
    assert invoked.code == 0, invoked.err
    sent = invoked.request("InvokeEndpoint")
    assert (sent["EndpointName"], sent["TargetModel"]) == (SLUG, "iris-b.tar.gz")
    assert f"to model iris-b.tar.gz of endpoint {SLUG}" in invoked.out
    # Without a model named, it says which there are, before calling InvokeEndpoint.
    unnamed = cli("invoke")
    unnamed.error("is multi-model", "TARGET_MODEL=<one of: iris-a.tar.gz, iris-b.tar.gz>")
    assert unnamed.requests("InvokeEndpoint") == []

    gone = cli("undeploy")
    assert f"Deleted endpoint {SLUG}" in gone.out
    assert sagemaker.list_models()["Models"] == []


def test_deploy_multi_model_refuses_serverless_before_creating_anything(in_ecr, model_tarballs, cli):
    cli("deploy", "--multi-model", "--serverless", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG).error(
        "a serverless endpoint cannot be multi-model"
    )
    assert in_ecr.client("sagemaker").list_models()["Models"] == []
    assert in_ecr.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_invoke_a_missing_file_says_so(in_ecr, cli):
    cli("invoke", "--file", "nothing.csv").error("nothing.csv does not exist")
