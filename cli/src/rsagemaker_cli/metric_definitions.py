"""The training job's metric definitions: regexes over the metric lines code/train.R prints.

SageMaker applies them to the job's log and records each match as a metric of the job (shown by
DescribeTrainingJob's FinalMetricDataList and in CloudWatch). `make remote-train` and the pipeline's
training step both send these, so a change to train.R's lines is made here once.
"""

# train.R prints e.g. "train_accuracy=0.9750;" and, with a validation channel, "validation_accuracy=0.9583;".
METRIC_DEFINITIONS = (
    {"Name": "train:accuracy", "Regex": r"train_accuracy=([0-9.]+);"},
    {"Name": "validation:accuracy", "Regex": r"validation_accuracy=([0-9.]+);"},
)


def metric_definitions():
    """The definitions as the CreateTrainingJob request takes them (a fresh list of dicts)."""
    return [dict(definition) for definition in METRIC_DEFINITIONS]
