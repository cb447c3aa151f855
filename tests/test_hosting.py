"""SageMaker's other hosting options from a bake's command line, against moto on loopback (the
fixtures of test_ship.py): asynchronous endpoints (deploy ASYNC=1, invoke-async), autoscaling
(autoscale, undeploy), batch transform jobs (remote-transform), and their settings' checks.

moto implements every call used here: CreateEndpointConfig keeps AsyncInferenceConfig,
InvokeEndpointAsync writes a queued answer (or failure) to S3, Application Auto Scaling keeps
scalable targets and policies, CreateTransformJob completes at once. Where moto's Describe* answer
leaves a field out, the request as botocore sent it is checked (recorded_cli).
"""
# The fixtures come from test_ship (imported by name, so pytest finds them; the tests' parameters
# then shadow the imports, which is how pytest fixtures work):
# ruff: noqa: F811

import pytest
import requests
from conftest import make
from test_ship import (  # noqa: F401 - fixtures used by name
    ACCOUNT,
    BUCKET,
    REGION,
    SLUG,
    assert_one_clear_error,
    aws,
    in_ecr,
    moto,
    recorded_cli,
    request_of,
    s3_objects,
    s3_read,
    the_only,
)

pytestmark = pytest.mark.slow

SUCCESS_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:ship-test-success"
ERROR_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:ship-test-errors"
RESOURCE = f"endpoint/{SLUG}/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def queue_async_results(moto_url, *results):
    requests.post(
        f"{moto_url}/moto-api/static/sagemaker/async-endpoint-results",
        json={"results": list(results)},
        timeout=10,
    ).raise_for_status()


