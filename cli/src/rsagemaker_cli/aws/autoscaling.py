"""Autoscaling of an endpoint's instances: `make autoscale MIN=1 MAX=4 TARGET=100`.

Application Auto Scaling scales the variant AllTraffic (the one variant deploy creates) between MIN
and MAX instances, with a target tracking policy on SageMakerVariantInvocationsPerInstance: TARGET
is the number of invocations per instance per minute to keep. An asynchronous endpoint may have
MIN=0 (it scales in to no instance while its queue is empty); the others need at least 1. A
serverless endpoint scales by itself and is refused. `make undeploy` calls deregister() first, as
AWS asks: a scalable target left behind keeps pointing at the deleted variant.
"""

import math

from ..core.aws import open_aws
from ..core.errors import SetupError
from .common import describe_endpoint

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
VARIANT = "AllTraffic"
SCALE_IN_COOLDOWN = 300  # seconds: scale in slowly, so a dip in traffic does not drop capacity at once
SCALE_OUT_COOLDOWN = 60


def resource_id(endpoint):
    return f"endpoint/{endpoint}/variant/{VARIANT}"


def policy_name(endpoint):
    return f"{endpoint}-invocations-per-instance"


def whole_number(name, value):
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SetupError(
            f"{name}={value!r} is not a whole number (e.g. make autoscale MIN=1 MAX=4 TARGET=100)"
        ) from None
    return number


def check_limits(minimum, maximum, target, asynchronous):
    """(MIN, MAX, TARGET) as numbers, each wrong value refused with one line saying what is expected."""
    if str(minimum).strip() == "" or str(maximum).strip() == "" or str(target).strip() == "":
        raise SetupError("set MIN, MAX and TARGET, e.g. make autoscale MIN=1 MAX=4 TARGET=100")
    low, high = whole_number("MIN", minimum), whole_number("MAX", maximum)
    if low < 0:
        raise SetupError(f"MIN={low}: the fewest instances cannot be negative")
    if low == 0 and not asynchronous:
        raise SetupError(
            "MIN=0: a real-time endpoint needs at least 1 instance; "
            "only an asynchronous endpoint (make deploy ASYNC=1) scales in to 0"
        )
    if high < max(low, 1):
        raise SetupError(f"MAX={high} must be at least MIN={low} and at least 1")
    try:
        value = float(str(target).strip())
    except ValueError:
        raise SetupError(
            f"TARGET={target!r} is not a number: invocations per instance per minute, e.g. 100"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise SetupError(f"TARGET={target}: invocations per instance per minute must be more than 0")
    return low, high, value


def endpoint_kind(sagemaker, endpoint):
    """'instance', 'async' or 'serverless', from the endpoint's current config; SetupError without one."""
    description = describe_endpoint(sagemaker, endpoint)
    if description is None:
        raise SetupError(f"there is no endpoint {endpoint} to autoscale: run `make deploy` first")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
    if any("ServerlessConfig" in variant for variant in config["ProductionVariants"]):
        return "serverless"
    return "async" if config.get("AsyncInferenceConfig") else "instance"


def autoscale(args):
    settings, session, _account = open_aws(args.project)
    endpoint = settings["endpoint.name"]
    kind = endpoint_kind(session.client("sagemaker"), endpoint)
    if kind == "serverless":
        raise SetupError(
            f"endpoint {endpoint} is serverless: it scales by itself (endpoint.serverless_max_concurrency)"
        )
    low, high, target = check_limits(args.min, args.max, args.target, kind == "async")
    scaling = session.client("application-autoscaling")
    resource = resource_id(endpoint)
    scaling.register_scalable_target(
        ServiceNamespace=NAMESPACE,
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        MinCapacity=low,
        MaxCapacity=high,
    )
    print(f"Registered {resource} with Application Auto Scaling: {low} to {high} instance(s)")
    scaling.put_scaling_policy(
        PolicyName=policy_name(endpoint),
        ServiceNamespace=NAMESPACE,
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target,
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": SCALE_IN_COOLDOWN,
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN,
        },
    )
    print(
        f"Scaling policy {policy_name(endpoint)}: target {target:g} invocations per instance per minute "
        f"({METRIC}), scale out after {SCALE_OUT_COOLDOWN} s, in after {SCALE_IN_COOLDOWN} s"
    )
    print(
        f"Follow it: aws application-autoscaling describe-scaling-activities --service-namespace {NAMESPACE} "
        f"--resource-id {resource}"
    )
    print("Next: make autoscale again to change it; make undeploy removes it with the endpoint")
    return 0


def deregister(session, endpoint):
    """Remove the endpoint variant's scaling policies and scalable target, if any; True if there was one."""
    scaling = session.client("application-autoscaling")
    resource = resource_id(endpoint)
    targets = scaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource], ScalableDimension=DIMENSION
    )["ScalableTargets"]
    if not targets:
        return False
    policies = scaling.describe_scaling_policies(
        ServiceNamespace=NAMESPACE, ResourceId=resource, ScalableDimension=DIMENSION
    )["ScalingPolicies"]
    for policy in policies:
        if policy["ResourceId"] != resource:
            continue
        scaling.delete_scaling_policy(
            PolicyName=policy["PolicyName"],
            ServiceNamespace=NAMESPACE,
            ResourceId=resource,
            ScalableDimension=DIMENSION,
        )
        print(f"Deleted scaling policy {policy['PolicyName']}")
    scaling.deregister_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=resource, ScalableDimension=DIMENSION
    )
    print(f"Deregistered {resource} from Application Auto Scaling")
    return True


def autoscale_arguments(parser):
    parser.add_argument("--min", default="", help="fewest instances (0 for an asynchronous endpoint)")
    parser.add_argument("--max", default="", help="most instances")
    parser.add_argument("--target", default="", help="invocations per instance per minute to keep")
