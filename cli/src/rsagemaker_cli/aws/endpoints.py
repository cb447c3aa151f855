"""Endpoints through boto3: deploy, invoke, undeploy (shared checks and waiting: remote.py).

What `deploy` serves is decided in one place, what_to_deploy(): by default the model of the last
training job (or --training-job NAME) in the very image that trained it (DescribeTrainingJob's
AlgorithmSpecification.TrainingImage), so a later commit or push never changes the R that reads
model.rds; --image-uri (make deploy IMAGE=...) serves it in another image. The model and endpoint
config get the production settings (VPC, network isolation, volume KMS key, tags; see remote.py).
--multi-model (make deploy MULTI_MODEL=1) serves every model of build/models/ from one S3 prefix
instead (multi_model_deployable(); the S3 layout is in multi_model.py); invoke --target-model picks one.
"""

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from . import multi_model
from .async_inference import async_inference_config, async_model_environment, describe_async
from .autoscaling import deregister as deregister_autoscaling
from .opt_ml import read_hyperparameters, sample_rows, unique_name, write_json
from .remote import (
    DATA_DIR,
    ENDPOINT_DONE,
    ENDPOINT_RECORD,
    HYPERPARAMETERS_FILE,
    LAST_TRAINING_JOB,
    check_bucket,
    describe_production,
    image_in_ecr,
    open_aws,
    pushed_image_uri,
    tagged,
    vpc_config,
    wait_for,
)
from .settings import PROJECT_DIR, SetupError, ecr_registry


@dataclass(frozen=True)
class Deployable:
    """What an endpoint serves, and where each part came from (printed, and kept in build/endpoint.json)."""

    image: str
    model_data: str
    model_source: str  # e.g. "training job myproject-training-20250101-120000-000"
    image_source: str  # e.g. "the image that trained it"
    target_models: tuple = ()  # a multi-model endpoint's models (TargetModel values)


def from_training_job(sagemaker, named):
    """The model of a Completed training job (the last one by default), in the image that trained it."""
    if not named:
        if not LAST_TRAINING_JOB.exists():
            raise SetupError(
                "no training job to deploy: run `make remote-train` first, or pass --training-job NAME"
            )
        named = json.loads(LAST_TRAINING_JOB.read_text())["job_name"]
    try:
        description = sagemaker.describe_training_job(TrainingJobName=named)
    except sagemaker.exceptions.ClientError as error:
        if is_not_found(error):
            raise SetupError(f"training job {named} does not exist in this account and region") from None
        raise
    if description["TrainingJobStatus"] != "Completed":
        raise SetupError(
            f"training job {named} is {description['TrainingJobStatus']}: only a Completed job has a model"
        )
    return Deployable(
        image=description["AlgorithmSpecification"]["TrainingImage"],
        model_data=description["ModelArtifacts"]["S3ModelArtifacts"],
        model_source=f"training job {named}",
        image_source="the image that trained it",
    )


def from_model_package(sagemaker, named):
    """The named model package, else the registry's latest Approved one; None without a registry."""
    from .registry import MODEL_PACKAGE_GROUP, approved_package

    package = approved_package(sagemaker, MODEL_PACKAGE_GROUP, named)
    if package is None:
        return None
    return Deployable(
        image=package["image"],
        model_data=package["model_data"],
        model_source=f"model package {package['arn']}",
        image_source="the image the package records",
    )


def what_to_deploy(session, account, region, sagemaker, args):
    """The image and model data to serve, and where they came from.

    A model package (--model-package ARN, or the registry's latest Approved version once the project
    has a model package group) brings the image it was registered with; a training job
    (--training-job, or the last remote-train) the image that trained it.
    """
    deployable = None if args.training_job else from_model_package(sagemaker, args.model_package)
    if deployable is None:
        deployable = from_training_job(sagemaker, args.training_job)
    if args.image_uri:
        deployable = replace(deployable, image=args.image_uri, image_source="--image-uri (IMAGE=...)")
    if deployable.image.startswith(f"{ecr_registry(account, region)}/") and not image_in_ecr(
        session, deployable.image
    ):
        raise SetupError(
            f"{deployable.image} ({deployable.image_source}, {deployable.model_source}) is not in ECR any more: "
            "push it again from its commit (make build push TAG=<that tag>), or serve another: make deploy IMAGE=<uri>"
        )
    return deployable


def multi_model_deployable(session, account, region, settings, args):
    """MULTI_MODEL=1: every model of build/models/ uploaded under one S3 prefix (the ModelDataUrl of a
    Mode=MultiModel container), served by the pushed training image (TAG) or --image-uri."""
    if args.serverless:
        raise SetupError(
            "a serverless endpoint cannot be multi-model (SageMaker serves those on instances only)"
        )
    settings.require("bucket")
    tarballs = multi_model.model_tarballs(PROJECT_DIR)
    if args.image_uri:
        image, image_source = args.image_uri, "--image-uri (IMAGE=...)"
    elif args.image:
        image, image_source = (
            pushed_image_uri(session, account, region, args.image, args.tag),
            f"pushed, TAG {args.tag}",
        )
    else:
        raise SetupError(
            "name the serving image: --image REF --tag TAG (make deploy does) or --image-uri URI"
        )
    s3 = session.client("s3")
    check_bucket(s3, settings["bucket"], region)
    prefix_key = multi_model.s3_prefix_key(settings, settings["endpoint.name"])
    prefix = multi_model.upload_models(s3, settings["bucket"], prefix_key, tarballs)
    return Deployable(
        image=image,
        model_data=prefix,
        model_source=f"{len(tarballs)} model(s) of {multi_model.MODELS_DIR}/, multi-model",
        image_source=image_source,
        target_models=tuple(tarball.name for tarball in tarballs),
    )


