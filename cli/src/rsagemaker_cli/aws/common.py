"""What the SageMaker commands share: the production settings as request parameters, waiting for a
job or an endpoint, and SageMaker's way of saying that something does not exist.

The production settings (VPC, network isolation, KMS keys, tags) become request parameters here,
once, so that every job, model and endpoint config gets the same ones.
"""

import sys
import time

POLL_SECONDS = 15
LOG_GROUPS = {
    "processing": "/aws/sagemaker/ProcessingJobs",
    "training": "/aws/sagemaker/TrainingJobs",
    "transform": "/aws/sagemaker/TransformJobs",
}
JOB_DONE = ("Completed", "Failed", "Stopped")
ENDPOINT_DONE = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")
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


# --- production settings as request parameters ------------------------------------------------


def vpc_config(settings):
    """VpcConfig of a job or model ({} without a VPC): the job's network interfaces go there."""
    if not settings["vpc.subnets"]:
        return {}
    return {"Subnets": settings["vpc.subnets"], "SecurityGroupIds": settings["vpc.security_group_ids"]}


def tagged(settings):
    """Tags=... for a Create* call, or nothing when no tags are set (an empty list is refused by some APIs)."""
    tags = [{"Key": key, "Value": value} for key, value in settings["tags"].items()]
    return {"Tags": tags} if tags else {}


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


def production_note(settings):
    note = describe_production(settings)
    if note:
        print(f"  production settings: {note}")


# --- what SageMaker says of a missing resource -------------------------------------------------


def is_not_found(error):
    """SageMaker reports a missing resource as a ValidationException "Could not find ..." (or "not
    found", "does not exist"), some APIs as ResourceNotFound."""
    details = error.response.get("Error", {})
    message = details.get("Message", "").lower()
    return details.get("Code") in ("ValidationException", "ResourceNotFound") and any(
        words in message for words in ("could not find", "not found", "does not exist")
    )


def describe_endpoint(sagemaker, name):
    """DescribeEndpoint, or None when there is no such endpoint."""
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except sagemaker.exceptions.ClientError as error:
        if is_not_found(error):
            return None
        raise


# --- waiting ------------------------------------------------------------------------------------


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
