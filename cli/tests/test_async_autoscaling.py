"""Asynchronous endpoints (deploy --async, invoke-async) and autoscaling (autoscale, undeploy),
against moto: CreateEndpointConfig keeps AsyncInferenceConfig, InvokeEndpointAsync writes a queued
answer (or failure) to S3, Application Auto Scaling keeps scalable targets and policies.
"""

import pytest
import requests
from cli_support import ACCOUNT, BUCKET, REGION, SLUG, TAG, s3_read

TRAIN = ("remote-train", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
SUCCESS_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:cli-test-success"
ERROR_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:cli-test-errors"
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


def autoscale(cli, MIN="", MAX="", TARGET=""):
    """`make autoscale MIN=.. MAX=.. TARGET=..`: the Makefile passes all three, empty when unset."""
    return cli("autoscale", "--min", MIN, "--max", MAX, "--target", TARGET)


def test_async_endpoint_deploy_invoke_autoscale_undeploy(in_ecr, moto_url, cli, monkeypatch):
    assert cli(*TRAIN).code == 0
    monkeypatch.setenv("SAGEMAKER_ASYNC_SUCCESS_TOPIC_ARN", SUCCESS_TOPIC)
    monkeypatch.setenv("SAGEMAKER_ASYNC_ERROR_TOPIC_ARN", ERROR_TOPIC)
    monkeypatch.setenv("SAGEMAKER_ASYNC_MAX_CONCURRENT_INVOCATIONS", "2")
    result = cli("deploy", "--async")
    assert result.code == 0, result.err
    assert "Next: make invoke-async" in result.out
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
    queue_async_results(moto_url, {"data": "setosa\nvirginica\n"})
    invoked = cli("invoke-async")
    assert invoked.code == 0, invoked.err
    sent = invoked.request("InvokeEndpointAsync")
    assert (sent["EndpointName"], sent["ContentType"], sent["Accept"]) == (SLUG, "text/csv", "text/csv")
    assert sent["InvocationTimeoutSeconds"] == 900
    assert sent["InputLocation"].startswith(f"s3://{BUCKET}/{SLUG}/async/input/request-")
    body = s3_read(in_ecr, sent["InputLocation"]).decode()
    assert len(body.splitlines()) == 5 and all(len(row.split(",")) == 4 for row in body.splitlines())
    assert f"Uploaded 5 row(s) of data/train/iris.csv ({len(body)} bytes, text/csv)" in invoked.out
    assert "Response (s3://" in invoked.out and "setosa\nvirginica" in invoked.out
    # A failed inference: its failure object is printed and the command fails.
    queue_async_results(moto_url, {"is_failure": True, "data": '{"error": "column Petal.Width is missing"}'})
    failed = cli("invoke-async", "--file", "config/aws.json")
    assert failed.code == 1, failed.out
    assert "The inference failed" in failed.err and "column Petal.Width is missing" in failed.err

    # Autoscaling: checked before anything is registered, then a target and a target tracking policy.
    for variables, message in (
        ({}, "set MIN, MAX and TARGET"),
        ({"MIN": "one", "MAX": "4", "TARGET": "100"}, "MIN='one' is not a whole number"),
        ({"MIN": "3", "MAX": "2", "TARGET": "100"}, "MAX=2 must be at least MIN=3"),
        ({"MIN": "1", "MAX": "4", "TARGET": "-5"}, "TARGET=-5: invocations per instance per minute"),
        ({"MIN": "-1", "MAX": "4", "TARGET": "5"}, "MIN=-1: the fewest instances cannot be negative"),
    ):
        autoscale(cli, **variables).error(message)
    assert scalable_targets(in_ecr) == []
    result = autoscale(cli, MIN="0", MAX="4", TARGET="100")  # 0: an async endpoint may
    assert f"Registered {RESOURCE} with Application Auto Scaling: 0 to 4 instance(s)" in result.out
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
    autoscale(cli, MIN="1", MAX="2", TARGET="50")  # again: updates in place
    (target,) = scalable_targets(in_ecr)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)

    # undeploy removes the scaling first, then the endpoint.
    gone = cli("undeploy")
    assert gone.out.index(f"Deregistered {RESOURCE}") < gone.out.index(f"Deleted endpoint {SLUG}")
    assert scalable_targets(in_ecr) == []
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_a_real_time_endpoint_scales_from_1_and_a_serverless_one_not_at_all(in_ecr, cli):
    assert cli(*TRAIN).code == 0
    assert "Next: make invoke;" in cli("deploy").out
    autoscale(cli, MIN="0", MAX="2", TARGET="10").error(
        "MIN=0: a real-time endpoint needs at least 1 instance"
    )
    cli("undeploy")
    assert cli("deploy", "--serverless").code == 0
    autoscale(cli, MIN="1", MAX="2", TARGET="10").error("is serverless: it scales by itself")
    assert scalable_targets(in_ecr) == []
    cli("undeploy")
    autoscale(cli, MIN="1", MAX="2", TARGET="10").error(f"there is no endpoint {SLUG} to autoscale")


@pytest.mark.parametrize(
    ("flags", "environment", "message"),
    [
        (("--async", "--serverless"), {}, "ASYNC=1 and SERVERLESS=1 do not go together"),
        (("--async", "--multi-model"), {}, "ASYNC=1 and MULTI_MODEL=1 do not go together"),
        (
            ("--async",),
            {"SAGEMAKER_ASYNC_SUCCESS_TOPIC_ARN": "my-topic"},
            "async.success_topic_arn = 'my-topic'",
        ),
        (("--async",), {"SAGEMAKER_ASYNC_INVOCATION_TIMEOUT_SECONDS": "4000"}, "expected at most 3600"),
        (("--async",), {"SAGEMAKER_ASYNC_MAX_CONCURRENT_INVOCATIONS": "0"}, "a whole number of at least 1"),
    ],
    ids=["async-serverless", "async-multi-model", "sns-arn", "timeout", "concurrency"],
)
def test_async_settings_are_checked_before_anything_is_created(in_ecr, cli, flags, environment, message):
    assert cli(*TRAIN).code == 0
    cli("deploy", *flags, env=environment).error(message)
    assert in_ecr.client("sagemaker").list_models()["Models"] == []
