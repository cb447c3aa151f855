"""SageMaker jobs through boto3: remote-process and remote-train (shared checks and waiting: remote.py).

Each job gets the production settings of config/aws.json (VPC, network isolation, KMS keys, tags;
see remote.py) and a training job its checkpoint and spot settings:
  training.checkpoint_s3_uri     empty: s3://<bucket>/<s3_prefix>/checkpoints/<job name>/ (one folder
                                 per job, which a spot job resumes from after an interruption);
                                 an s3:// URI: that folder (share it to resume an earlier job's
                                 checkpoints); "off": no CheckpointConfig
  training.checkpoint_local_path where the container finds and writes them (SAGEMAKER_CHECKPOINT_DIR)
  training.spot / max_wait_seconds  managed spot training, waiting at most max_wait_seconds in all
With network isolation the container cannot reach S3 itself, so the code travels as SageMaker sends
it to an isolated job: sourcedir.tar.gz in the `code` channel (the container reads it from there).
"""

from .metric_definitions import metric_definitions
from .opt_ml import (
    CHECKPOINT_DIR_VARIABLE,
    CODE_CHANNEL,
    CODE_TARBALL_IN_CONTAINER,
    IMAGE_VARIABLE,
    encode_hyperparameters,
    job_name,
    pack_sourcedir,
    read_hyperparameters,
    write_json,
)
from .remote import (
    CODE_DIR,
    DATA_DIR,
    HYPERPARAMETERS_FILE,
    LAST_TRAINING_JOB,
    PROCESSING_CODE_PATH,
    PROCESSING_DATA_PATH,
    PROCESSING_OUTPUT_PATH,
    PROCESSING_SCRIPT,
    check_bucket,
    describe_production,
    follow_job,
    open_aws,
    pushed_image_digest,
    pushed_image_uri,
    s3_key,
    tagged,
    upload_directory,
    upload_file,
    vpc_config,
)
from .settings import BUILD_DIR, CHECKPOINTS_OFF, PROJECT_DIR, SetupError


def production_note(settings):
    note = describe_production(settings)
    if note:
        print(f"  production settings: {note}")


# --- remote-process ------------------------------------------------------------------------------------


def instances(settings, job):
    """A job's instances (ClusterConfig / ResourceConfig): type, count, volume and its KMS key."""
    resources = {
        "InstanceType": settings[f"{job}.instance_type"],
        "InstanceCount": settings[f"{job}.instance_count"],
        "VolumeSizeInGB": settings[f"{job}.volume_size_gb"],
    }
    if settings["kms.volume_key_id"]:
        resources["VolumeKmsKeyId"] = settings["kms.volume_key_id"]
    return resources


