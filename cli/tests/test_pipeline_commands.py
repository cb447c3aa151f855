"""The pipeline commands without the SageMaker SDK (the `pipeline` extra): one line saying what to
install, before anything is uploaded or created. The pipeline itself runs with the SDK in the
template's suite (tests/test_pipeline.py)."""

import sys

import pytest
from cli_support import SLUG, TAG

from rsagemaker_cli.core.errors import SetupError
from rsagemaker_cli.pipeline.common import min_accuracy, project_hyperparameters

IMAGES = ("--processing-image", f"{SLUG}-processing:{TAG}", "--training-image", f"{SLUG}-training:{TAG}")


@pytest.fixture
def no_sdk(monkeypatch):
    """As if the SDK were not installed, whether it is or not."""
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    for name in list(sys.modules):
        if name.startswith("rsagemaker_cli.pipeline.") and name != "rsagemaker_cli.pipeline.common":
            monkeypatch.delitem(sys.modules, name)


def test_local_pipeline_without_the_sdk_says_what_to_install(project, no_sdk, cli):
    cli("local-pipeline", *IMAGES).error("not installed", "pip install 'rsagemaker-cli[pipeline]'")


def test_pipeline_without_the_sdk_says_what_to_install_before_uploading(in_ecr, no_sdk, cli):
    result = cli("pipeline", *IMAGES, "--tag", TAG)
    result.error("not installed", "rsagemaker-cli[pipeline]")
    assert result.requests("PutObject") == []


@pytest.mark.parametrize(("text", "message"), [("high", "is not a number"), ("2", "is outside 0..1")])
def test_min_accuracy_is_checked(text, message):
    with pytest.raises(SetupError, match=message):
        min_accuracy(text)
    assert min_accuracy("1.01") == 1.01  # the gate fails on purpose


def test_the_target_is_the_hyperparameters_else_the_data_s_last_column(project):
    from rsagemaker_cli.core.project import find_project

    assert project_hyperparameters(find_project()) == (
        {"maxdepth": 5, "cp": 0.01, "target": "Species"},
        "Species",
    )
    (project / "config" / "hyperparameters.json").write_text('{"maxdepth": 3}')
    assert project_hyperparameters(find_project())[1] == "Species"  # iris.csv's last column
