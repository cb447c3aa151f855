"""`rsagemaker remote-train`: a SageMaker training job with code/ and data/.

The request is the one the SageMaker SDK sends in script mode: code/ packed as sourcedir.tar.gz
(core/opt_ml.py), the hyperparameters JSON-encoded, each data/<channel>/ folder (or a configured
training.channels URI) a channel, the pushed image by digest, the metric definitions, and the
production settings (aws/common.py). A training job also gets its checkpoint and spot settings:
  training.checkpoint_s3_uri     empty: s3://<bucket>/<s3_prefix>/checkpoints/<job name>/ (one folder
                                 per job, which a spot job resumes from after an interruption);
                                 an s3:// URI: that folder (share it to resume an earlier job's
                                 checkpoints); "off": no CheckpointConfig
  training.checkpoint_local_path where the container finds and writes them (SAGEMAKER_CHECKPOINT_DIR)
  training.spot / max_wait_seconds  managed spot training, waiting at most max_wait_seconds in all
With network isolation the container cannot reach S3 itself, so the code travels as SageMaker sends
it to an isolated job: sourcedir.tar.gz in the `code` channel (the container reads it from there).
"""

from ..core.aws import check_bucket, open_aws, pushed_image, s3_key, upload_directory, upload_file
from ..core.checks import CHECKPOINTS_OFF
from ..core.errors import SetupError
from ..core.opt_ml import (
    CHECKPOINT_DIR_VARIABLE,
    CODE_CHANNEL,
    CODE_TARBALL_IN_CONTAINER,
    IMAGE_VARIABLE,
    encode_hyperparameters,
    job_name,
    pack_sourcedir,
    write_json,
)
from .common import follow_job, instances, production_note, tagged, vpc_config
from .processing import job_arguments


def last_training_job(project):
    """The record of the last remote-train: deploy and remote-transform serve its model by default."""
    return project.build / "last-training-job.json"


def local_channels(project):
    """data/<channel>/ folders: each becomes an input channel of the training job."""
    if not project.data.is_dir():
        return []
    return sorted(p.name for p in project.data.iterdir() if p.is_dir() and not p.name.startswith("."))


def checkpoint_s3_uri(settings, name):
    """Where the job's checkpoints go in S3 ("" when they are off)."""
    configured = settings["training.checkpoint_s3_uri"]
    if configured == CHECKPOINTS_OFF:
        return ""
    return configured or f"s3://{settings['bucket']}/{s3_key(settings['s3_prefix'], 'checkpoints', name)}/"


def s3_channel(channel, uri, distribution="FullyReplicated"):
    return {
        "ChannelName": channel,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": distribution,
            }
        },
    }


def training_job_request(settings, *, name, image, hyperparameters, channels, output_path, checkpoints):
    """The CreateTrainingJob parameters (image: an ImageInEcr, run by digest and recorded with the
    model by the R side under both names; channels: name -> S3 URI; checkpoints: S3 URI or "")."""
    resources = instances(settings, "training")
    output = {"S3OutputPath": output_path}
    if settings["kms.output_key_id"]:
        output["KmsKeyId"] = settings["kms.output_key_id"]
    stopping = {"MaxRuntimeInSeconds": settings["training.max_runtime_seconds"]}
    local_path = settings["training.checkpoint_local_path"]
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image.by_digest,
            "TrainingInputMode": "File",
            "MetricDefinitions": settings["training.metric_definitions"],
        },
        "RoleArn": settings["role_arn"],
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            s3_channel(
                channel, uri, settings["training.channel_distribution"].get(channel, "FullyReplicated")
            )
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "Environment": {CHECKPOINT_DIR_VARIABLE: local_path, IMAGE_VARIABLE: image.described},
        **tagged(settings),
    }
    if checkpoints:
        request["CheckpointConfig"] = {"S3Uri": checkpoints, "LocalPath": local_path}
    if settings["training.spot"]:
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = settings["training.max_wait_seconds"]
    if vpc_config(settings):
        request["VpcConfig"] = vpc_config(settings)
    if settings["network_isolation"]:
        request["EnableNetworkIsolation"] = True
    return request


