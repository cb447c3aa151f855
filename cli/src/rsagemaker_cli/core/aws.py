"""What the SageMaker commands share: checks before anything is created, S3, waiting, production settings.

The commands themselves live by job: jobs.py (remote-process, remote-train), endpoints.py (deploy,
invoke, undeploy), async_inference.py (invoke-async), autoscaling.py (autoscale) and transform.py
(remote-transform). Role, bucket, region and instance types come from config/aws.json or the
environment (settings.py); each command checks them, the credentials, the bucket and the image in ECR
before it uploads or creates anything. Uploads go to s3://<bucket>/<s3_prefix>/jobs/<job name>/, job
outputs to s3://<bucket>/<s3_prefix>/output/. The jobs use the image pushed by `make push` (same TAG).

The production settings (VPC, network isolation, KMS keys, tags) are turned into request parameters
here, once, so that every job, model and endpoint config gets the same ones.
"""

import sys
import time
from pathlib import Path

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
    "transform": "/aws/sagemaker/TransformJobs",
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
    if tag.endswith("-dirty"):
        raise SetupError(
            f"TAG {tag} marks uncommitted changes and is never pushed: commit them (then make push), "
            "or build and push under a name of your own (make build push TAG=<name>)"
        )
    if not image_in_ecr(session, uri):
        raise SetupError(f"{uri} is not in ECR: run `make push` first (with the same TAG)")
    return uri


def pushed_image_digest(session, uri):
    """uri@digest for a pushed repository:tag URI: the image a job runs, whatever the tag names later."""
    repository, tag = split_ref(uri.split("/", 1)[1])
    details = session.client("ecr").describe_images(
        repositoryName=repository, imageIds=[{"imageTag": tag or "latest"}]
    )["imageDetails"]
    return f"{uri}@{details[0]['imageDigest']}"


def image_in_ecr(session, uri):
    """Whether an ECR image URI (repository:tag or repository@sha256:...) is there."""
    path = uri.split("/", 1)[1]
    if "@" in path:
        repository, digest = path.split("@", 1)
        image_id = {"imageDigest": digest}
    else:
        repository, tag = split_ref(path)
        image_id = {"imageTag": tag or "latest"}
    ecr = session.client("ecr")
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[image_id])
    except (ecr.exceptions.RepositoryNotFoundException, ecr.exceptions.ImageNotFoundException):
        return False
    return True


# --- production settings as request parameters -------------------------------------------------------


def vpc_config(settings):
    """VpcConfig of a training job or model ({} without a VPC): the job's network interfaces go there."""
    if not settings["vpc.subnets"]:
        return {}
    return {"Subnets": settings["vpc.subnets"], "SecurityGroupIds": settings["vpc.security_group_ids"]}


def aws_tags(settings):
    """The `tags` setting as the Tags parameter of every Create* call."""
    return [{"Key": key, "Value": value} for key, value in settings["tags"].items()]


def tagged(settings):
    """Tags=... for a Create* call, or nothing when no tags are set (an empty list is refused by some APIs)."""
    tags = aws_tags(settings)
    return {"Tags": tags} if tags else {}


def describe_production(settings):
    """One line saying which production settings a resource gets, for the command's output."""
    parts = []
    if settings["vpc.subnets"]:
        parts.append(f"VPC subnets {','.join(settings['vpc.subnets'])}")
    if settings["network_isolation"]:
        parts.append("network isolation")
    if settings["kms.volume_key_id"]:
        parts.append("volume KMS key")
    if settings["kms.output_key_id"]:
        parts.append("output KMS key")
    if settings["tags"]:
        parts.append(f"tags {', '.join(settings['tags'])}")
    return "; ".join(parts)


# --- S3 and the progress line -----------------------------------------------------------------


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
    "transform": ("TransformJobName", "TransformJobStatus", "describe-transform-job --transform-job-name"),
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