def is_not_found(error):
    """SageMaker reports a missing resource as a ValidationException "Could not find ..." (or "not found")."""
    details = error.response.get("Error", {})
    message = details.get("Message", "").lower()
    return details.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "could not find" in message or "not found" in message
    )


def describe_endpoint(sagemaker, name):
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except sagemaker.exceptions.ClientError as error:
        if is_not_found(error):
            return None
        raise


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


def model_request(settings, name, deployable):
    """CreateModel of a deployable, with the production settings every model gets (deploy, remote-transform)."""
    model = {
        "ModelName": name,
        "PrimaryContainer": {"Image": deployable.image, "ModelDataUrl": deployable.model_data},
        "ExecutionRoleArn": settings["role_arn"],
        **tagged(settings),
    }
    if vpc_config(settings):
        model["VpcConfig"] = vpc_config(settings)
    if settings["network_isolation"]:
        model["EnableNetworkIsolation"] = True
    return model


def deploy(args):
    settings, session, account = open_aws("role_arn")
    if args.asynchronous:
        check_async(settings, args)
    region = settings["region"]
    sagemaker = session.client("sagemaker")
    if args.multi_model:
        deployable = multi_model_deployable(session, account, region, settings, args)
    else:
        deployable = what_to_deploy(session, account, region, sagemaker, args)
    endpoint = settings["endpoint.name"]
    resource_name = unique_name(endpoint)  # the model and its endpoint config

    model = model_request(settings, resource_name, deployable)
    if deployable.target_models:
        model["PrimaryContainer"]["Mode"] = "MultiModel"
    if args.asynchronous:  # the container learns so from its environment (async_inference.py)
        model["PrimaryContainer"]["Environment"] = async_model_environment(settings)
    sagemaker.create_model(**model)
    print(f"Created model {resource_name}: {deployable.model_data} (from {deployable.model_source})")
    print(f"  image {deployable.image} ({deployable.image_source})")
    note = describe_production(settings)
    if note:
        print(f"  production settings: {note}")
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
    sagemaker.create_endpoint_config(**config)
    print(f"Created endpoint config {resource_name} ({kind})")

    # Record what we created first, so undeploy finds it even if the wait below is interrupted.
    record = json.loads(ENDPOINT_RECORD.read_text()) if ENDPOINT_RECORD.exists() else {}
    created = (
        [*record.get("created", []), resource_name] if record.get("endpoint") == endpoint else [resource_name]
    )
    write_json(
        ENDPOINT_RECORD,
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
    settings, session, _account = open_aws()
    endpoint = settings["endpoint.name"]
    if args.file:
        body, what = Path(args.file).read_bytes(), args.file
    else:
        target = read_hyperparameters(HYPERPARAMETERS_FILE).get("target")
        text, csv_file = sample_rows(DATA_DIR, args.rows, target)
        body, what = text.encode(), f"{len(text.splitlines())} row(s) of {csv_file.relative_to(PROJECT_DIR)}"
    record = json.loads(ENDPOINT_RECORD.read_text()) if ENDPOINT_RECORD.exists() else {}
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
    print(f"Response ({response.get('ContentType', '?')}):")
    print(response["Body"].read().decode(errors="replace").rstrip())
    print("Next: make undeploy when done")
    return 0


def undeploy(args):
    settings, session, _account = open_aws()
    endpoint = settings["endpoint.name"]
    sagemaker = session.client("sagemaker")
    record = json.loads(ENDPOINT_RECORD.read_text()) if ENDPOINT_RECORD.exists() else {}
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
    ENDPOINT_RECORD.unlink(missing_ok=True)
    print("Done. Next: make deploy to serve again")
    return 0


def register(subparsers):
    parser = subparsers.add_parser("deploy", help="Deploy the last trained model to an endpoint")
    parser.add_argument(
        "--serverless", action="store_true", help="a serverless endpoint instead of instances"
    )
    parser.add_argument(
        "--training-job", default="", help="the training job to deploy (default: the last one)"
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
        help=f"a multi-model endpoint of every model in {multi_model.MODELS_DIR}/ (uploaded under one S3 prefix)",
    )
    parser.add_argument("--image", default="", help="with --multi-model: the local image ref pushed at --tag")
    parser.add_argument("--tag", default="", help="with --multi-model: the pushed tag of --image")
    parser.set_defaults(handler=deploy)

    parser = subparsers.add_parser("invoke", help="Send sample rows to the endpoint")
    parser.add_argument("--rows", type=int, default=5, help="how many rows of data/ to send")
    parser.add_argument("--file", default="", help="send this file instead")
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.add_argument(
        "--target-model", default="", help="on a multi-model endpoint: the model (NAME.tar.gz)"
    )
    parser.set_defaults(handler=invoke)

    parser = subparsers.add_parser("undeploy", help="Delete the endpoint, its configs and models")
    parser.set_defaults(handler=undeploy)
