"""Every setting of the AWS commands, its one default, and where each value comes from.

SETTINGS below is the one home of every setting and its default. A project's config/aws.json holds
what its owner sets (the template writes the region, the S3 prefix and the endpoint name there);
a non-empty environment variable wins over the file. `rsagemaker settings` prints every setting
with its value and where that came from (default, config/aws.json or $VARIABLE).

Two defaults come from the project itself: s3_prefix is the project's name (PROJECT in its
Makefile) and endpoint.name that name as SageMaker spells resources (letters, digits, hyphens).
The values are checked for their kind by checks.py, the rules between settings by check_together().
"""

import json
import os
from dataclasses import dataclass

from .checks import convert
from .errors import SetupError

# Defaults that depend on the project (functions of core.project.Project).
PROJECT_NAME = "<the project's name>"
RESOURCE_NAME = "<the project's name as a SageMaker resource name>"
# The sample train.R prints e.g. "train_accuracy=0.9750;" and, with a validation channel,
# "validation_accuracy=0.9583;": SageMaker records each match as a metric of the training job
# (remote-train and the pipeline's training step send these; set your own for your train.R).
SAMPLE_METRICS = [
    {"Name": "train:accuracy", "Regex": r"train_accuracy=([0-9.]+);"},
    {"Name": "validation:accuracy", "Regex": r"validation_accuracy=([0-9.]+);"},
]


@dataclass(frozen=True)
class Setting:
    key: str  # the key in config/aws.json, "section.name" for a key inside an object
    variables: tuple  # environment variables that override it, the first one named in messages
    default: object
    kind: str  # what checks.convert() accepts