def scalable_targets(session):
    scaling = session.client("application-autoscaling")
    return scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def test_async_endpoint_deploy_invoke_autoscale_undeploy(
    default_project, in_ecr, moto, tmp_path, monkeypatch
):
    project = default_project
    make(project, "remote-train")
    monkeypatch.setenv("SAGEMAKER_ASYNC_SUCCESS_TOPIC_ARN", SUCCESS_TOPIC)
    monkeypatch.setenv("SAGEMAKER_ASYNC_ERROR_TOPIC_ARN", ERROR_TOPIC)
    monkeypatch.setenv("SAGEMAKER_ASYNC_MAX_CONCURRENT_INVOCATIONS", "2")
    result = make(project, "deploy", ASYNC="1")
    assert "Next: make invoke-async" in result.stdout
    sagemaker = in_ecr.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["AsyncInferenceConfig"] == {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/{SLUG}/async/output/",
            "S3FailurePath": f"s3://{BUCKET}/{SLUG}/async/failures/",
            "NotificationConfig": {"SuccessTopic": SUCCESS_TOPIC, "ErrorTopic": ERROR_TOPIC},
        },
    }
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.t2.medium", 1)
    # The container learns that it serves asynchronously (1 GB payloads) from the model's environment.
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_ASYNC_INFERENCE": "true",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "900",
    }

    # invoke-async: the request goes to S3, the answer comes back from the output object.
    queue_async_results(moto, {"data": "setosa\nvirginica\n"})
    invoked, calls = recorded_cli(project, tmp_path, "invoke-async")
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    sent = request_of(calls, "InvokeEndpointAsync")
    assert (sent["EndpointName"], sent["ContentType"], sent["Accept"]) == (SLUG, "text/csv", "text/csv")
    assert sent["InvocationTimeoutSeconds"] == 900
    assert sent["InputLocation"].startswith(f"s3://{BUCKET}/{SLUG}/async/input/request-")
    body = s3_read(in_ecr, sent["InputLocation"]).decode()
    assert len(body.splitlines()) == 5 and all(len(row.split(",")) == 4 for row in body.splitlines())
    assert f"Uploaded 5 row(s) of data/train/iris.csv ({len(body)} bytes, text/csv)" in invoked.stdout
    assert "Response (s3://" in invoked.stdout and "setosa\nvirginica" in invoked.stdout
    # A failed inference: its failure object is printed and the command fails.
    queue_async_results(moto, {"is_failure": True, "data": '{"error": "column Petal.Width is missing"}'})
    failed, _ = recorded_cli(project, tmp_path, "invoke-async", "--file", "config/aws.json")
    assert failed.returncode == 1, failed.stdout
    assert "The inference failed" in failed.stderr and "column Petal.Width is missing" in failed.stderr

    # Autoscaling: checked before anything is registered, then a target and a target tracking policy.
    for variables, message in (
        ({}, "set MIN, MAX and TARGET"),
        ({"MIN": "one", "MAX": "4", "TARGET": "100"}, "MIN='one' is not a whole number"),
        ({"MIN": "3", "MAX": "2", "TARGET": "100"}, "MAX=2 must be at least MIN=3"),
        ({"MIN": "1", "MAX": "4", "TARGET": "-5"}, "TARGET=-5: invocations per instance per minute"),
        ({"MIN": "-1", "MAX": "4", "TARGET": "5"}, "MIN=-1: the fewest instances cannot be negative"),
    ):
        assert_one_clear_error(make(project, "autoscale", check=False, **variables), message)
    assert scalable_targets(in_ecr) == []
    result = make(project, "autoscale", MIN="0", MAX="4", TARGET="100")  # 0: an async endpoint may
    assert f"Registered {RESOURCE} with Application Auto Scaling: 0 to 4 instance(s)" in result.stdout
    (target,) = scalable_targets(in_ecr)
    assert (target["ResourceId"], target["ScalableDimension"]) == (RESOURCE, DIMENSION)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 4)
    scaling = in_ecr.client("application-autoscaling")
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 100
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    make(project, "autoscale", MIN="1", MAX="2", TARGET="50")  # again: updates in place
    (target,) = scalable_targets(in_ecr)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)

    # undeploy removes the scaling first, then the endpoint.
    gone = make(project, "undeploy")
    assert gone.stdout.index(f"Deregistered {RESOURCE}") < gone.stdout.index(f"Deleted endpoint {SLUG}")
    assert scalable_targets(in_ecr) == []
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_a_real_time_endpoint_scales_from_1_and_a_serverless_one_not_at_all(default_project, in_ecr):
    project = default_project
    make(project, "remote-train")
    assert "Next: make invoke;" in make(project, "deploy").stdout
    result = make(project, "autoscale", check=False, MIN="0", MAX="2", TARGET="10")
    assert_one_clear_error(result, "MIN=0: a real-time endpoint needs at least 1 instance")
    make(project, "undeploy")
    make(project, "deploy", SERVERLESS="1")
    result = make(project, "autoscale", check=False, MIN="1", MAX="2", TARGET="10")
    assert_one_clear_error(result, "is serverless: it scales by itself")
    assert scalable_targets(in_ecr) == []
    make(project, "undeploy")
    result = make(project, "autoscale", check=False, MIN="1", MAX="2", TARGET="10")
    assert_one_clear_error(result, f"there is no endpoint {SLUG} to autoscale")


@pytest.mark.parametrize(
    ("variables", "environment", "message"),
    [
        ({"ASYNC": "1", "SERVERLESS": "1"}, {}, "ASYNC=1 and SERVERLESS=1 do not go together"),
        ({"ASYNC": "1", "MULTI_MODEL": "1"}, {}, "ASYNC=1 and MULTI_MODEL=1 do not go together"),
        (
            {"ASYNC": "1"},
            {"SAGEMAKER_ASYNC_SUCCESS_TOPIC_ARN": "my-topic"},
            "async.success_topic_arn = 'my-topic'",
        ),
        ({"ASYNC": "1"}, {"SAGEMAKER_ASYNC_INVOCATION_TIMEOUT_SECONDS": "4000"}, "expected at most 3600"),
        ({"ASYNC": "1"}, {"SAGEMAKER_ASYNC_MAX_CONCURRENT_INVOCATIONS": "0"}, "a whole number of at least 1"),
    ],
    ids=["async-serverless", "async-multi-model", "sns-arn", "timeout", "concurrency"],
)
def test_async_settings_are_checked_before_anything_is_created(
    default_project, in_ecr, monkeypatch, variables, environment, message
):
    make(default_project, "remote-train")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert_one_clear_error(make(default_project, "deploy", check=False, **variables), message)
    assert in_ecr.client("sagemaker").list_models()["Models"] == []


