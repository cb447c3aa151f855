"""`rsagemaker deploy`, `invoke` and `undeploy`: a SageMaker endpoint of the project's model.

What deploy serves is decided in deployable.py (by default the last training job's model in the
image that trained it, by digest). The model and endpoint config get the production settings
(VPC, network isolation, volume KMS key, tags; aws/common.py); SERVERLESS=1, ASYNC=1
(async_inference.py) and MULTI_MODEL=1 choose the kind of endpoint. What was created is recorded
in build/endpoint.json, so undeploy removes it all (autoscaling first, autoscaling.py).
invoke sends sample rows of data/ (core/data.py) or a file, --target-model on a multi-model one.
"""

import json
import sys

from ..core.aws import open_aws
from ..core.data import request_body
from ..core.errors import SetupError
from ..core.opt_ml import unique_name, write_json
from .async_inference import async_inference_config, async_model_environment, describe_async
from .autoscaling import deregister as deregister_autoscaling
from .common import ENDPOINT_DONE, describe_endpoint, is_not_found, production_note, tagged, wait_for
from .deployable import model_request, multi_model_deployable, what_to_deploy
from .monitoring import data_capture_config


def endpoint_record(project):
    return project.build / "endpoint.json"


def check_async(settings, args):
    """ASYNC=1 goes with one model on instances only, and needs somewhere for the answers."""
    if args.serverless:
        raise SetupError(
            "ASYNC=1 and SERVERLESS=1 do not go together: an asynchronous endpoint runs on instances"
        )
    if args.multi_model:
        raise SetupError(
            "ASYNC=1 and MULTI_MODEL=1 do not go together: SageMaker serves a multi-model endpoint in real time"
        )
    if not settings["async.output_s3_uri"] or not settings["async.failure_s3_uri"]:
        settings.require("bucket")  # the answers go under s3://<bucket>/<s3_prefix>/async/


def deploy(args):
    project = args.project
    settings, session, account = open_aws(project, "role_arn")
    if args.asynchronous:
        check_async(settings, args)
    region = settings["region"]
    sagemaker = session.client("sagemaker")
    if args.multi_model:
        deployable = multi_model_deployable(project, session, account, region, settings, args)
    else:
        deployable = what_to_deploy(project, session, account, region, sagemaker, args)
    endpoint = settings["endpoint.name"]
    resource_name = unique_name(endpoint)  # the model and its endpoint config
    args.result = {
        "endpoint": endpoint,
        "model": resource_name,
        "endpoint_config": resource_name,
        "status": None,
    }

    model = model_request(settings, resource_name, deployable)
    if deployable.target_models:
        model["PrimaryContainer"]["Mode"] = "MultiModel"
    if args.asynchronous:  # the container learns so from its environment (async_inference.py)
        model["PrimaryContainer"]["Environment"] = async_model_environment(settings)
    sagemaker.create_model(**model)
    print(f"Created model {resource_name}: {deployable.model_data} (from {deployable.model_source})")
    print(f"  image {deployable.image} ({deployable.image_source})")
    production_note(settings)
    variant = {"VariantName": "AllTraffic", "ModelName": resource_name}
    config = {"EndpointConfigName": resource_name, "ProductionVariants": [variant], **tagged(settings)}
    if args.serverless:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings["endpoint.serverless_memory_mb"],
            "MaxConcurrency": settings["endpoint.serverless_max_concurrency"],
        }
        kind = f"serverless, {settings['endpoint.serverless_memory_mb']} MB"
        if settings["kms.volume_key_id"]:
            print("  note: a serverless endpoint has no storage volume; kms.volume_key_id is not used")
    else:
        variant.update(
            InstanceType=settings["endpoint.instance_type"],
            InitialInstanceCount=settings["endpoint.instance_count"],
            InitialVariantWeight=1.0,
        )
        kind = f"{settings['endpoint.instance_count']} x {settings['endpoint.instance_type']}"
        if settings["kms.volume_key_id"]:
            config["KmsKeyId"] = settings["kms.volume_key_id"]
    if args.asynchronous:
        config["AsyncInferenceConfig"] = async_inference_config(settings)
        kind += f"; {describe_async(settings)}"
    if getattr(args, "capture", False):  # make deploy CAPTURE=1 (monitoring.py)
        config["DataCaptureConfig"] = data_capture_config(settings)
        kind += (
            f"; capturing {settings['capture.sampling_percentage']} % of requests to "
            f"{config['DataCaptureConfig']['DestinationS3Uri']}"
        )
    sagemaker.create_endpoint_config(**config)
    print(f"Created endpoint config {resource_name} ({kind})")

    # Record what we created first, so undeploy finds it even if the wait below is interrupted.
    record_file = endpoint_record(project)
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    created = (
        [*record.get("created", []), resource_name] if record.get("endpoint") == endpoint else [resource_name]
    )
    write_json(
        record_file,
        {
            "endpoint": endpoint,
            "region": region,
            "created": created,
            "serving": {
                "image": deployable.image,
                "model_data": deployable.model_data,
                **({"target_models": list(deployable.target_models)} if deployable.target_models else {}),
            },
        },
    )
    if describe_endpoint(sagemaker, endpoint):
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=resource_name)
        print(f"Updating endpoint {endpoint} to {resource_name} (it keeps serving the old model meanwhile)")
    else:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=resource_name, **tagged(settings))
        print(f"Creating endpoint {endpoint} (several minutes)")

    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    hint = f"Follow it: aws sagemaker describe-endpoint --endpoint-name {endpoint}"
    if args.no_wait:
        print(hint)
        print(f"Logs: CloudWatch log group {group}. Next, once InService: make invoke")
        return 0
    description = wait_for(
        lambda: sagemaker.describe_endpoint(EndpointName=endpoint),
        "EndpointStatus",
        ENDPOINT_DONE,
        f"endpoint {endpoint}",
        hint,
    )
    status = description["EndpointStatus"]
    args.result.update(status=status, endpoint_arn=description.get("EndpointArn"))
    if status == "InService":
        print(f"Endpoint {endpoint} is InService.")
    else:
        print(
            f"Endpoint {endpoint} is {status}: {description.get('FailureReason', 'no reason given')}",
            file=sys.stderr,
        )
    print(f"Logs: CloudWatch log group {group}")
    print(f"  aws logs tail {group} --follow")
    if status != "InService":
        return 1
    if deployable.target_models:
        print("Next, one per model (SageMaker loads each on its first request):")
        for name in deployable.target_models:
            print(f"      make invoke TARGET_MODEL={name}")
        print(f"  Add models by uploading them under {deployable.model_data} (no new deploy needed).")
        print("  make undeploy when done (an instance endpoint bills every hour it runs)")
        return 0
    invoke_target = "invoke-async" if args.asynchronous else "invoke"
    print(
        f"Next: make {invoke_target}; make undeploy when done (an instance endpoint bills every hour it runs)"
    )
    return 0


