"""AWS settings of the push and remote commands: config/aws.json, overridden by environment variables.

Every setting has one key in config/aws.json and one environment variable (the table SETTINGS below);
a non-empty environment variable wins over the file. `python -m sagemaker_tools settings` prints
them all with where each value came from.

connect() checks region and credentials (STS GetCallerIdentity) and returns the boto3 session and
the account. Every AWS client comes from that session, so AWS_ENDPOINT_URL (boto3 >= 1.28) sends
STS, ECR, S3 and SageMaker alike to another endpoint, e.g. a moto server in tests.
"""

import json
import os
import re
from pathlib import Path

from . import ToolError

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_FILE = PROJECT_DIR / "config" / "aws.json"
BUILD_DIR = PROJECT_DIR / "build"

# Test seam, not a user setting: push creates the ECR repositories and fetches the ECR token as
# usual, but sends the images to this registry host (e.g. 127.0.0.1:5000) instead of
# <account>.dkr.ecr.<region>.amazonaws.com, because a moto server's ECR has no registry behind it.
REGISTRY_OVERRIDE_VARIABLE = "SAGEMAKER_TOOLS_ECR_REGISTRY_OVERRIDE"

# (key in config/aws.json, environment variables, default, kind).
SETTINGS = (
    ("region", ("AWS_REGION", "AWS_DEFAULT_REGION"), "{{ cookiecutter.aws_region }}", "region"),
    ("role_arn", ("SAGEMAKER_ROLE_ARN",), "", "role"),
    ("bucket", ("SAGEMAKER_BUCKET",), "", "bucket"),
    ("s3_prefix", ("SAGEMAKER_S3_PREFIX",), "{{ cookiecutter.project_slug }}", "prefix"),
    ("ecr.tag_mutability", ("ECR_TAG_MUTABILITY",), "MUTABLE", "mutability"),
    ("ecr.scan_on_push", ("ECR_SCAN_ON_PUSH",), True, "bool"),
    ("ecr.expire_untagged_after_days", ("ECR_EXPIRE_UNTAGGED_AFTER_DAYS",), 14, "count"),
    ("processing.instance_type", ("SAGEMAKER_PROCESSING_INSTANCE_TYPE",), "ml.t3.medium", "instance"),
    ("processing.instance_count", ("SAGEMAKER_PROCESSING_INSTANCE_COUNT",), 1, "count"),
    ("processing.volume_size_gb", ("SAGEMAKER_PROCESSING_VOLUME_SIZE_GB",), 30, "count"),
    ("processing.max_runtime_seconds", ("SAGEMAKER_PROCESSING_MAX_RUNTIME_SECONDS",), 3600, "count"),
    ("processing.input_s3_uri", ("SAGEMAKER_PROCESSING_INPUT_S3_URI",), "", "s3uri"),
    ("training.entry_point", ("SAGEMAKER_TRAINING_ENTRY_POINT",), "train.R", "str"),
    ("training.instance_type", ("SAGEMAKER_TRAINING_INSTANCE_TYPE",), "ml.m5.large", "instance"),
    ("training.instance_count", ("SAGEMAKER_TRAINING_INSTANCE_COUNT",), 1, "count"),
    ("training.volume_size_gb", ("SAGEMAKER_TRAINING_VOLUME_SIZE_GB",), 30, "count"),
    ("training.max_runtime_seconds", ("SAGEMAKER_TRAINING_MAX_RUNTIME_SECONDS",), 3600, "count"),
    ("training.channels", ("SAGEMAKER_TRAINING_CHANNELS",), {}, "channels"),
    ("training.checkpoint_s3_uri", ("SAGEMAKER_TRAINING_CHECKPOINT_S3_URI",), "", "checkpoint"),
    (
        "training.checkpoint_local_path",
        ("SAGEMAKER_TRAINING_CHECKPOINT_LOCAL_PATH",),
        "/opt/ml/checkpoints",
        "abspath",
    ),
    ("training.spot", ("SAGEMAKER_TRAINING_SPOT",), False, "bool"),
    ("training.max_wait_seconds", ("SAGEMAKER_TRAINING_MAX_WAIT_SECONDS",), 7200, "count"),
    (
        "endpoint.name",
        ("SAGEMAKER_ENDPOINT_NAME",),
        "{{ cookiecutter.project_slug | replace('_', '-') | replace('.', '-') }}",
        "name",
    ),
    ("endpoint.instance_type", ("SAGEMAKER_ENDPOINT_INSTANCE_TYPE",), "ml.t2.medium", "instance"),
    ("endpoint.instance_count", ("SAGEMAKER_ENDPOINT_INSTANCE_COUNT",), 1, "count"),
    ("endpoint.serverless_memory_mb", ("SAGEMAKER_ENDPOINT_SERVERLESS_MEMORY_MB",), 2048, "count"),
    ("endpoint.serverless_max_concurrency", ("SAGEMAKER_ENDPOINT_SERVERLESS_MAX_CONCURRENCY",), 5, "count"),
    # Asynchronous endpoints (make deploy ASYNC=1, make invoke-async); empty S3 URIs mean
    # s3://<bucket>/<s3_prefix>/async/{output,failures}/.
    ("async.output_s3_uri", ("SAGEMAKER_ASYNC_OUTPUT_S3_URI",), "", "s3uri"),
    ("async.failure_s3_uri", ("SAGEMAKER_ASYNC_FAILURE_S3_URI",), "", "s3uri"),
    ("async.success_topic_arn", ("SAGEMAKER_ASYNC_SUCCESS_TOPIC_ARN",), "", "sns"),
    ("async.error_topic_arn", ("SAGEMAKER_ASYNC_ERROR_TOPIC_ARN",), "", "sns"),
    (
        "async.max_concurrent_invocations_per_instance",
        ("SAGEMAKER_ASYNC_MAX_CONCURRENT_INVOCATIONS",),
        4,
        "count",
    ),
    ("async.invocation_timeout_seconds", ("SAGEMAKER_ASYNC_INVOCATION_TIMEOUT_SECONDS",), 900, "count"),
    # Batch transform jobs (make remote-transform, make local-transform); an empty input_s3_uri
    # means data/ is uploaded.
    ("transform.input_s3_uri", ("SAGEMAKER_TRANSFORM_INPUT_S3_URI",), "", "s3uri"),
    ("transform.content_type", ("SAGEMAKER_TRANSFORM_CONTENT_TYPE",), "text/csv", "media_type"),
    ("transform.accept", ("SAGEMAKER_TRANSFORM_ACCEPT",), "text/csv", "media_type"),
    ("transform.split_type", ("SAGEMAKER_TRANSFORM_SPLIT_TYPE",), "Line", "split_type"),
    ("transform.batch_strategy", ("SAGEMAKER_TRANSFORM_BATCH_STRATEGY",), "MultiRecord", "batch_strategy"),
    ("transform.max_payload_mb", ("SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB",), 6, "payload_mb"),
    ("transform.max_concurrent_transforms", ("SAGEMAKER_TRANSFORM_MAX_CONCURRENT_TRANSFORMS",), 1, "count"),
    ("transform.instance_type", ("SAGEMAKER_TRANSFORM_INSTANCE_TYPE",), "ml.m5.large", "instance"),
    ("transform.instance_count", ("SAGEMAKER_TRANSFORM_INSTANCE_COUNT",), 1, "count"),
    # Production settings: every job, model and endpoint config these tools create gets them.
    ("vpc.subnets", ("SAGEMAKER_SUBNETS",), [], "subnets"),
    ("vpc.security_group_ids", ("SAGEMAKER_SECURITY_GROUP_IDS",), [], "security_groups"),
    ("network_isolation", ("SAGEMAKER_NETWORK_ISOLATION",), False, "bool"),
    ("kms.volume_key_id", ("SAGEMAKER_VOLUME_KMS_KEY_ID",), "", "kms"),
    ("kms.output_key_id", ("SAGEMAKER_OUTPUT_KMS_KEY_ID",), "", "kms"),
    ("tags", ("SAGEMAKER_TAGS",), {}, "tags"),
)

