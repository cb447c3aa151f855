"""The Model Registry commands against moto: models, approve, and deploy of an approved package (with
the image the package records, by digest). boto3 only: the SDK builds the pipeline alone."""

import json

import pytest
from cli_support import ACCOUNT, BUCKET, REGION, REGISTRY, SLUG, digest_of, fake_manifest


@pytest.fixture
def registered(in_ecr):
    """Two versions in the project's group, as two pipeline runs would leave them; returns their ARNs."""
    sagemaker, s3, ecr = in_ecr.client("sagemaker"), in_ecr.client("s3"), in_ecr.client("ecr")
    sagemaker.create_model_package_group(ModelPackageGroupName=SLUG)
    # Each version's image is still in ECR (deploy refuses one that is gone).
    for number, image_tag in enumerate(("older", "newer"), start=1):
        ecr.put_image(
            repositoryName=f"{SLUG}-training", imageManifest=fake_manifest(str(number)), imageTag=image_tag
        )
    arns = []
    for version, (accuracy, image_tag) in enumerate(((0.9333, "older"), (0.9667, "newer")), start=1):
        key = f"{SLUG}/pipeline/executions/run{version}/evaluation/evaluation.json"
        report = {
            "multiclass_classification_metrics": {"accuracy": {"value": accuracy, "standard_deviation": 0.04}}
        }
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(report).encode())
        image = f"{REGISTRY}/{SLUG}-training:{image_tag}"
        arns.append(
            sagemaker.create_model_package(
                ModelPackageGroupName=SLUG,
                InferenceSpecification={
                    "Containers": [{"Image": image, "ModelDataUrl": f"s3://{BUCKET}/model{version}.tar.gz"}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
                ModelApprovalStatus="PendingManualApproval",
                ModelMetrics={
                    "ModelQuality": {
                        "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}
                    }
                },
            )["ModelPackageArn"]
        )
    return arns


def test_models_lists_versions_with_status_and_accuracy(registered, cli):
    result = cli("models")
    rows = [line.split() for line in result.out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:3] for row in rows] == [
        ["2", "PendingManualApproval", "0.9667"],
        ["1", "PendingManualApproval", "0.9333"],
    ]
    assert all(len(row) >= 4 and row[3][:2] == "20" for row in rows)  # the creation time


def test_approve_then_deploy_serves_the_approved_package_with_its_image(registered, in_ecr, cli):
    result = cli("approve", "--version", "1")
    assert f"version 1 is now Approved: {registered[0]}" in result.out
    deployed = cli("deploy", "--no-wait")
    assert deployed.code == 0, deployed.err
    assert f"(from model package {registered[0]})" in deployed.out
    # The package's image (not the TAG's), named by digest in the model.
    image = f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training', 'older')}"
    assert deployed.request("CreateModel")["PrimaryContainer"]["Image"] == image
    assert f"image {image} (the image the package records)" in deployed.out


def test_deploy_names_a_package_with_model_package(registered, in_ecr, cli):
    result = cli("deploy", "--no-wait", "--model-package", registered[1])
    assert f"(from model package {registered[1]})" in result.out
    sagemaker = in_ecr.client("sagemaker")
    (model,) = sagemaker.list_models()["Models"]
    container = sagemaker.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]
    assert container["Image"] == f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training', 'newer')}"
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/model2.tar.gz"


def test_registry_bad_input_gets_one_line_and_changes_nothing(registered, in_ecr, cli):
    sagemaker = in_ecr.client("sagemaker")
    cli("approve", "--version", "9").error(f"model package group {SLUG} has no version 9 (versions: 1, 2)")
    statuses = [
        summary["ModelApprovalStatus"]
        for summary in sagemaker.list_model_packages(ModelPackageGroupName=SLUG)["ModelPackageSummaryList"]
    ]
    assert statuses == ["PendingManualApproval", "PendingManualApproval"]

    cli("deploy", "--no-wait").error(f"model package group {SLUG} has no Approved version")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []

    missing = registered[0].rsplit("/", 1)[0] + "/7"
    cli("deploy", "--no-wait", "--model-package", missing).error(f"model package {missing} does not exist")
    assert sagemaker.list_models()["Models"] == []


def test_models_without_a_group_says_how_to_get_one(in_ecr, cli):
    cli("models").error(f"model package group {SLUG} does not exist", "make pipeline")


def test_a_package_arn_is_named_as_sagemaker_names_it():
    from rsagemaker_cli.aws.registry import package_arn

    assert (
        package_arn(ACCOUNT, REGION, SLUG, 3)
        == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{SLUG}/3"
    )