SETTINGS = (
    Setting("region", ("AWS_REGION", "AWS_DEFAULT_REGION"), "", "region"),
    Setting("role_arn", ("SAGEMAKER_ROLE_ARN",), "", "role"),
    Setting("bucket", ("SAGEMAKER_BUCKET",), "", "bucket"),
    Setting("s3_prefix", ("SAGEMAKER_S3_PREFIX",), PROJECT_NAME, "prefix"),
    Setting("ecr.tag_mutability", ("ECR_TAG_MUTABILITY",), "MUTABLE", "mutability"),
    Setting("ecr.scan_on_push", ("ECR_SCAN_ON_PUSH",), True, "bool"),
    Setting("ecr.expire_untagged_after_days", ("ECR_EXPIRE_UNTAGGED_AFTER_DAYS",), 14, "count"),
    Setting("processing.instance_type", ("SAGEMAKER_PROCESSING_INSTANCE_TYPE",), "ml.t3.medium", "instance"),
    Setting("processing.instance_count", ("SAGEMAKER_PROCESSING_INSTANCE_COUNT",), 1, "count"),
    Setting("processing.volume_size_gb", ("SAGEMAKER_PROCESSING_VOLUME_SIZE_GB",), 30, "count"),
    Setting("processing.max_runtime_seconds", ("SAGEMAKER_PROCESSING_MAX_RUNTIME_SECONDS",), 3600, "count"),
    # Empty: data/ is uploaded for each job.
    Setting("processing.input_s3_uri", ("SAGEMAKER_PROCESSING_INPUT_S3_URI",), "", "s3uri"),
    # How the `data` input reaches the instances: FullyReplicated (each gets every file) or
    # ShardedByS3Key (each gets its share of the files); the `code` input always goes to each.
    Setting(
        "processing.data_distribution",
        ("SAGEMAKER_PROCESSING_DATA_DISTRIBUTION",),
        "FullyReplicated",
        "distribution",
    ),
    Setting("training.entry_point", ("SAGEMAKER_TRAINING_ENTRY_POINT",), "train.R", "str"),
    Setting("training.instance_type", ("SAGEMAKER_TRAINING_INSTANCE_TYPE",), "ml.m5.large", "instance"),
    Setting("training.instance_count", ("SAGEMAKER_TRAINING_INSTANCE_COUNT",), 1, "count"),
    Setting("training.volume_size_gb", ("SAGEMAKER_TRAINING_VOLUME_SIZE_GB",), 30, "count"),
    Setting("training.max_runtime_seconds", ("SAGEMAKER_TRAINING_MAX_RUNTIME_SECONDS",), 3600, "count"),
    # Channel name -> s3:// URI, used as it is; the data/<channel>/ folders are uploaded.
    Setting("training.channels", ("SAGEMAKER_TRAINING_CHANNELS",), {}, "channels"),
    # Channel name -> FullyReplicated or ShardedByS3Key; a channel not named here is FullyReplicated.
    Setting(
        "training.channel_distribution", ("SAGEMAKER_TRAINING_CHANNEL_DISTRIBUTION",), {}, "distributions"
    ),
    Setting(
        "training.metric_definitions",
        ("SAGEMAKER_TRAINING_METRIC_DEFINITIONS",),
        SAMPLE_METRICS,
        "metric_definitions",
    ),
    # Empty: s3://<bucket>/<s3_prefix>/checkpoints/<job name>/ (one folder per job, which a spot
    # job resumes from); an s3:// URI: that folder (to resume an earlier job's); "off": none.
    Setting("training.checkpoint_s3_uri", ("SAGEMAKER_TRAINING_CHECKPOINT_S3_URI",), "", "checkpoint"),
    Setting(
        "training.checkpoint_local_path",
        ("SAGEMAKER_TRAINING_CHECKPOINT_LOCAL_PATH",),
        "/opt/ml/checkpoints",
        "abspath",
    ),
    Setting("training.spot", ("SAGEMAKER_TRAINING_SPOT",), False, "bool"),
    Setting("training.max_wait_seconds", ("SAGEMAKER_TRAINING_MAX_WAIT_SECONDS",), 7200, "count"),
    Setting("endpoint.name", ("SAGEMAKER_ENDPOINT_NAME",), RESOURCE_NAME, "name"),
    Setting("endpoint.instance_type", ("SAGEMAKER_ENDPOINT_INSTANCE_TYPE",), "ml.t2.medium", "instance"),
    Setting("endpoint.instance_count", ("SAGEMAKER_ENDPOINT_INSTANCE_COUNT",), 1, "count"),
    Setting("endpoint.serverless_memory_mb", ("SAGEMAKER_ENDPOINT_SERVERLESS_MEMORY_MB",), 2048, "count"),
    Setting(
        "endpoint.serverless_max_concurrency", ("SAGEMAKER_ENDPOINT_SERVERLESS_MAX_CONCURRENCY",), 5, "count"
    ),
    # Asynchronous endpoints (make deploy ASYNC=1, make invoke-async); empty S3 URIs mean
    # s3://<bucket>/<s3_prefix>/async/{output,failures}/.
    Setting("async.output_s3_uri", ("SAGEMAKER_ASYNC_OUTPUT_S3_URI",), "", "s3uri"),
    Setting("async.failure_s3_uri", ("SAGEMAKER_ASYNC_FAILURE_S3_URI",), "", "s3uri"),
    Setting("async.success_topic_arn", ("SAGEMAKER_ASYNC_SUCCESS_TOPIC_ARN",), "", "sns"),
    Setting("async.error_topic_arn", ("SAGEMAKER_ASYNC_ERROR_TOPIC_ARN",), "", "sns"),
    Setting(
        "async.max_concurrent_invocations_per_instance",
        ("SAGEMAKER_ASYNC_MAX_CONCURRENT_INVOCATIONS",),
        4,
        "count",
    ),
    Setting(
        "async.invocation_timeout_seconds", ("SAGEMAKER_ASYNC_INVOCATION_TIMEOUT_SECONDS",), 900, "count"
    ),
    # Data capture (make deploy CAPTURE=1, make local-serve CAPTURE=1): the share of requests kept,
    # where (empty: s3://<bucket>/<s3_prefix>/capture/; SageMaker adds <endpoint>/<variant>/yyyy/mm/dd/hh/)
    # and the KMS key of the captured objects (empty: kms.output_key_id, if set).
    Setting("capture.sampling_percentage", ("SAGEMAKER_CAPTURE_SAMPLING_PERCENTAGE",), 100, "count"),
    Setting("capture.s3_uri", ("SAGEMAKER_CAPTURE_S3_URI",), "", "s3uri"),
    Setting("capture.kms_key_id", ("SAGEMAKER_CAPTURE_KMS_KEY_ID",), "", "kms"),
    # Monitoring (code/monitor.R as a processing job: make monitor, make monitor-schedule): the hours
    # of capture each run reads, ground-truth labels (CSV: eventId,label[,row]; empty: none), the
    # schedule (EventBridge Scheduler) and the role it runs the job with.
    Setting("monitor.window_hours", ("SAGEMAKER_MONITOR_WINDOW_HOURS",), 24, "count"),
    Setting("monitor.labels_s3_uri", ("SAGEMAKER_MONITOR_LABELS_S3_URI",), "", "s3uri"),
    Setting("monitor.schedule_expression", ("SAGEMAKER_MONITOR_SCHEDULE",), "rate(1 day)", "schedule"),
    Setting("monitor.scheduler_role_arn", ("SAGEMAKER_MONITOR_SCHEDULER_ROLE_ARN",), "", "role"),
    # Batch transform jobs (make remote-transform, make local-transform); an empty input_s3_uri
    # means data/ is uploaded.
    Setting("transform.input_s3_uri", ("SAGEMAKER_TRANSFORM_INPUT_S3_URI",), "", "s3uri"),
    Setting("transform.content_type", ("SAGEMAKER_TRANSFORM_CONTENT_TYPE",), "text/csv", "media_type"),
    Setting("transform.accept", ("SAGEMAKER_TRANSFORM_ACCEPT",), "text/csv", "media_type"),
    Setting("transform.split_type", ("SAGEMAKER_TRANSFORM_SPLIT_TYPE",), "Line", "split_type"),
    Setting(
        "transform.batch_strategy", ("SAGEMAKER_TRANSFORM_BATCH_STRATEGY",), "MultiRecord", "batch_strategy"
    ),
    Setting("transform.max_payload_mb", ("SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB",), 6, "payload_mb"),
    Setting(
        "transform.max_concurrent_transforms", ("SAGEMAKER_TRANSFORM_MAX_CONCURRENT_TRANSFORMS",), 1, "count"
    ),
    Setting("transform.instance_type", ("SAGEMAKER_TRANSFORM_INSTANCE_TYPE",), "ml.m5.large", "instance"),
    Setting("transform.instance_count", ("SAGEMAKER_TRANSFORM_INSTANCE_COUNT",), 1, "count"),
    # Production settings: every job, model and endpoint config the commands create gets them.
    Setting("vpc.subnets", ("SAGEMAKER_SUBNETS",), [], "subnets"),
    Setting("vpc.security_group_ids", ("SAGEMAKER_SECURITY_GROUP_IDS",), [], "security_groups"),
    Setting("network_isolation", ("SAGEMAKER_NETWORK_ISOLATION",), False, "bool"),
    Setting("kms.volume_key_id", ("SAGEMAKER_VOLUME_KMS_KEY_ID",), "", "kms"),
    Setting("kms.output_key_id", ("SAGEMAKER_OUTPUT_KMS_KEY_ID",), "", "kms"),
    Setting("tags", ("SAGEMAKER_TAGS",), {}, "tags"),
    # make remote-build (AWS CodeBuild builds and pushes the images): its service role (the bake's
    # config/codebuild-role-policy.json), compute type, build image (empty: by PLATFORM, amd64 or
    # ARM) and time limit. In a VPC it runs in vpc.id's vpc.subnets with vpc.security_group_ids;
    # kms.output_key_id encrypts the uploaded source and the build's artifacts.
    Setting("vpc.id", ("SAGEMAKER_VPC_ID",), "", "vpc"),
    Setting("codebuild.role_arn", ("CODEBUILD_ROLE_ARN",), "", "role"),
    Setting("codebuild.compute_type", ("CODEBUILD_COMPUTE_TYPE",), "BUILD_GENERAL1_MEDIUM", "compute"),
    Setting("codebuild.image", ("CODEBUILD_IMAGE",), "", "str"),
    Setting("codebuild.timeout_minutes", ("CODEBUILD_TIMEOUT_MINUTES",), 60, "count"),
)
BY_KEY = {setting.key: setting for setting in SETTINGS}

