"""The settings: one table of every setting and its default (core/settings.py), config/aws.json for
what the project's owner sets, the environment over both; `rsagemaker settings` shows them all."""

import json

import pytest
from cli_support import edit_json

from rsagemaker_cli.core.errors import SetupError
from rsagemaker_cli.core.project import find_project
from rsagemaker_cli.core.settings import SETTINGS, load


def shown(result):
    return {line.split()[0]: line for line in result.out.splitlines() if line and not line.startswith("Set ")}


def test_settings_lists_every_setting_with_its_value_and_source(project, cli, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_TAGS", '{"team": "ml"}')
    monkeypatch.setenv("SAGEMAKER_SUBNETS", "")  # empty: not set
    result = cli("settings")
    assert result.code == 0, result.err
    lines = shown(result)
    assert sorted(lines) == sorted(setting.key for setting in SETTINGS)
    assert '{"team": "ml"}  [$SAGEMAKER_TAGS; env SAGEMAKER_TAGS]' in lines["tags"]
    assert "us-east-1  [config/aws.json; env AWS_REGION]" in lines["region"]
    assert "ml.m5.large  [default; env SAGEMAKER_TRAINING_INSTANCE_TYPE]" in lines["training.instance_type"]
    assert "[default; env SAGEMAKER_TRAINING_CHECKPOINT_S3_URI]" in lines["training.checkpoint_s3_uri"]
    assert "[]  [default; env SAGEMAKER_SUBNETS]" in lines["vpc.subnets"]
    assert "(not set)  [config/aws.json; env SAGEMAKER_ROLE_ARN]" in lines["role_arn"]


def test_the_project_s_name_gives_the_prefix_and_endpoint_defaults(project):
    (project / "config" / "aws.json").write_text(json.dumps({"region": "eu-west-1"}))
    makefile = project / "Makefile"
    makefile.write_text(makefile.read_text().replace("PROJECT := r-on-sagemaker", "PROJECT := my_proj.v2"))
    settings = load(find_project())
    assert settings["s3_prefix"] == "my_proj.v2"
    assert settings["endpoint.name"] == "my-proj-v2"
    assert (settings.sources["s3_prefix"], settings.sources["endpoint.name"]) == ("default", "default")
    assert settings["region"] == "eu-west-1"


def test_a_value_in_config_wins_over_the_default_and_the_environment_over_both(project, monkeypatch):
    edit_json(project / "config" / "aws.json", training={"instance_type": "ml.c5.xlarge"})
    assert load(find_project())["training.instance_type"] == "ml.c5.xlarge"
    monkeypatch.setenv("SAGEMAKER_TRAINING_INSTANCE_TYPE", "ml.m5.2xlarge")
    settings = load(find_project())
    assert settings["training.instance_type"] == "ml.m5.2xlarge"
    assert settings.sources["training.instance_type"] == "$SAGEMAKER_TRAINING_INSTANCE_TYPE"


def test_defaults_are_not_shared_between_loads(project):
    first = load(find_project())
    first.values["training.metric_definitions"].append({"Name": "x", "Regex": "(x)"})
    assert len(load(find_project())["training.metric_definitions"]) == 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"trainng": {"instance_type": "ml.m5.large"}}, "unknown setting(s) trainng.instance_type"),
        ({"endpoint": {"name": "my_endpoint"}}, "1-63 letters, digits and hyphens"),
        ({"ecr": {"tag_mutability": "SOMETIMES"}}, "MUTABLE or IMMUTABLE"),
        ({"training": {"channels": {"train": "/data"}}}, "an object of channel name -> s3:// URI"),
        ({"transform": {"max_payload_mb": True}}, "from 0 (no limit) to 100"),
        ({"training": {"metric_definitions": "accuracy"}}, "a JSON list such as"),
        ({"training": {"metric_definitions": [{"Name": "a"}]}}, '{"Name": ..., "Regex": ...}'),
        ({"training": {"metric_definitions": [{"Name": "a", "Regex": "(["}]}}, "'(['"),
    ],
)
def test_a_bad_value_in_config_is_one_line(project, cli, document, message):
    (project / "config" / "aws.json").write_text(json.dumps({"region": "us-east-1", **document}))
    with pytest.raises(SetupError, match=".*"):
        load(find_project())
    cli("settings").error(message)


def test_config_that_is_not_json_is_named(project, cli):
    (project / "config" / "aws.json").write_text("{")
    cli("settings").error("config/aws.json is not valid JSON")


def test_local_commands_read_only_the_settings_they_use(project):
    """A half-filled config/aws.json never stops a local run."""
    edit_json(project / "config" / "aws.json", vpc={"subnets": ["subnet-0123456789abcdef0"]}, unknown=1)
    with pytest.raises(SetupError, match="unknown setting"):
        load(find_project())
    settings = load(find_project(), keys=("region", "training.checkpoint_local_path"))
    assert settings["training.checkpoint_local_path"] == "/opt/ml/checkpoints"
