"""What `local-pipeline` and `pipeline` share: their arguments, the SDK's import, the inputs.

The pipeline (definition.py) runs code/preprocess.R, code/train.R and code/evaluate.R in the
project's images, then gates on the test accuracy in evaluation.json: at or above MinAccuracy the
model is registered in the model package group named after the project (aws/registry.py), below it
a Fail step names the metric, its value and the threshold. The SDK is the CLI's optional `pipeline`
extra: only these commands import it, when they run.
"""

import logging
import os
import warnings

from ..core.data import target_column
from ..core.errors import SetupError
from ..core.opt_ml import encode_hyperparameters

SDK_HINT = (
    "install the CLI's pipeline extra (the SageMaker Python SDK v3): pip install 'rsagemaker-cli[pipeline]' "
    "(make local-pipeline and make pipeline do it in .venv)"
)


def pipeline_arguments(parser):
    parser.add_argument("--processing-image", required=True, help="the local processing image ref")
    parser.add_argument("--training-image", required=True, help="the local training image ref")
    parser.add_argument("--min-accuracy", default="0.9", help="the gate's threshold (MinAccuracy)")


def load_sdk(region, local=False):
    """The definition module (and local_mode's with local=True), or one line saying what to install.

    Importing the SDK creates boto3 clients, which need a region: the project's, unless one is set.
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", region or "us-east-1")
    try:
        from . import definition

        if not local:
            return definition, None
        from . import local_mode
    except ImportError as error:
        missing = error.name or "sagemaker"
        raise SetupError(
            f"the pipeline commands need {missing}, which is not installed: {SDK_HINT}"
        ) from None
    return definition, local_mode


def quiet_sdk_logs():
    """The SDK logs requests and compose files at INFO (and resets the root logger to DEBUG while it
    builds steps), and warns of what it leaves out of the definition on purpose. Keep its other
    warnings and the containers' output: the commands themselves do not log."""
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    logging.disable(logging.INFO)
    # "Popping out 'ProcessingJobName' from the pipeline definition": expected, once per step.
    for name in ("sagemaker.core.workflow.utilities", "sagemaker.mlops.workflow.model_step"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Retries of /ping while the local serving container starts are expected.
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def min_accuracy(text):
    try:
        value = float(text)
    except ValueError:
        raise SetupError(f"MIN_ACCURACY={text!r} is not a number (e.g. MIN_ACCURACY=0.9)") from None
    if not 0 <= value <= 1.01:
        raise SetupError(f"MIN_ACCURACY={text} is outside 0..1 (1.01 makes the gate fail on purpose)")
    return value


def project_hyperparameters(project):
    """(config/hyperparameters.json as a dict, the target column) for the training step and the scripts
    (preprocess.R and evaluate.R get the target as TARGET: the data's last column when none is named)."""
    hyperparameters = project.hyperparameters()
    return hyperparameters, str(target_column(project.data, hyperparameters.get("target")))


def for_scripts(project, hyperparameters, **sdk_keys):
    try:
        return encode_hyperparameters(hyperparameters, **sdk_keys)
    except ValueError as error:
        raise SetupError(f"{project.show(project.hyperparameters_file)}: {error}") from None


def elapsed(seconds):
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"