def invoke(args):
    project = args.project
    settings, session, _account = open_aws(project)
    endpoint = settings["endpoint.name"]
    body, what = request_body(project, args.file, args.rows)
    record_file = endpoint_record(project)
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    target_models = (
        record.get("serving", {}).get("target_models") if record.get("endpoint") == endpoint else None
    )
    if target_models and not args.target_model:
        raise SetupError(
            f"endpoint {endpoint} is multi-model: name the model, "
            f"make invoke TARGET_MODEL=<one of: {', '.join(target_models)}>"
        )
    target = {"TargetModel": args.target_model} if args.target_model else {}
    response = session.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, ContentType=args.content_type, Accept=args.accept, Body=body, **target
    )
    to = f"model {args.target_model} of endpoint {endpoint}" if args.target_model else f"endpoint {endpoint}"
    print(f"Sent {what} ({args.content_type}) to {to}:")
    print(body.decode(errors="replace").rstrip())
    answer = response["Body"].read().decode(errors="replace")
    print(f"Response ({response.get('ContentType', '?')}):")
    print(answer.rstrip())
    args.result = {
        "endpoint": endpoint,
        "target_model": args.target_model,
        "request": {"content_type": args.content_type, "body": body.decode(errors="replace")},
        "content_type": response.get("ContentType", ""),
        "body": answer,
    }
    print("Next: make undeploy when done")
    return 0


def undeploy(args):
    project = args.project
    settings, session, _account = open_aws(project)
    endpoint = settings["endpoint.name"]
    sagemaker = session.client("sagemaker")
    record_file = endpoint_record(project)
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    configs = set(record.get("created", [])) if record.get("endpoint") == endpoint else set()
    models = set(configs)
    try:  # first, as AWS asks: a scalable target must not outlive its variant
        deregister_autoscaling(session, endpoint)
    except sagemaker.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        print(
            f"  note: autoscaling of {endpoint} not checked ({details.get('Code')}: {details.get('Message')})"
        )
    description = describe_endpoint(sagemaker, endpoint)
    if description:
        config = description["EndpointConfigName"]
        configs.add(config)
        try:
            variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
            models.update(variant["ModelName"] for variant in variants)
        except sagemaker.exceptions.ClientError as error:
            if not is_not_found(error):
                raise
        sagemaker.delete_endpoint(EndpointName=endpoint)
        print(f"Deleted endpoint {endpoint} (billing stops once it is gone)")
    else:
        print(f"No endpoint {endpoint} in {settings['region']}")
    for kind, names, delete in (
        ("endpoint config", configs, lambda name: sagemaker.delete_endpoint_config(EndpointConfigName=name)),
        ("model", models, lambda name: sagemaker.delete_model(ModelName=name)),
    ):
        for name in sorted(names):
            try:
                delete(name)
                print(f"Deleted {kind} {name}")
            except sagemaker.exceptions.ClientError as error:
                if not is_not_found(error):
                    raise
    record_file.unlink(missing_ok=True)
    print("Done. Next: make deploy to serve again")
    return 0


def deploy_arguments(parser):
    parser.add_argument(
        "--serverless", action="store_true", help="a serverless endpoint instead of instances"
    )
    parser.add_argument(
        "--training-job", default="", help="the training job to deploy (default: the last one)"
    )
    parser.add_argument(
        "--tuning-job", default="", help="deploy the best training job of this tuning job (make tune)"
    )
    parser.add_argument(
        "--model-package",
        default="",
        help="the model package ARN to deploy (default: the registry's latest Approved version, if any)",
    )
    parser.add_argument(
        "--image-uri", default="", help="serve in this image (default: the image that trained the model)"
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the endpoint is being created")
    parser.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="an asynchronous endpoint (requests and answers through S3; settings async.* in config/aws.json)",
    )
    parser.add_argument(
        "--multi-model",
        action="store_true",
        help="a multi-model endpoint of every model in build/models/ (uploaded under one S3 prefix)",
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help="data capture of requests and answers to S3 (settings capture.* in config/aws.json)",
    )
    parser.add_argument("--image", default="", help="with --multi-model: the local image ref pushed at --tag")
    parser.add_argument("--tag", default="", help="with --multi-model: the pushed tag of --image")


def invoke_arguments(parser):
    parser.add_argument("--rows", type=int, default=5, help="how many rows of data/ to send")
    parser.add_argument("--file", default="", help="send this file instead")
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.add_argument(
        "--target-model", default="", help="on a multi-model endpoint: the model (NAME.tar.gz)"
    )