def test_remote_transform_creates_the_job_sagemaker_runs(default_project, in_ecr, tmp_path):
    project = default_project
    make(project, "remote-train")
    sagemaker = in_ecr.client("sagemaker")
    training_job = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    trained = sagemaker.describe_training_job(TrainingJobName=training_job)
    result, calls = recorded_cli(project, tmp_path, "remote-transform")
    assert result.returncode == 0, result.stdout + result.stderr
    job = the_only(sagemaker.list_transform_jobs()["TransformJobSummaries"])
    name = job["TransformJobName"]
    assert name.startswith(f"{SLUG}-transform-")
    request = request_of(calls, "CreateTransformJob")
    input_uri = f"s3://{BUCKET}/{SLUG}/jobs/{name}/input/"
    output_uri = f"s3://{BUCKET}/{SLUG}/output/{name}/"
    assert request == {
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
    described = sagemaker.describe_transform_job(TransformJobName=name)
    assert described["TransformInput"]["SplitType"] == "Line"
    # The model: the one deploy would serve, in the image that trained it.
    model = sagemaker.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["Image"] == trained["AlgorithmSpecification"]["TrainingImage"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == trained["ModelArtifacts"]["S3ModelArtifacts"]
    # data/ goes up as SageMaker sends CSV to a model: no header, no target column, every row.
    (key,) = s3_objects(in_ecr, f"{SLUG}/jobs/{name}/input/")
    rows = s3_read(in_ecr, f"s3://{BUCKET}/{key}").decode().splitlines()
    assert len(rows) == 150 and all(len(row.split(",")) == 4 for row in rows)
    assert not any("Species" in row or "setosa" in row for row in rows)
    assert f"Transform job {name} completed." in result.stdout
    assert "/aws/sagemaker/TransformJobs" in result.stdout
    assert f"Output: one <file>.out per input file in {output_uri}" in result.stdout


def test_remote_transform_takes_the_configured_input_and_settings(
    default_project, in_ecr, tmp_path, monkeypatch
):
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
    make(default_project, "remote-train")
    result, calls = recorded_cli(default_project, tmp_path, "remote-transform", "--no-wait")
    assert result.returncode == 0, result.stdout + result.stderr
    request = request_of(calls, "CreateTransformJob")
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/batch/in/"
    assert request["TransformInput"]["SplitType"] == "None"
    assert request["TransformOutput"]["AssembleWith"] == "None"
    assert (request["MaxPayloadInMB"], request["BatchStrategy"], request["MaxConcurrentTransforms"]) == (
        0,
        "SingleRecord",
        8,
    )
    assert request["TransformResources"]["InstanceCount"] == 2
    assert not any(call["operation"] == "PutObject" for call in calls)  # nothing uploaded
    assert "Follow it: aws sagemaker describe-transform-job --transform-job-name" in result.stdout


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
def test_transform_settings_are_checked_before_anything_is_created(
    default_project, in_ecr, monkeypatch, environment, message
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = make(default_project, "remote-transform", check=False)
    assert_one_clear_error(result, message)
    assert in_ecr.client("sagemaker").list_transform_jobs()["TransformJobSummaries"] == []
    assert in_ecr.client("sagemaker").list_models()["Models"] == []
