"""What a model serves, decided in one place for deploy and remote-transform: what_to_deploy().

By default the model of the last training job (or --training-job NAME) in the very image that
trained it, so a later commit or push never changes the R that reads model.rds; the registry's latest
Approved model package (or --model-package ARN) brings the image it was registered with; --tuning-job
NAME takes the best training job of a tuning job (aws/tuning.py); --image-uri
(make deploy IMAGE=...) serves the model in another image. An image of this account's ECR is always
named by digest in the model (pin_to_digest): a tag pushed again later cannot change what an
endpoint serves or scales out with. --multi-model serves every model of build/models/ from one S3
prefix, s3://<bucket>/<s3_prefix>/multi-model/<endpoint name>/ (multi_model_deployable()).
"""

import json
from dataclasses import dataclass, replace

from ..core.aws import check_bucket, parse_image_uri, pin_to_digest, pushed_image, s3_key
from ..core.errors import SetupError
from ..core.opt_ml import IMAGE_VARIABLE
from ..core.project import MODELS_DIR, model_tarballs
from .common import is_not_found, tagged, vpc_config
from .registry import approved_package
from .training import last_training_job
from .tuning import best_training_job

S3_FOLDER = "multi-model"


@dataclass(frozen=True)
class Deployable:
    """What an endpoint serves, and where each part came from (printed, and kept in build/endpoint.json)."""

    image: str
    model_data: str
    model_source: str  # e.g. "training job myproject-training-20250101-120000-000"
    image_source: str  # e.g. "the image that trained it"
    target_models: tuple = ()  # a multi-model endpoint's models (TargetModel values)


def training_image(description):
    """The image a training job ran, by digest when it is known: the job's TrainingImage, or for a job
    started by tag the digest remote-train recorded in its environment (R_SAGEMAKER_IMAGE)."""
    image = description["AlgorithmSpecification"]["TrainingImage"]
    recorded = description.get("Environment", {}).get(IMAGE_VARIABLE, "")
    if "@" not in image and "@sha256:" in recorded:
        registry, repository, _tag, _digest = parse_image_uri(image)
        return f"{registry}/{repository}@{recorded.rsplit('@', 1)[1]}"
    return image


def from_training_job(project, sagemaker, named):
    """The model of a Completed training job (the last one by default), in the image that trained it."""
    if not named:
        record = last_training_job(project)
        if not record.exists():
            raise SetupError(
                "no training job to deploy: run `make remote-train` first, or pass --training-job NAME"
            )
        named = json.loads(record.read_text())["job_name"]
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
        image=training_image(description),
        model_data=description["ModelArtifacts"]["S3ModelArtifacts"],
        model_source=f"training job {named}",
        image_source="the image that trained it",
    )


def from_model_package(project, sagemaker, named):
    """The named model package, else the registry's latest Approved one; None without a registry."""
    package = approved_package(sagemaker, project.resource_name, named)
    if package is None:
        return None
    return Deployable(
        image=package["image"],
        model_data=package["model_data"],
        model_source=f"model package {package['arn']}",
        image_source="the image the package records",
    )


def by_digest(session, account, region, deployable):
    """The deployable with its image named by digest; SetupError when the image is gone from ECR."""
    pinned = pin_to_digest(session, account, region, deployable.image)
    if pinned is None:
        raise SetupError(
            f"{deployable.image} ({deployable.image_source}, {deployable.model_source}) is not in ECR any more: "
            "push it again from its commit (make build push TAG=<that tag>), or serve another: make deploy IMAGE=<uri>"
        )
    return replace(deployable, image=pinned)


def what_to_deploy(project, session, account, region, sagemaker, args):
    """The image (by digest) and model data to serve, and where they came from (see the docstring)."""
    tuning_job = getattr(args, "tuning_job", "")  # deploy TUNING_JOB=name: its best training job
    training_job = args.training_job or (best_training_job(sagemaker, tuning_job) if tuning_job else "")
    deployable = None if training_job else from_model_package(project, sagemaker, args.model_package)
    if deployable is None:
        deployable = from_training_job(project, sagemaker, training_job)
        if tuning_job and not args.training_job:
            deployable = replace(
                deployable, model_source=f"best {deployable.model_source} of tuning job {tuning_job}"
            )
    if args.image_uri:
        deployable = replace(deployable, image=args.image_uri, image_source="--image-uri (IMAGE=...)")
    return by_digest(session, account, region, deployable)


def multi_model_deployable(project, session, account, region, settings, args):
    """MULTI_MODEL=1: every model of build/models/ uploaded under one S3 prefix (the ModelDataUrl of a
    Mode=MultiModel container), served by the pushed training image (TAG) or --image-uri."""
    if args.serverless:
        raise SetupError(
            "a serverless endpoint cannot be multi-model (SageMaker serves those on instances only)"
        )
    settings.require("bucket")
    tarballs = model_tarballs(project.root)
    if args.image_uri:
        image, image_source = args.image_uri, "--image-uri (IMAGE=...)"
    elif args.image:
        image, image_source = (
            pushed_image(session, account, region, args.image, args.tag).by_digest,
            f"pushed, TAG {args.tag}",
        )
    else:
        raise SetupError(
            "name the serving image: --image REF --tag TAG (make deploy does) or --image-uri URI"
        )
    source = f"{len(tarballs)} model(s) of {MODELS_DIR}/, multi-model"
    image = by_digest(session, account, region, Deployable(image, "", source, image_source)).image
    s3 = session.client("s3")
    bucket = settings["bucket"]
    check_bucket(s3, bucket, region)
    prefix_key = s3_key(settings["s3_prefix"], S3_FOLDER, settings["endpoint.name"])
    for tarball in tarballs:
        s3.upload_file(str(tarball), bucket, f"{prefix_key}/{tarball.name}")
        print(f"Uploaded {MODELS_DIR}/{tarball.name} to s3://{bucket}/{prefix_key}/{tarball.name}")
    return Deployable(
        image=image,
        model_data=f"s3://{bucket}/{prefix_key}/",
        model_source=source,
        image_source=image_source,
        target_models=tuple(tarball.name for tarball in tarballs),
    )


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