def processing_job_request(settings, *, name, image, code_uri, data_uri, output_uri):
    """The CreateProcessingJob parameters: the script as ScriptProcessor(command=["Rscript"]) sends it."""

    def s3_input(input_name, uri, local_path):
        source = {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File"}
        return {"InputName": input_name, "S3Input": {**source, "S3DataDistributionType": "FullyReplicated"}}

    cluster = instances(settings, "processing")
    output_config = {
        "Outputs": [
            {
                "OutputName": "output",
                "S3Output": {
                    "S3Uri": output_uri,
                    "LocalPath": PROCESSING_OUTPUT_PATH,
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    if settings["kms.output_key_id"]:
        output_config["KmsKeyId"] = settings["kms.output_key_id"]
    request = {
        "ProcessingJobName": name,
        "RoleArn": settings["role_arn"],
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["Rscript", f"{PROCESSING_CODE_PATH}/{PROCESSING_SCRIPT}"],
        },
        "ProcessingInputs": [
            s3_input("code", code_uri, PROCESSING_CODE_PATH),
            s3_input("data", data_uri, PROCESSING_DATA_PATH),
        ],
        "ProcessingOutputConfig": output_config,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings["processing.max_runtime_seconds"]},
        **tagged(settings),
    }
    network = {}
    if vpc_config(settings):
        network["VpcConfig"] = vpc_config(settings)
    if settings["network_isolation"]:
        network["EnableNetworkIsolation"] = True
    if network:
        request["NetworkConfig"] = network
    return request


def remote_process(args):
    settings, session, account = open_aws("role_arn", "bucket")
    region, bucket = settings["region"], settings["bucket"]
    script = CODE_DIR / PROCESSING_SCRIPT
    if not script.is_file():
        raise SetupError(f"{script.relative_to(PROJECT_DIR)} is missing: the processing job runs it")
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image_uri(session, account, region, args.image, args.tag)

    name = job_name("processing")
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    code_uri = upload_file(s3, script, bucket, s3_key(job_prefix, "code", PROCESSING_SCRIPT))
    print(f"Uploaded {script.relative_to(PROJECT_DIR)} to {code_uri}")
    data_uri = settings["processing.input_s3_uri"] or upload_directory(
        s3, DATA_DIR, bucket, s3_key(job_prefix, "input")
    )
    output_uri = f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output', name)}/"

    sagemaker = session.client("sagemaker")
    sagemaker.create_processing_job(
        **processing_job_request(
            settings, name=name, image=image, code_uri=code_uri, data_uri=data_uri, output_uri=output_uri
        )
    )
    print(
        f"Created processing job {name} ({image}, {settings['processing.instance_type']}); output: {output_uri}"
    )
    production_note(settings)
    code, description = follow_job(
        "processing", name, lambda: sagemaker.describe_processing_job(ProcessingJobName=name), args.no_wait
    )
    if description and code == 0:
        print(f"Output in {output_uri}. Next: aws s3 ls --recursive {output_uri}")
    return code


# --- remote-train --------------------------------------------------------------------------------------


def local_channels():
    """data/<channel>/ folders: each becomes an input channel of the training job."""
    if not DATA_DIR.is_dir():
        return []
    return sorted(path.name for path in DATA_DIR.iterdir() if path.is_dir() and not path.name.startswith("."))


def checkpoint_s3_uri(settings, name):
    """Where the job's checkpoints go in S3 ("" when they are off)."""
    configured = settings["training.checkpoint_s3_uri"]
    if configured == CHECKPOINTS_OFF:
        return ""
    return configured or f"s3://{settings['bucket']}/{s3_key(settings['s3_prefix'], 'checkpoints', name)}/"


def s3_channel(channel, uri):
    return {
        "ChannelName": channel,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def training_job_request(
    settings, *, name, image, hyperparameters, channels, output_path, checkpoints, image_digest=""
):
    """The CreateTrainingJob parameters (channels: name -> S3 URI; checkpoints: S3 URI or "";
    image_digest: image@sha256:..., kept with the model by the R side)."""
    resources = instances(settings, "training")
    output = {"S3OutputPath": output_path}
    if settings["kms.output_key_id"]:
        output["KmsKeyId"] = settings["kms.output_key_id"]
    stopping = {"MaxRuntimeInSeconds": settings["training.max_runtime_seconds"]}
    local_path = settings["training.checkpoint_local_path"]
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "RoleArn": settings["role_arn"],
        "HyperParameters": hyperparameters,
        "InputDataConfig": [s3_channel(channel, uri) for channel, uri in channels.items()],
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "Environment": {
            CHECKPOINT_DIR_VARIABLE: local_path,
            **({IMAGE_VARIABLE: image_digest} if image_digest else {}),
        },
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


def remote_train(args):
    settings, session, account = open_aws("role_arn", "bucket")
    region, bucket = settings["region"], settings["bucket"]
    entry_point = settings["training.entry_point"]
    if not (CODE_DIR / entry_point).is_file():
        raise SetupError(f"code/{entry_point} is missing: set training.entry_point in config/aws.json")
    hyperparameters = read_hyperparameters(HYPERPARAMETERS_FILE)
    configured_channels = settings["training.channels"]
    channel_names = sorted(set(local_channels()) | set(configured_channels))
    if not channel_names:
        raise SetupError(
            'no input data: add data/<channel>/ folders or set training.channels {"train": "s3://..."}'
        )
    isolated = settings["network_isolation"]
    if isolated and CODE_CHANNEL in channel_names:
        raise SetupError(
            f"a channel may not be named `{CODE_CHANNEL}` with network_isolation: it carries the code"
        )
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image_uri(session, account, region, args.image, args.tag)

    name = job_name("training")
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    tarball = BUILD_DIR / "remote" / name / "sourcedir.tar.gz"
    members = pack_sourcedir(CODE_DIR, tarball)
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
        raise SetupError(f"{HYPERPARAMETERS_FILE.relative_to(PROJECT_DIR)}: {error}") from None

    channels = {}
    for channel in channel_names:
        if channel in configured_channels:
            channels[channel] = configured_channels[channel]
            print(f"Channel {channel}: {channels[channel]} (configured)")
        else:
            channels[channel] = upload_directory(
                s3, DATA_DIR / channel, bucket, s3_key(job_prefix, "input", channel)
            )
    if isolated:
        channels[CODE_CHANNEL] = source_uri
        print(f"Channel {CODE_CHANNEL}: {source_uri} (network isolation: the code travels as a channel)")
    output_path = f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output')}"
    checkpoints = checkpoint_s3_uri(settings, name)

    sagemaker = session.client("sagemaker")
    sagemaker.create_training_job(
        **training_job_request(
            settings,
            name=name,
            image=image,
            hyperparameters=encoded,
            channels=channels,
            output_path=output_path,
            checkpoints=checkpoints,
            image_digest=pushed_image_digest(session, image),
        )
    )
    # deploy reads the job from here (and its image and model.tar.gz from DescribeTrainingJob).
    write_json(
        LAST_TRAINING_JOB, {"job_name": name, "region": region, "image": image, "output_path": output_path}
    )
    print(
        f"Created training job {name} ({image}, {settings['training.instance_type']}); output: {output_path}/{name}/"
    )
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
    code, description = follow_job(
        "training", name, lambda: sagemaker.describe_training_job(TrainingJobName=name), args.no_wait
    )
    if not description:
        print("Next, once it has completed: make deploy")
    elif code == 0:
        print(f"Model: {description.get('ModelArtifacts', {}).get('S3ModelArtifacts')}")
        print("Next: make deploy (or make deploy SERVERLESS=1)")
    return code


def register(subparsers):
    def job_parser(command, help_text):
        parser = subparsers.add_parser(command, help=help_text)
        parser.add_argument(
            "--image", required=True, help="the local image ref (its repository names the ECR one)"
        )
        parser.add_argument("--tag", required=True, help="the pushed tag to run")
        parser.add_argument("--no-wait", action="store_true", help="return once the job is created")
        return parser

    job_parser("remote-process", "Run code/preprocess.R as a SageMaker processing job").set_defaults(
        handler=remote_process
    )
    job_parser("remote-train", "Run a SageMaker training job with code/ and data/").set_defaults(
        handler=remote_train
    )