# Objects whose keys are data, not settings (config/aws.json keeps them whole).
OBJECT_SETTINGS = ("channels", "channel_distribution", "tags")
# Upper bounds SageMaker sets on some counts (the lower bound of every count is 1).
UPPER_BOUNDS = {
    "async.max_concurrent_invocations_per_instance": 1000,
    "async.invocation_timeout_seconds": 3600,
    "codebuild.timeout_minutes": 480,
    "capture.sampling_percentage": 100,
}
# How to set each required setting, for the one-line error when it is missing.
HOW_TO_SET = {
    "region": 'put it in config/aws.json ("region") or export AWS_REGION=us-east-1',
    "role_arn": 'put the SageMaker execution role\'s ARN in config/aws.json ("role_arn") '
    "or export SAGEMAKER_ROLE_ARN=arn:aws:iam::<account>:role/<name>",
    "bucket": 'put an S3 bucket name in config/aws.json ("bucket") or export SAGEMAKER_BUCKET=<bucket>',
    "codebuild.role_arn": 'put the CodeBuild service role\'s ARN in config/aws.json ("codebuild": {"role_arn": ...}) '
    "or export CODEBUILD_ROLE_ARN=arn:aws:iam::<account>:role/<name> (make remote-build-role creates one)",
    "monitor.scheduler_role_arn": "put a role EventBridge Scheduler may assume (scheduler.amazonaws.com) with "
    'sagemaker:CreateProcessingJob and iam:PassRole in config/aws.json ("monitor": {"scheduler_role_arn": ...}) '
    "or export SAGEMAKER_MONITOR_SCHEDULER_ROLE_ARN=arn:aws:iam::<account>:role/<name> (make monitor-schedule-role creates one)",
}
DESCRIPTION = {
    "region": "AWS region",
    "role_arn": "SageMaker execution role",
    "bucket": "S3 bucket",
    "codebuild.role_arn": "CodeBuild service role",
    "monitor.scheduler_role_arn": "The monitoring schedule's role",
}