# Objects whose keys are data, not settings (config/aws.json keeps them whole).
OBJECT_SETTINGS = ("channels", "tags")

# The value of training.checkpoint_s3_uri that turns checkpoints off.
CHECKPOINTS_OFF = "off"

# How to set each required setting, for the one-line error when it is missing.
HOW_TO_SET = {
    "region": 'put it in config/aws.json ("region") or export AWS_REGION=us-east-1',
    "role_arn": 'put the SageMaker execution role\'s ARN in config/aws.json ("role_arn") '
    "or export SAGEMAKER_ROLE_ARN=arn:aws:iam::<account>:role/<name>",
    "bucket": 'put an S3 bucket name in config/aws.json ("bucket") or export SAGEMAKER_BUCKET=<bucket>',
}
DESCRIPTION = {"region": "AWS region", "role_arn": "SageMaker execution role", "bucket": "S3 bucket"}

RULES = {
    "region": (re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"), "a region code such as us-east-1"),
    "role": (
        re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$"),
        "arn:aws:iam::<account>:role/<name>",
    ),
    "bucket": (re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"), "an S3 bucket name (3-63 a-z 0-9 . -)"),
    "prefix": (re.compile(r"^[\w!.*'()/-]*$"), "an S3 key prefix without spaces"),
    "instance": (re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"), "an instance type such as ml.m5.large"),
    "s3uri": (re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)?$"), "an s3://bucket/prefix URI"),
    "name": (re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"), "1-63 letters, digits and hyphens"),
    "abspath": (re.compile(r"^/[\w./-]*$"), "an absolute path in the container, e.g. /opt/ml/checkpoints"),
    "checkpoint": (
        re.compile(rf"^(s3://[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9](/.*)?|{CHECKPOINTS_OFF})?$"),
        f"an s3://bucket/prefix URI, {CHECKPOINTS_OFF!r} (no checkpoints) or empty (one folder per job)",
    ),
    "sns": (
        re.compile(r"^(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[\w-]{1,256})?$"),
        "an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:my-topic",
    ),
    "media_type": (re.compile(r"^[\w.+-]+/[\w.+-]+$"), "a media type such as text/csv"),
    "kms": (
        re.compile(
            r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[\w/-]+"
            r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[\w-]+|alias/[\w/-]+))$"
        ),
        "a KMS key ID, key ARN, alias/<name> or alias ARN",
    ),
}
LIST_RULES = {
    "subnets": (re.compile(r"^subnet-[0-9a-f]{8,17}$"), 16, "subnet IDs such as subnet-0123456789abcdef0"),
    "security_groups": (
        re.compile(r"^sg-[0-9a-f]{8,17}$"),
        5,
        "security group IDs such as sg-0123456789abcdef0",
    ),
}
# Choices of the batch transform settings, as CreateTransformJob spells them.
CHOICES = {
    "split_type": ("None", "Line", "RecordIO", "TFRecord"),
    "batch_strategy": ("MultiRecord", "SingleRecord"),
}
# Upper bounds SageMaker sets on some counts (the lower bound of every count is 1).
UPPER_BOUNDS = {
    "async.max_concurrent_invocations_per_instance": 1000,
    "async.invocation_timeout_seconds": 3600,
}
# AWS tag limits: 50 tags, keys 1-128 and values 0-256 characters of letters, digits, spaces and _.:/=+-@
TAG_TEXT = re.compile(r"^[\w .:/=+\-@]*$")


class SetupError(ToolError):
    """A problem the user fixes outside the code (a setting, credentials, a missing image)."""

    exit_code = 2


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


def _flatten(document, prefix=""):
    flat = {}
    for key, value in document.items():
        if isinstance(value, dict) and key not in OBJECT_SETTINGS:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _convert(key, value, kind, origin):
    """The value as its kind, from JSON or from an environment string; SetupError names the origin."""

    def bad(expected):
        return SetupError(f"{key} = {value!r} (from {origin}) is invalid: expected {expected}")

    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise bad("true or false")
    if kind == "count":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise bad("a whole number") from None
        if number < 1 or isinstance(value, bool):
            raise bad("a whole number of at least 1")
        return number
    if kind == "payload_mb":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise bad("a whole number of MB from 0 (no limit) to 100") from None
        if not 0 <= number <= 100 or isinstance(value, bool):
            raise bad("a whole number of MB from 0 (no limit) to 100")
        return number
    if kind == "channels":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise bad('a JSON object such as {"train": "s3://bucket/prefix/"}') from None
        if not isinstance(value, dict) or not all(
            isinstance(uri, str) and RULES["s3uri"][0].match(uri) and uri for uri in value.values()
        ):
            raise bad('an object of channel name -> s3:// URI, e.g. {"train": "s3://bucket/prefix/"}')
        return value
    if kind in LIST_RULES:
        rule, most, expected = LIST_RULES[kind]
        items = value
        if isinstance(value, str):  # from the environment: comma separated
            items = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(items, list) or not all(
            isinstance(item, str) and rule.match(item) for item in items
        ):
            raise bad(f"a list of {expected}")
        if len(items) > most:
            raise bad(f"at most {most} {expected.split(' such')[0]}")
        return items
    if kind == "tags":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise bad('a JSON object such as {"team": "ml", "cost-center": "42"}') from None
        example = 'an object of tag name -> text, e.g. {"team": "ml"}'
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad(example)
        if len(value) > 50:
            raise bad("at most 50 tags")
        for name, text in value.items():
            if not 1 <= len(name) <= 128 or not TAG_TEXT.match(name) or name.lower().startswith("aws:"):
                raise bad(
                    f"tag names of 1-128 letters, digits, spaces or _.:/=+-@, not starting aws: ({name!r})"
                )
            if len(text) > 256 or not TAG_TEXT.match(text):
                raise bad(f"tag values of at most 256 letters, digits, spaces or _.:/=+-@ ({name!r})")
        return value
    if not isinstance(value, str):
        raise bad("a string")
    if kind == "mutability":
        if value.upper() not in ("MUTABLE", "IMMUTABLE"):
            raise bad("MUTABLE or IMMUTABLE")
        return value.upper()
    if kind in CHOICES:
        for choice in CHOICES[kind]:
            if value.lower() == choice.lower():
                return choice
        raise bad(" or ".join(CHOICES[kind]))
    if kind in RULES and value:
        rule, expected = RULES[kind]
        if not rule.match(value):
            raise bad(expected)
    return value


def load(config_file=None, environ=None, keys=None):
    """Defaults, then config/aws.json, then the environment; every value checked for its kind.

    keys: only these settings (the local runs read the region alone, so a half-filled config/aws.json
    never stops them); without keys, every setting and the rules between settings are checked.
    """
    config_file = Path(config_file or CONFIG_FILE)
    environ = os.environ if environ is None else environ
    from_file = {}
    if config_file.exists():
        try:
            document = json.loads(config_file.read_text())
        except json.JSONDecodeError as error:
            raise SetupError(f"{config_file} is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise SetupError(f"{config_file} must hold a JSON object")
        from_file = _flatten(document)
    known = {key for key, *_ in SETTINGS}
    unknown = sorted(set(from_file) - known)
    if unknown and keys is None:
        raise SetupError(
            f"{config_file}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )

    file_label = "config/aws.json" if config_file == CONFIG_FILE else str(config_file)
    values, sources = {}, {}
    for key, variables, default, kind in SETTINGS:
        if keys is not None and key not in keys:
            continue
        value, origin = default, "default"
        if key in from_file:
            value, origin = from_file[key], file_label
        for variable in variables:
            if environ.get(variable):
                value, origin = environ[variable], f"${variable}"
                break
        values[key] = _convert(key, value, kind, origin)
        sources[key] = origin
        if key in UPPER_BOUNDS and values[key] > UPPER_BOUNDS[key]:
            raise SetupError(
                f"{key} = {value!r} (from {origin}) is invalid: expected at most {UPPER_BOUNDS[key]}"
            )
    settings = Settings(values, sources)
    if keys is None:
        check_together(settings)
    return settings


def check_together(settings):
    """The rules between settings, each failing with one line."""

    def origin(key):
        return f"{key} (from {settings.sources[key]})"

    subnets, groups = settings["vpc.subnets"], settings["vpc.security_group_ids"]
    if bool(subnets) != bool(groups):
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
    if (
        settings["training.spot"]
        and settings["training.max_wait_seconds"] < settings["training.max_runtime_seconds"]
    ):
        raise SetupError(
            f"{origin('training.max_wait_seconds')} = {settings['training.max_wait_seconds']} is less than "
            f"{origin('training.max_runtime_seconds')} = {settings['training.max_runtime_seconds']}: "
            "a spot job waits for capacity on top of its run time, so raise max_wait_seconds"
        )


def known_regions(session):
    """Every region botocore knows for SageMaker, in every partition (aws, aws-cn, aws-us-gov...)."""
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("sagemaker", partition_name=partition))
    return regions


def connect(settings):
    """Check region and credentials, before anything is created; returns (boto3 session, account id)."""
    import boto3
    import botocore.exceptions

    settings.require("region")
    region = settings["region"]
    try:
        session = boto3.Session(region_name=region)
        regions = known_regions(session)
        if region not in regions:
            raise SetupError(
                f"unknown AWS region {region!r} (from {settings.sources['region']}): "
                f"SageMaker regions known to botocore include {', '.join(sorted(regions)[:6])}, ... "
                "(a brand-new region needs a newer boto3)"
            )
        if session.get_credentials() is None:
            raise SetupError(
                "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE, "
                "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        identity = session.client("sts").get_caller_identity()
    except botocore.exceptions.ProfileNotFound as error:
        raise SetupError(f"{error}: fix AWS_PROFILE or add the profile to ~/.aws/config") from None
    except botocore.exceptions.PartialCredentialsError as error:
        raise SetupError(f"incomplete AWS credentials: {error}") from None
    except botocore.exceptions.NoCredentialsError:
        raise SetupError("no AWS credentials found: run `aws configure` or set AWS_PROFILE") from None
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise SetupError(
            f"AWS rejected the credentials ({code}: {error.response.get('Error', {}).get('Message', '')}): "
            "check AWS_PROFILE / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or renew them (`aws sso login`)"
        ) from None
    except botocore.exceptions.EndpointConnectionError as error:
        raise SetupError(f"cannot reach AWS STS in {region}: {error}") from None
    return session, identity["Account"]


def ecr_registry(account, region):
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def split_ref(ref):
    """'name:tag' -> ('name', 'tag'); a ':' in a registry port is not a tag separator."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, ""
    return name, tag


def show(args):
    settings = load()
    width = max(len(key) for key, *_ in SETTINGS)
    for key, variables, _default, _kind in SETTINGS:
        value = settings[key]
        shown = json.dumps(value) if not isinstance(value, str) else (value or "(not set)")
        print(f"{key:<{width}}  {shown}  [{settings.sources[key]}; env {variables[0]}]")
    print(f"Edit {CONFIG_FILE.relative_to(PROJECT_DIR)} or export the variable to change a value.")
    return 0


def register(subparsers):
    parser = subparsers.add_parser("settings", help="Print the AWS settings and where each value comes from")
    parser.set_defaults(handler=show)
