"""Jobs on SageMaker through boto3: remote-process, remote-train, deploy, invoke, undeploy.

Role, bucket, region and instance types come from config/aws.json or the environment (settings.py);
each command checks them, the credentials, the bucket and the image in ECR before it uploads or
creates anything. Uploads go to s3://<bucket>/<s3_prefix>/jobs/<job name>/, job outputs to
s3://<bucket>/<s3_prefix>/output/. The jobs use the image pushed by `make push` (same TAG).
"""

import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import settings as settings_module
from .metric_definitions import metric_definitions
from .opt_ml import encode_hyperparameters, pack_sourcedir, read_hyperparameters, sample_rows, write_json
from .settings import (
    BUILD_DIR,
    PROJECT_DIR,
    SetupError,
    connect,
    ecr_registry,
    load,
    split_ref,
)

CODE_DIR = PROJECT_DIR / "code"
DATA_DIR = PROJECT_DIR / "data"
HYPERPARAMETERS_FILE = PROJECT_DIR / "config" / "hyperparameters.json"
LAST_TRAINING_JOB = BUILD_DIR / "last-training-job.json"
ENDPOINT_RECORD = BUILD_DIR / "endpoint.json"

PROCESSING_SCRIPT = "preprocess.R"
PROCESSING_CODE_PATH = "/opt/ml/processing/input/code"
PROCESSING_DATA_PATH = "/opt/ml/processing/input/data"
PROCESSING_OUTPUT_PATH = "/opt/ml/processing/output"

POLL_SECONDS = 15
LOG_GROUPS = {
    "processing": "/aws/sagemaker/ProcessingJobs",
    "training": "/aws/sagemaker/TrainingJobs",
}
JOB_DONE = ("Completed", "Failed", "Stopped")
ENDPOINT_DONE = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")


# --- checks before anything is uploaded or created ---------------------------------------------------


def open_aws(*required):
    """Settings (with the required ones set), boto3 session and account: everything checked up front."""
    settings = load()
    settings.require("region", *required)
    session, account = connect(settings)
    return settings, session, account


def check_bucket(s3, bucket, region):
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise SetupError(
                f"S3 bucket {bucket} does not exist: create it (aws s3 mb s3://{bucket} --region {region}) "
                'or set SAGEMAKER_BUCKET / config/aws.json "bucket" to one that does'
            ) from None
        raise SetupError(
            f"S3 bucket {bucket} is not accessible with these credentials (HTTP {status})"
        ) from None


def pushed_image_uri(session, account, region, ref, tag):
    """The ECR URI of a local image ref at tag; fails unless `make push` has put it there."""
    repository = split_ref(ref)[0]
    uri = f"{ecr_registry(account, region)}/{repository}:{tag}"
    ecr = session.client("ecr")
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except (ecr.exceptions.RepositoryNotFoundException, ecr.exceptions.ImageNotFoundException):
        raise SetupError(f"{uri} is not in ECR: run `make push` first (with the same TAG)") from None
    return uri


# --- names, S3 and the progress line -----------------------------------------------------------------


def unique_name(base):
    """<base>-<UTC time to the millisecond>, within SageMaker's 63 letters, digits and hyphens."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")
    return f"{base[: 62 - len(stamp)]}-{stamp}"


def job_name(ref):
    """A job is named after its image's repository, e.g. myproject-training-20250101-120000-000."""
    return unique_name(split_ref(ref)[0].rsplit("/", 1)[-1])


def s3_key(*parts):
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


def upload_file(s3, path, bucket, key):
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def upload_directory(s3, directory, bucket, prefix):
    """Upload every file under directory to s3://bucket/prefix/; returns the prefix URI."""
    files = sorted(path for path in Path(directory).rglob("*") if path.is_file())
    if not files:
        raise SetupError(f"{directory} holds no files to upload")
    for path in files:
        s3.upload_file(str(path), bucket, s3_key(prefix, path.relative_to(directory).as_posix()))
    uri = f"s3://{bucket}/{s3_key(prefix)}/"
    size_kb = sum(path.stat().st_size for path in files) / 1024
    print(
        f"Uploaded {len(files)} file(s), {size_kb:.0f} KB, from {Path(directory).relative_to(PROJECT_DIR)} to {uri}"
    )
    return uri


def wait_for(describe, status_key, done, label, hint):
    """Poll until a terminal status: one line per change (in place on a terminal); returns the description."""
    started = time.monotonic()
    last = None
    on_terminal = sys.stdout.isatty()
    try:
        while True:
            description = describe()
            status = description[status_key]
            detail = description.get("SecondaryStatus")
            state = f"{status} ({detail})" if detail and detail != status else status
            elapsed = int(time.monotonic() - started)
            line = f"  {label}: {state}  [{elapsed // 60:02d}:{elapsed % 60:02d}]"
            if on_terminal:
                print(f"\r{line}\033[K", end="" if status not in done else "\n", flush=True)
            elif state != last:
                print(line, flush=True)
            last = state
            if status in done:
                return description
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print(f"\nStopped waiting; {label} goes on. {hint}", file=sys.stderr)
        raise


