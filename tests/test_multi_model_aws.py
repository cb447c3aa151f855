"""The AWS side of multi-model endpoints: `make deploy MULTI_MODEL=1` and `make invoke TARGET_MODEL=...`
of a built bake, against the moto server of test_ship.py (same fixtures, same loopback setup).

moto implements S3, CreateModel (it keeps PrimaryContainer as sent, Mode included), the endpoint config
and the endpoint, so those are checked in moto's state. Its InvokeEndpoint ignores TargetModel (it
answers a canned body for any request): the request itself is checked instead, as botocore sends it
(test_ship's recorded_cli).
"""

import tarfile

import pytest
import requests
import test_ship
from conftest import TEST_TAG, make
from test_ship import ACCOUNT, BUCKET, REGION, ROLE, SLUG, assert_one_clear_error, recorded_cli, request_of

# test_ship's fixtures, this module's own instances: a moto server on loopback, and its state after `make push`.
aws, in_ecr, moto = test_ship.aws, test_ship.in_ecr, test_ship.moto

pytestmark = pytest.mark.slow

PREFIX = f"{SLUG}/multi-model/{SLUG}"  # s3_prefix / multi-model / endpoint name


@pytest.fixture
def model_tarballs(built_project, tmp_path):
    """Two model tarballs in the bake's build/models/ (removed afterwards: the bake is shared)."""
    project, _ = built_project
    models = project / "build" / "models"
    models.mkdir(parents=True)
    for name in ("iris-a", "iris-b"):
        content = tmp_path / name / "model.rds"
        content.parent.mkdir()
        content.write_text(f"{name}\n")
        with tarfile.open(models / f"{name}.tar.gz", "w:gz") as archive:
            archive.add(content, arcname="model.rds")
    yield {path.name: path.read_bytes() for path in models.iterdir()}
    for path in models.iterdir():
        path.unlink()
    models.rmdir()


def test_deploy_multi_model_serves_every_model_from_one_s3_prefix(
    built_project, in_ecr, moto, model_tarballs, tmp_path
):
    project, _ = built_project
    sagemaker = in_ecr.client("sagemaker")
    deployed = make(project, "deploy", MULTI_MODEL="1")
    s3 = in_ecr.client("s3")
    for name, data in model_tarballs.items():
        assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}")["Body"].read() == data
        assert f"Uploaded build/models/{name} to s3://{BUCKET}/{PREFIX}/{name}" in deployed.stdout
    endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.t2.medium", 1)
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"] == {
        "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SLUG}-training:{TEST_TAG}",
        "ModelDataUrl": f"s3://{BUCKET}/{PREFIX}/",
        "Mode": "MultiModel",
    }
    assert model["ExecutionRoleArn"] == ROLE
    assert "make invoke TARGET_MODEL=iris-a.tar.gz" in deployed.stdout
    assert "make invoke TARGET_MODEL=iris-b.tar.gz" in deployed.stdout

    # InvokeEndpoint names the model (moto answers whatever the TargetModel; the request is what counts).
    requests.post(
        f"{moto}/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": "setosa\n", "ContentType": "text/csv"}]},
        timeout=10,
    ).raise_for_status()
    invoked, calls = recorded_cli(
        project, tmp_path, "invoke", "--target-model", "iris-b.tar.gz", "--rows", "1"
    )
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    sent = request_of(calls, "InvokeEndpoint")
    assert (sent["EndpointName"], sent["TargetModel"]) == (SLUG, "iris-b.tar.gz")
    assert f"to model iris-b.tar.gz of endpoint {SLUG}" in invoked.stdout
    # The Makefile passes TARGET_MODEL on.
    invoked = make(project, "invoke", TARGET_MODEL="iris-a.tar.gz")
    assert f"to model iris-a.tar.gz of endpoint {SLUG}" in invoked.stdout
    # Without a model named, it says which there are, before calling AWS.
    unnamed, calls = recorded_cli(project, tmp_path, "invoke")
    assert_one_clear_error(unnamed, "is multi-model", "TARGET_MODEL=<one of: iris-a.tar.gz, iris-b.tar.gz>")
    assert not [call for call in calls if call["operation"] == "InvokeEndpoint"]

    gone = make(project, "undeploy")
    assert f"Deleted endpoint {SLUG}" in gone.stdout
    assert sagemaker.list_models()["Models"] == []


def test_deploy_multi_model_refuses_serverless_before_creating_anything(
    built_project, in_ecr, model_tarballs
):
    project, _ = built_project
    refused = make(project, "deploy", check=False, MULTI_MODEL="1", SERVERLESS="1")
    assert_one_clear_error(refused, "a serverless endpoint cannot be multi-model")
    assert in_ecr.client("sagemaker").list_models()["Models"] == []
    assert in_ecr.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