class Settings:
    """The resolved settings: settings["training.instance_type"]; sources[key] says where each came from."""

    def __init__(self, values, sources):
        self.values = values
        self.sources = sources

    def __getitem__(self, key):
        return self.values[key]

    def require(self, *keys):
        """Fail with one line, naming the setting and how to set it, for the first one left empty."""
        for key in keys:
            if not self.values[key]:
                raise SetupError(f"{DESCRIPTION[key]} is not set: {HOW_TO_SET[key]}")


def default_of(setting, project):
    if setting.default == PROJECT_NAME:
        return project.name
    if setting.default == RESOURCE_NAME:
        return project.resource_name
    return json.loads(json.dumps(setting.default))  # a copy: a list or object default stays as it is


def flatten(document, prefix=""):
    flat = {}
    for key, value in document.items():
        if isinstance(value, dict) and key not in OBJECT_SETTINGS:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_config(project):
    """config/aws.json, flattened to setting keys ({} when the file is missing)."""
    path = project.config_file
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SetupError(f"{project.show(path)} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise SetupError(f"{project.show(path)} must hold a JSON object")
    return flatten(document)


def load(project, environ=None, keys=None):
    """Defaults, then config/aws.json, then the environment; every value checked for its kind.

    keys: only these settings (the local runs read the few they use, so a half-filled
    config/aws.json never stops them); without keys, every setting and the rules between settings
    are checked, and a key config/aws.json has that is no setting is refused.
    """
    environ = os.environ if environ is None else environ
    from_file = read_config(project)
    label = project.show(project.config_file)
    unknown = sorted(set(from_file) - set(BY_KEY))
    if unknown and keys is None:
        raise SetupError(
            f"{label}: unknown setting(s) {', '.join(unknown)}; `rsagemaker settings` lists them all"
        )
    values, sources = {}, {}
    for setting in SETTINGS:
        if keys is not None and setting.key not in keys:
            continue
        value, origin = default_of(setting, project), "default"
        if setting.key in from_file:
            value, origin = from_file[setting.key], label
        for variable in setting.variables:
            if environ.get(variable):
                value, origin = environ[variable], f"${variable}"
                break
        values[setting.key] = convert(setting.key, value, setting.kind, origin)
        sources[setting.key] = origin
        bound = UPPER_BOUNDS.get(setting.key)
        if bound is not None and values[setting.key] > bound:
            raise SetupError(
                f"{setting.key} = {value!r} (from {origin}) is invalid: expected at most {bound}"
            )
    settings = Settings(values, sources)
    if keys is None:
        check_together(settings)
    return settings


def check_together(settings):
    """The rules between settings, each failing with one line."""

    def origin(key):
        return f"{key} (from {settings.sources[key]})"

    if bool(settings["vpc.subnets"]) != bool(settings["vpc.security_group_ids"]):
        raise SetupError(
            f"{origin('vpc.subnets')} and {origin('vpc.security_group_ids')} go together: "
            "a VPC job needs both subnets and security groups, or set neither"
        )
    payload, concurrent = (
        settings["transform.max_payload_mb"],
        settings["transform.max_concurrent_transforms"],
    )
    if payload * concurrent > 100:
        raise SetupError(
            f"{origin('transform.max_payload_mb')} = {payload} times "
            f"{origin('transform.max_concurrent_transforms')} = {concurrent} is over 100 MB, "
            "SageMaker's limit for a transform job: lower one of them"
        )
    for job in ("processing", "training"):
        check_sharding(settings, job, settings[f"{job}.instance_count"], origin(f"{job}.instance_count"))
    wait, runtime = settings["training.max_wait_seconds"], settings["training.max_runtime_seconds"]
    if settings["training.spot"] and wait < runtime:
        raise SetupError(
            f"{origin('training.max_wait_seconds')} = {wait} is less than "
            f"{origin('training.max_runtime_seconds')} = {runtime}: "
            "a spot job waits for capacity on top of its run time, so raise max_wait_seconds"
        )


SHARDED = "ShardedByS3Key"
DISTRIBUTION = {"processing": "processing.data_distribution", "training": "training.channel_distribution"}


def sharded_inputs(settings, job):
    """The inputs of a processing or training job that are ShardedByS3Key."""
    value = settings[DISTRIBUTION[job]]
    if isinstance(value, dict):
        return sorted(name for name, kind in value.items() if kind == SHARDED)
    return ["data"] if value == SHARDED else []


def check_sharding(settings, job, count, counted):
    """Sharding across one instance: one line (counted says where the count came from)."""
    sharded = sharded_inputs(settings, job)
    if sharded and count == 1:
        key = DISTRIBUTION[job]
        raise SetupError(
            f"{key} (from {settings.sources[key]}) shards {', '.join(sharded)} ({SHARDED}) but "
            f"{counted} is 1: one instance gets every file; raise the instance count or use FullyReplicated"
        )