# Per kind of job: the Describe* fields of its name and status, and the aws CLI call that follows it.
JOB_FIELDS = {
    "processing": (
        "ProcessingJobName",
        "ProcessingJobStatus",
        "describe-processing-job --processing-job-name",
    ),
    "training": ("TrainingJobName", "TrainingJobStatus", "describe-training-job --training-job-name"),
}


def follow_job(kind, name, describe, no_wait):
    """Wait for a job and report its outcome; returns (exit code, description), or (0, None) with no_wait."""
    name_key, status_key, cli = JOB_FIELDS[kind]
    hint = f"Follow it: aws sagemaker {cli} {name}"
    if no_wait:
        print(hint)
        return 0, None
    description = wait_for(describe, status_key, JOB_DONE, f"{kind} job {name}", hint)
    return report_job(kind, description, name_key, status_key), description


def report_job(kind, description, name_key, status_key):
    """The outcome line, the failure reason and where the logs are; returns the exit code."""
    name = description[name_key]
    status = description[status_key]
    group = LOG_GROUPS[kind]
    if status == "Completed":
        print(f"{kind.capitalize()} job {name} completed.")
    else:
        reason = description.get("FailureReason") or description.get("ExitMessage") or "no reason given"
        print(f"{kind.capitalize()} job {name} {status.lower()}: {reason}", file=sys.stderr)
    print(f"Logs: CloudWatch log group {group}, streams {name}/...")
    print(f"  aws logs tail {group} --log-stream-name-prefix {name} --follow")
    return 0 if status == "Completed" else 1


# --- remote-process ------------------------------------------------------------------------------------


def remote_process(args):
    settings, session, account = open_aws("role_arn", "bucket")
    region, bucket = settings["region"], settings["bucket"]
    script = CODE_DIR / PROCESSING_SCRIPT
    if not script.is_file():
        raise SetupError(f"{script.relative_to(PROJECT_DIR)} is missing: the processing job runs it")
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image_uri(session, account, region, args.image, args.tag)

    name = job_name(args.image)
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    code_uri = upload_file(s3, script, bucket, s3_key(job_prefix, "code", PROCESSING_SCRIPT))
    print(f"Uploaded {script.relative_to(PROJECT_DIR)} to {code_uri}")
    data_uri = settings["processing.input_s3_uri"] or upload_directory(
        s3, DATA_DIR, bucket, s3_key(job_prefix, "input")
    )
    output_uri = f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output', name)}/"

    def s3_input(input_name, uri, local_path):
        source = {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File"}
        return {"InputName": input_name, "S3Input": {**source, "S3DataDistributionType": "FullyReplicated"}}

    sagemaker = session.client("sagemaker")
    sagemaker.create_processing_job(
        ProcessingJobName=name,
        RoleArn=settings["role_arn"],
        # As ScriptProcessor(command=["Rscript"]) does: the script arrives as the `code` input.
        AppSpecification={
            "ImageUri": image,
            "ContainerEntrypoint": ["Rscript", f"{PROCESSING_CODE_PATH}/{PROCESSING_SCRIPT}"],
        },
        ProcessingInputs=[
            s3_input("code", code_uri, PROCESSING_CODE_PATH),
            s3_input("data", data_uri, PROCESSING_DATA_PATH),
        ],
        ProcessingOutputConfig={
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
        },
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": settings["processing.instance_count"],
                "InstanceType": settings["processing.instance_type"],
                "VolumeSizeInGB": settings["processing.volume_size_gb"],
            }
        },
        StoppingCondition={"MaxRuntimeInSeconds": settings["processing.max_runtime_seconds"]},
    )
    print(
        f"Created processing job {name} ({image}, {settings['processing.instance_type']}); output: {output_uri}"
    )
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
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image_uri(session, account, region, args.image, args.tag)

    name = job_name(args.image)
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    tarball = BUILD_DIR / "remote" / name / "sourcedir.tar.gz"
    members = pack_sourcedir(CODE_DIR, tarball)
    source_uri = upload_file(s3, tarball, bucket, s3_key(job_prefix, "source", "sourcedir.tar.gz"))
    print(f"Packed code/ ({len(members)} files) and uploaded it to {source_uri}")
    try:
        encoded = encode_hyperparameters(
            hyperparameters, program=entry_point, submit_directory=source_uri, job_name=name, region=region
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
    output_path = f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output')}"

    sagemaker = session.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        RoleArn=settings["role_arn"],
        HyperParameters=encoded,
        InputDataConfig=[
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in channels.items()
        ],
        OutputDataConfig={"S3OutputPath": output_path},
        ResourceConfig={
            "InstanceType": settings["training.instance_type"],
            "InstanceCount": settings["training.instance_count"],
            "VolumeSizeInGB": settings["training.volume_size_gb"],
        },
        StoppingCondition={"MaxRuntimeInSeconds": settings["training.max_runtime_seconds"]},
    )
    # deploy reads the job from here (and its model.tar.gz from DescribeTrainingJob).
    write_json(
        LAST_TRAINING_JOB, {"job_name": name, "region": region, "image": image, "output_path": output_path}
    )
    print(
        f"Created training job {name} ({image}, {settings['training.instance_type']}); output: {output_path}/{name}/"
    )
    code, description = follow_job(
        "training", name, lambda: sagemaker.describe_training_job(TrainingJobName=name), args.no_wait
    )
    if not description:
        print("Next, once it has completed: make deploy")
    elif code == 0:
        print(f"Model: {description.get('ModelArtifacts', {}).get('S3ModelArtifacts')}")
        print("Next: make deploy (or make deploy SERVERLESS=1)")
    return code


