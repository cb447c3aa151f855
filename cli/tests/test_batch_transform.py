"""remote-transform against moto (CreateTransformJob completes at once), and its settings' checks.
The batching of local-transform is tested with the serving image (tests/contract/test_transform.py).
"""

import json

import pytest
from cli_support import BUCKET, REGISTRY, SLUG, TAG, digest_of, s3_objects, s3_read, the_only

TRAIN = ("remote-train", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)


def test_remote_transform_creates_the_job_sagemaker_runs(in_ecr, cli, tmp_path):
    assert cli(*TRAIN).code == 0
    sagemaker = in_ecr.client("sagemaker")
    training_job = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    trained = sagemaker.describe_training_job(TrainingJobName=training_job)
    outcome = tmp_path / "outcome.json"
    result = cli("--json", outcome, "remote-transform")
    assert result.code == 0, result.err
    name = the_only(sagemaker.list_transform_jobs()["TransformJobSummaries"])["TransformJobName"]
    reported = json.loads(outcome.read_text())["result"]  # what R's project_remote_transform() returns
    assert (reported["job_name"], reported["status"]) == (name, "Completed")
    assert reported["output_uri"] == f"s3://{BUCKET}/{SLUG}/output/{name}/"
    assert reported["job_arn"].endswith(f":transform-job/{name}")
    assert name.startswith(f"{SLUG}-transform-")
    input_uri = f"s3://{BUCKET}/{SLUG}/jobs/{name}/input/"
    output_uri = f"s3://{BUCKET}/{SLUG}/output/{name}/"
    assert result.request("CreateTransformJob") == {
        "TransformJobName": name,
        "ModelName": name,
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": 6,
        "BatchStrategy": "MultiRecord",
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 3},
        "Environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "600"},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    assert sagemaker.describe_transform_job(TransformJobName=name)["TransformInput"]["SplitType"] == "Line"
    # The model: the one deploy would serve, in the image that trained it (by digest).
    model = sagemaker.describe_model(ModelName=name)
    image = f"{REGISTRY}/{SLUG}-training@{digest_of(in_ecr, 'training')}"
    assert model["PrimaryContainer"]["Image"] == trained["AlgorithmSpecification"]["TrainingImage"] == image
    assert model["PrimaryContainer"]["ModelDataUrl"] == trained["ModelArtifacts"]["S3ModelArtifacts"]
    # data/ goes up as SageMaker sends CSV to a model: no header, no target column, every row.
    (key,) = s3_objects(in_ecr, f"{SLUG}/jobs/{name}/input/")
    rows = s3_read(in_ecr, f"s3://{BUCKET}/{key}").decode().splitlines()
    assert len(rows) == 150 and all(len(row.split(",")) == 4 for row in rows)
    assert not any("Species" in row or "setosa" in row for row in rows)
    assert f"Transform job {name} completed." in result.out
    assert "/aws/sagemaker/TransformJobs" in result.out
    assert f"Output: one <file>.out per input file in {output_uri}" in result.out


def test_remote_transform_takes_the_configured_input_and_settings(in_ecr, cli, monkeypatch):
    for name, value in {
        "SAGEMAKER_TRANSFORM_INPUT_S3_URI": f"s3://{BUCKET}/batch/in/",
        "SAGEMAKER_TRANSFORM_CONTENT_TYPE": "application/jsonlines",
        "SAGEMAKER_TRANSFORM_ACCEPT": "application/jsonlines",
        "SAGEMAKER_TRANSFORM_SPLIT_TYPE": "none",
        "SAGEMAKER_TRANSFORM_BATCH_STRATEGY": "SingleRecord",
        "SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB": "0",
        "SAGEMAKER_TRANSFORM_MAX_CONCURRENT_TRANSFORMS": "8",
        "SAGEMAKER_TRANSFORM_INSTANCE_COUNT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    assert cli(*TRAIN).code == 0
    result = cli("remote-transform", "--no-wait")
    assert result.code == 0, result.err
    request = result.request("CreateTransformJob")
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/batch/in/"
    assert request["TransformInput"]["SplitType"] == "None"
    assert request["TransformOutput"]["AssembleWith"] == "None"
    assert (request["MaxPayloadInMB"], request["BatchStrategy"], request["MaxConcurrentTransforms"]) == (
        0,
        "SingleRecord",
        8,
    )
    assert request["TransformResources"]["InstanceCount"] == 2
    assert result.requests("PutObject") == []  # nothing uploaded
    assert "Follow it: aws sagemaker describe-transform-job --transform-job-name" in result.out


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB": "101"}, "from 0 (no limit) to 100"),
        ({"SAGEMAKER_TRANSFORM_SPLIT_TYPE": "Lines"}, "expected None or Line or RecordIO or TFRecord"),
        ({"SAGEMAKER_TRANSFORM_BATCH_STRATEGY": "Mini"}, "expected MultiRecord or SingleRecord"),
        ({"SAGEMAKER_TRANSFORM_CONTENT_TYPE": "csv"}, "a media type such as text/csv"),
        (
            {
                "SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB": "50",
                "SAGEMAKER_TRANSFORM_MAX_CONCURRENT_TRANSFORMS": "3",
            },
            "is over 100 MB, SageMaker's limit for a transform job",
        ),
    ],
    ids=["payload", "split", "strategy", "content-type", "payload-times-concurrency"],
)
def test_transform_settings_are_checked_before_anything_is_created(in_ecr, cli, environment, message):
    cli("remote-transform", env=environment).error(message)
    assert in_ecr.client("sagemaker").list_transform_jobs()["TransformJobSummaries"] == []
    assert in_ecr.client("sagemaker").list_models()["Models"] == []