def prepare_training(project, settings, session, account, args, name, hyperparameters):
    """Checks, then code/ and data/ uploaded under jobs/<name>/: the keyword arguments of
    training_job_request() for a job (remote-train) or a tuning job's trials (tune, aws/tuning.py)."""
    region, bucket = settings["region"], settings["bucket"]
    entry_point = settings["training.entry_point"]
    if not (project.code / entry_point).is_file():
        raise SetupError(f"code/{entry_point} is missing: set training.entry_point in config/aws.json")
    configured_channels = settings["training.channels"]
    channel_names = sorted(set(local_channels(project)) | set(configured_channels))
    if not channel_names:
        raise SetupError(
            'no input data: add data/<channel>/ folders or set training.channels {"train": "s3://..."}'
        )
    unknown = sorted(set(settings["training.channel_distribution"]) - set(channel_names))
    if unknown:
        raise SetupError(
            f"training.channel_distribution names {', '.join(unknown)}, not a channel of this job "
            f"({', '.join(channel_names)})"
        )
    isolated = settings["network_isolation"]
    if isolated and CODE_CHANNEL in channel_names:
        raise SetupError(
            f"a channel may not be named `{CODE_CHANNEL}` with network_isolation: it carries the code"
        )
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image(session, account, region, args.image, args.tag)

    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    tarball = project.build / "remote" / name / "sourcedir.tar.gz"
    members = pack_sourcedir(project.code, tarball)
    source_uri = upload_file(s3, tarball, bucket, s3_key(job_prefix, "source", "sourcedir.tar.gz"))
    print(f"Packed code/ ({len(members)} files) and uploaded it to {source_uri}")
    try:
        encoded = encode_hyperparameters(
            hyperparameters,
            program=entry_point,
            # An isolated container cannot download from S3: SageMaker puts the tarball in the channel.
            submit_directory=CODE_TARBALL_IN_CONTAINER if isolated else source_uri,
            job_name=name,
            region=region,
        )
    except ValueError as error:
        raise SetupError(f"{project.show(project.hyperparameters_file)}: {error}") from None

    channels = {}
    for channel in channel_names:
        if channel in configured_channels:
            channels[channel] = configured_channels[channel]
            print(f"Channel {channel}: {channels[channel]} (configured)")
        else:
            channels[channel] = upload_directory(
                s3,
                project.data / channel,
                bucket,
                s3_key(job_prefix, "input", channel),
                shown=f"data/{channel}",
            )
    if isolated:
        channels[CODE_CHANNEL] = source_uri
        print(f"Channel {CODE_CHANNEL}: {source_uri} (network isolation: the code travels as a channel)")
    return {
        "name": name,
        "image": image,
        "hyperparameters": encoded,
        "channels": channels,
        "output_path": f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output')}",
        "checkpoints": checkpoint_s3_uri(settings, name),
    }


def training_settings_note(settings, checkpoints):
    """The lines saying where checkpoints go, spot and the production settings (remote-train, tune)."""
    local_path = settings["training.checkpoint_local_path"]
    if checkpoints:
        print(f"  checkpoints: {local_path} in the container <-> {checkpoints}")
    else:
        print(
            f"  checkpoints: off (training.checkpoint_s3_uri is {CHECKPOINTS_OFF!r}); {local_path} is not kept"
        )
    if settings["training.spot"]:
        print(f"  managed spot training: waits at most {settings['training.max_wait_seconds']} s in all")
        if not checkpoints:
            print("  note: a spot job without checkpoints starts over after each interruption")
    production_note(settings)


def remote_train(args):
    project = args.project
    settings, session, account = open_aws(project, "role_arn", "bucket")
    region = settings["region"]
    name = job_name(project.name, "training")
    prepared = prepare_training(project, settings, session, account, args, name, project.hyperparameters())
    image, output_path, checkpoints = prepared["image"], prepared["output_path"], prepared["checkpoints"]

    sagemaker = session.client("sagemaker")
    sagemaker.create_training_job(**training_job_request(settings, **prepared))
    # deploy reads the job from here (and its image and model.tar.gz from DescribeTrainingJob).
    record = {"job_name": name, "region": region, "image": image.by_digest, "output_path": output_path}
    write_json(last_training_job(project), record)
    args.result = {"job_name": name, "status": None, "image": image.by_digest, "output_path": output_path}
    print(
        f"Created training job {name} ({image.described}, {settings['training.instance_type']}); "
        f"output: {output_path}/{name}/"
    )
    training_settings_note(settings, checkpoints)
    code, description = follow_job(
        "training", name, lambda: sagemaker.describe_training_job(TrainingJobName=name), args.no_wait
    )
    if description:
        args.result.update(job_description(description))
    if not description:
        print("Next, once it has completed: make deploy")
    elif code == 0:
        print(f"Model: {description.get('ModelArtifacts', {}).get('S3ModelArtifacts')}")
        print("Next: make deploy (or make deploy SERVERLESS=1)")
    return code


def job_description(description):
    """What --json reports of a finished training job: its ARN, status, model and final metrics."""
    return {
        "job_arn": description.get("TrainingJobArn"),
        "status": description.get("TrainingJobStatus"),
        "failure_reason": description.get("FailureReason"),
        "model_data": description.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
        "metrics": [
            {"name": m.get("MetricName"), "value": m.get("Value"), "timestamp": m.get("Timestamp")}
            for m in description.get("FinalMetricDataList", [])
        ],
    }


remote_train_arguments = job_arguments
