"""What each kind of setting accepts: convert() turns a value from config/aws.json (JSON) or from an
environment variable (a string) into its kind, or raises SetupError naming the setting, the value,
where it came from and what is expected. The settings themselves are in settings.py."""

import json
import re

from .errors import SetupError

# The value of training.checkpoint_s3_uri that turns checkpoints off.
CHECKPOINTS_OFF = "off"
BUCKET_NAME = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"

RULES = {
    "region": (re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"), "a region code such as us-east-1"),
    "role": (
        re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$"),
        "arn:aws:iam::<account>:role/<name>",
    ),
    "bucket": (re.compile(f"^{BUCKET_NAME}$"), "an S3 bucket name (3-63 a-z 0-9 . -)"),
    "prefix": (re.compile(r"^[\w!.*'()/-]*$"), "an S3 key prefix without spaces"),
    "instance": (re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"), "an instance type such as ml.m5.large"),
    "s3uri": (re.compile(f"^(s3://{BUCKET_NAME}(/.*)?)?$"), "an s3://bucket/prefix URI"),
    "name": (re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"), "1-63 letters, digits and hyphens"),
    "abspath": (re.compile(r"^/[\w./-]*$"), "an absolute path in the container, e.g. /opt/ml/checkpoints"),
    "checkpoint": (
        re.compile(f"^(s3://{BUCKET_NAME}(/.*)?|{CHECKPOINTS_OFF})?$"),
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
    "vpc": (re.compile(r"^vpc-[0-9a-f]{8,17}$"), "a VPC ID such as vpc-0123456789abcdef0"),
    "compute": (re.compile(r"^BUILD_[A-Z0-9_]+$"), "a CodeBuild compute type such as BUILD_GENERAL1_MEDIUM"),
    "schedule": (
        re.compile(r"^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$"),
        "an EventBridge Scheduler expression such as rate(1 day) or cron(0 6 * * ? *)",
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
    # S3DataDistributionType of a processing input or a training channel.
    "distribution": ("FullyReplicated", "ShardedByS3Key"),
}
# AWS tag limits: 50 tags, keys 1-128 and values 0-256 characters of letters, digits, spaces and _.:/=+-@
TAG_TEXT = re.compile(r"^[\w .:/=+\-@]*$")
# CreateTrainingJob's MetricDefinitions: at most 40, names 1-255 characters, regexes 1-500.
MAX_METRICS = 40


def convert(key, value, kind, origin):
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
    if kind in ("count", "payload_mb"):
        return _number(value, kind, bad)
    if kind in ("channels", "distributions", "tags", "metric_definitions"):
        if isinstance(value, str):  # from the environment: JSON
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise bad(f"JSON: {JSON_EXAMPLES[kind]}") from None
        kinds = {"channels": _channels, "distributions": _distributions, "tags": _tags}
        return {**kinds, "metric_definitions": _metrics}[kind](value, bad)
    if kind in LIST_RULES:
        return _list(value, kind, bad)
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


JSON_EXAMPLES = {
    "channels": 'a JSON object such as {"train": "s3://bucket/prefix/"}',
    "distributions": 'a JSON object such as {"train": "ShardedByS3Key"}',
    "tags": 'a JSON object such as {"team": "ml", "cost-center": "42"}',
    "metric_definitions": 'a JSON list such as [{"Name": "train:accuracy", "Regex": "accuracy=([0-9.]+)"}]',
}


def _number(value, kind, bad):
    lowest, expected = (
        (0, "a whole number of MB from 0 (no limit) to 100") if kind == "payload_mb" else (1, "")
    )
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad(expected or "a whole number") from None
    if isinstance(value, bool) or number < lowest or (kind == "payload_mb" and number > 100):
        raise bad(expected or "a whole number of at least 1")
    return number


def _channels(value, bad):
    if not isinstance(value, dict) or not all(
        isinstance(uri, str) and uri and RULES["s3uri"][0].match(uri) for uri in value.values()
    ):
        raise bad('an object of channel name -> s3:// URI, e.g. {"train": "s3://bucket/prefix/"}')
    return value


def _distributions(value, bad):
    choices = CHOICES["distribution"]
    if not isinstance(value, dict) or not all(kind in choices for kind in value.values()):
        raise bad(f"an object of channel name -> {' or '.join(choices)}: {JSON_EXAMPLES['distributions']}")
    return value


def _list(value, kind, bad):
    rule, most, expected = LIST_RULES[kind]
    items = value
    if isinstance(value, str):  # from the environment: comma separated
        items = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(items, list) or not all(isinstance(item, str) and rule.match(item) for item in items):
        raise bad(f"a list of {expected}")
    if len(items) > most:
        raise bad(f"at most {most} {expected.split(' such')[0]}")
    return items


def _tags(value, bad):
    if not isinstance(value, dict) or not all(isinstance(text, str) for text in value.values()):
        raise bad('an object of tag name -> text, e.g. {"team": "ml"}')
    if len(value) > 50:
        raise bad("at most 50 tags")
    for name, text in value.items():
        if not 1 <= len(name) <= 128 or not TAG_TEXT.match(name) or name.lower().startswith("aws:"):
            raise bad(f"tag names of 1-128 letters, digits, spaces or _.:/=+-@, not starting aws: ({name!r})")
        if len(text) > 256 or not TAG_TEXT.match(text):
            raise bad(f"tag values of at most 256 letters, digits, spaces or _.:/=+-@ ({name!r})")
    return value


def _metrics(value, bad):
    expected = 'a list of {"Name": ..., "Regex": ...} objects (at most 40), each regex with one group'
    if not isinstance(value, list) or len(value) > MAX_METRICS:
        raise bad(expected)
    for item in value:
        if not isinstance(item, dict) or set(item) != {"Name", "Regex"}:
            raise bad(expected)
        name, regex = item["Name"], item["Regex"]
        if not isinstance(name, str) or not 1 <= len(name) <= 255 or not isinstance(regex, str):
            raise bad(expected)
        try:
            groups = re.compile(regex).groups
        except re.error as error:
            raise bad(f"{expected}; {regex!r}: {error}") from None
        if not 1 <= len(regex) <= 500 or groups != 1:
            raise bad(f"{expected}; {regex!r} has {groups} groups")
    return [dict(item) for item in value]