# --- deploy / invoke / undeploy ------------------------------------------------------------------------


def training_job_to_deploy(sagemaker, named):
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
    return named, description["ModelArtifacts"]["S3ModelArtifacts"]


def model_to_deploy(sagemaker, session, account, region, args):
    """What deploy serves: (image, model data, where they come from).

    A model package (--model-package ARN, or the registry's latest Approved version once the project
    has a model package group) brings the image it was registered with; otherwise the training job
    (--training-job, or the last remote-train) is served with the image pushed at --tag.
    """
    from .registry import MODEL_PACKAGE_GROUP, approved_package

    if not args.training_job:
        package = approved_package(sagemaker, MODEL_PACKAGE_GROUP, args.model_package)
        if package:
            return package["image"], package["model_data"], f"model package {package['arn']}"
    training_job, model_data = training_job_to_deploy(sagemaker, args.training_job)
    image = pushed_image_uri(session, account, region, args.image, args.tag)
    return image, model_data, f"training job {training_job}"


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


def deploy(args):
    settings, session, account = open_aws("role_arn")
    region = settings["region"]
    sagemaker = session.client("sagemaker")
    image, model_data, source = model_to_deploy(sagemaker, session, account, region, args)
    endpoint = settings["endpoint.name"]
    resource_name = unique_name(endpoint)  # the model and its endpoint config

    sagemaker.create_model(
        ModelName=resource_name,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_data},
        ExecutionRoleArn=settings["role_arn"],
    )
    print(f"Created model {resource_name}: {image} with {model_data} (from {source})")
    variant = {"VariantName": "AllTraffic", "ModelName": resource_name}
    if args.serverless:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings["endpoint.serverless_memory_mb"],
            "MaxConcurrency": settings["endpoint.serverless_max_concurrency"],
        }
        kind = f"serverless, {settings['endpoint.serverless_memory_mb']} MB"
    else:
        variant.update(
            InstanceType=settings["endpoint.instance_type"],
            InitialInstanceCount=settings["endpoint.instance_count"],
            InitialVariantWeight=1.0,
        )
        kind = f"{settings['endpoint.instance_count']} x {settings['endpoint.instance_type']}"
    sagemaker.create_endpoint_config(EndpointConfigName=resource_name, ProductionVariants=[variant])
    print(f"Created endpoint config {resource_name} ({kind})")

    # Record what we created first, so undeploy finds it even if the wait below is interrupted.
    record = json.loads(ENDPOINT_RECORD.read_text()) if ENDPOINT_RECORD.exists() else {}
    created = (
        [*record.get("created", []), resource_name] if record.get("endpoint") == endpoint else [resource_name]
    )
    write_json(ENDPOINT_RECORD, {"endpoint": endpoint, "region": region, "created": created})
    if describe_endpoint(sagemaker, endpoint):
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=resource_name)
        print(f"Updating endpoint {endpoint} to {resource_name} (it keeps serving the old model meanwhile)")
    else:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=resource_name)
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
    print("Next: make invoke; make undeploy when done (an instance endpoint bills every hour it runs)")
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
    response = session.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, ContentType=args.content_type, Accept=args.accept, Body=body
    )
    print(f"Sent {what} ({args.content_type}) to endpoint {endpoint}:")
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
    settings_module.register(subparsers)

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
    parser = job_parser("deploy", "Deploy the last trained model to an endpoint")
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
    parser.set_defaults(handler=deploy)

    parser = subparsers.add_parser("invoke", help="Send sample rows to the endpoint")
    parser.add_argument("--rows", type=int, default=5, help="how many rows of data/ to send")
    parser.add_argument("--file", default="", help="send this file instead")
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.set_defaults(handler=invoke)

    parser = subparsers.add_parser("undeploy", help="Delete the endpoint, its configs and models")
    parser.set_defaults(handler=undeploy)
