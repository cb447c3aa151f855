"""The pipeline (#12): `make local-pipeline` end to end, `make pipeline`'s definition and execution.

The generated project's pipeline commands run with PYTHON = the pinned SageMaker SDK v3 environment
(scripts/sdk-venv.sh v3), which also has the CLI and its dependencies (boto3, docker, requests).
The registry commands and the pipeline commands without the SDK are tested in cli/tests.
Nothing leaves loopback: AWS calls go to a moto server (AWS_ENDPOINT_URL), credentials are dummies,
and HTTP(S)_PROXY points at a closed loopback port, so any request to another host fails at once
instead of reaching out. moto 5.2 lacks ListPipelineExecutionSteps; the test that follows an
execution answers that one call with a botocore event hook in the tools' process and checks its
request (sitecustomize.py on PYTHONPATH, written by the test).
"""

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import docker
import pytest
import requests
import test_ship as ship
from conftest import TEMPLATE, TEST_TAG, make

SLUG = ship.SLUG
ACCURACY_PATH = "multiclass_classification_metrics.accuracy.value"
METRIC_DEFINITIONS = [
    {"Name": "train:accuracy", "Regex": r"train_accuracy=([0-9.]+);"},
    {"Name": "validation:accuracy", "Regex": r"validation_accuracy=([0-9.]+);"},
]
SPECIES = {"setosa", "versicolor", "virginica"}


@pytest.fixture(scope="session")
def sdk_python():
    """The python of the pinned SDK v3 environment (SDK_VENV_DIR reuses one already built)."""
    result = subprocess.run(
        ["bash", str(TEMPLATE / "scripts" / "sdk-venv.sh"), "v3"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def loopback_only(monkeypatch):
    """Any HTTP(S) request to a host other than loopback goes to a closed port and fails."""
    dead = f"http://127.0.0.1:{ship.free_port()}"
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, dead)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    url, server = ship.start_moto(tmp_path_factory, "moto-pipeline")
    with server:
        yield url


@pytest.fixture
def aws(moto, monkeypatch, loopback_only):
    """A fresh moto and the tools' environment pointing at it (as test_ship's aws fixture)."""
    import boto3

    requests.post(f"{moto}/moto-api/reset", timeout=10).raise_for_status()
    for variable in list(os.environ):
        if variable.startswith(("SAGEMAKER_", "ECR_")) or variable in ship.SETTING_VARIABLES:
            monkeypatch.delenv(variable)
    environment = {
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": ship.REGION,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_ROLE_ARN": ship.ROLE,
        "SAGEMAKER_BUCKET": ship.BUCKET,
    }
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    return boto3.Session(
        region_name=ship.REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def in_ecr(aws):
    """Bucket and both images in moto, as after `make push` (test_ship's in_ecr)."""
    return ship.push_to_moto(aws)


def ecr_uri(session, image):
    """The pushed image as the pipeline names it: by digest (issue 25 item 11), not repository:TAG."""
    (detail,) = session.client("ecr").describe_images(
        repositoryName=f"{SLUG}-{image}", imageIds=[{"imageTag": TEST_TAG}]
    )["imageDetails"]
    return f"{ship.ACCOUNT}.dkr.ecr.{ship.REGION}.amazonaws.com/{SLUG}-{image}@{detail['imageDigest']}"


def step_lines(output):
    return [line for line in output.splitlines() if line.startswith(("==> ", "<== "))]


# --- make local-pipeline (local containers, local files) -----------------------------------------------


@pytest.mark.slow
def test_local_pipeline_passing_gate_creates_the_model_and_transforms_the_test_split(
    built_project, sdk_python, loopback_only, monkeypatch
):
    project, _images = built_project
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)  # no AWS account at all
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    started = time.monotonic()
    result = make(project, "local-pipeline", PYTHON=sdk_python)
    print(f"make local-pipeline (passing gate) took {time.monotonic() - started:.0f} s")
    output = result.stdout
    assert [line.split(" [")[0] for line in step_lines(output)] == [
        "==> Preprocess (Processing) started",
        "<== Preprocess (Processing) Succeeded",
        "==> Train (Training) started",
        "<== Train (Training) Succeeded",
        "==> Evaluate (Processing) started",
        "<== Evaluate (Processing) Succeeded",
        "==> CheckAccuracy (Condition) started",
        "<== CheckAccuracy (Condition) Succeeded",
        "==> CreateModel (Model) started",
        "<== CreateModel (Model) Succeeded",
        "==> TransformTest (Transform) started",
        "<== TransformTest (Transform) Succeeded",
    ], output
    # train.R's metric lines, the ones the metric definitions match, are in the training log.
    assert "train_accuracy=" in output and "validation_accuracy=" in output
    # The SDK's local mode leaves its stopped step containers; the command removes them.
    assert "stopped step container(s) the SDK's local mode left" in output
    engine = docker.from_env()
    ours = {engine.images.get(ref).id for ref in _images.values()}
    composed = engine.containers.list(all=True, filters={"label": "com.docker.compose.project.working_dir"})
    left = [c.name for c in composed if c.image is not None and c.image.id in ours]
    assert left == [], left

    run = Path(output.split("; outputs in ", 1)[1].splitlines()[0])
    assert run.parent == project / "build" / "pipeline" / "local"
    (execution,) = [path for path in run.iterdir() if path.is_dir()]
    report = json.loads((execution / "evaluation" / "evaluation.json").read_text())
    accuracy = report["multiclass_classification_metrics"]["accuracy"]
    assert 0.9 <= accuracy["value"] <= 1 and 0 <= accuracy["standard_deviation"] < 0.1
    assert f"test accuracy (evaluation.json): {accuracy['value']:.4f}" in output
    assert f"Gate: test accuracy {accuracy['value']:.4f} >= MinAccuracy 0.9: passed." in output

    # The test split (30 of iris's 150 rows) went through the model in a batch transform.
    test_rows = (execution / "test").glob("*.csv")
    labels = [
        line.split(",")[-1].strip('"') for path in test_rows for line in path.read_text().splitlines()[1:]
    ]
    features = [
        line for path in (execution / "test-features").glob("*.csv") for line in path.read_text().splitlines()
    ]
    assert len(labels) == len(features) == 30
    assert all(len(line.split(",")) == 4 for line in features)  # no target column, no header
    # One line per record (AssembleWith Line); blank lines between records are not predictions.
    outputs = [path.read_text() for path in (execution / "transform").glob("*.out")]
    predictions = [line.strip('"') for text in outputs for line in text.splitlines() if line.strip()]
    assert len(predictions) == 30 and set(predictions) <= SPECIES
    matches = sum(prediction == label for prediction, label in zip(predictions, labels))
    assert matches / 30 == pytest.approx(accuracy["value"])
    assert f"Batch transform: 30 predictions for 30 test rows, {matches} match the labels" in output
    assert "Registration happens on SageMaker only" in output


@pytest.mark.slow
def test_local_pipeline_failing_gate_exits_non_zero_with_the_fail_steps_reason(
    built_project, sdk_python, loopback_only
):
    project, _images = built_project
    started = time.monotonic()
    result = make(project, "local-pipeline", check=False, PYTHON=sdk_python, MIN_ACCURACY="1.01")
    print(f"make local-pipeline MIN_ACCURACY=1.01 took {time.monotonic() - started:.0f} s")
    assert result.returncode != 0, result.stdout
    lines = step_lines(result.stdout)
    assert lines[-3].startswith("<== CheckAccuracy (Condition) Succeeded"), lines
    assert lines[-2] == "==> AccuracyTooLow (Fail) started", lines
    assert lines[-1].startswith("<== AccuracyTooLow (Fail) Failed"), lines
    reason = lines[-1].split(": ", 1)[1]
    assert reason.startswith(f"{ACCURACY_PATH} = 0.9666") and reason.endswith(
        "is below the threshold MinAccuracy = 1.01"
    ), reason
    assert not any("CreateModel" in line or "TransformTest" in line for line in lines)
    assert "Gate: test accuracy 0.9667 < MinAccuracy 1.01: failed" in result.stdout
    assert "Pipeline Failed: Step 'AccuracyTooLow' failed with message:" in result.stderr


# --- make pipeline (SageMaker, here moto) ---------------------------------------------------------------


def pipeline_definition(session):
    description = session.client("sagemaker").describe_pipeline(PipelineName=SLUG)
    return json.loads(description["PipelineDefinition"])


def steps_by_name(definition):
    steps = {}
    for step in definition["Steps"]:
        steps[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            steps.update({inner["Name"]: inner for inner in step.get("Arguments", {}).get(branch, [])})
    return steps


def test_pipeline_upserts_the_definition_and_starts_an_execution(default_project, in_ecr, sdk_python):
    result = make(default_project, "pipeline", PYTHON=sdk_python, NO_WAIT="1")
    assert "Created pipeline r-on-sagemaker" in result.stdout
    assert "Started execution arn:aws:sagemaker:" in result.stdout

    definition = pipeline_definition(in_ecr)
    assert {parameter["Name"]: parameter.get("DefaultValue") for parameter in definition["Parameters"]} == {
        "InputData": f"s3://{ship.BUCKET}/{SLUG}/pipeline/input/",
        "ProcessingInstanceType": "ml.t3.medium",
        "TrainingInstanceType": "ml.m5.large",
        "MinAccuracy": 0.9,
        "ModelApprovalStatus": "PendingManualApproval",
    }
    steps = steps_by_name(definition)
    assert [step["Name"] for step in definition["Steps"]] == [
        "Preprocess",
        "Train",
        "Evaluate",
        "CheckAccuracy",
    ]
    preprocess, train, evaluate = steps["Preprocess"], steps["Train"], steps["Evaluate"]
    for step, script in ((preprocess, "preprocess.R"), (evaluate, "evaluate.R")):
        assert step["Arguments"]["AppSpecification"] == {
            "ImageUri": ecr_uri(in_ecr, "processing"),
            "ContainerEntrypoint": ["Rscript", f"/opt/ml/processing/input/code/{script}"],
        }
    assert train["Arguments"]["AlgorithmSpecification"]["TrainingImage"] == ecr_uri(in_ecr, "training")
    assert train["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in train["Arguments"]["InputDataConfig"]
    }
    assert channels == {
        name: {"Get": f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"}
        for name in ("train", "validation")
    }
    assert json.loads(train["Arguments"]["HyperParameters"]["sagemaker_program"]) == "train.R"

    inputs = {
        item["InputName"]: item["S3Input"]["S3Uri"] for item in evaluate["Arguments"]["ProcessingInputs"]
    }
    assert inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["test"] == {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "Evaluation", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    # evaluation.json -> the condition (and the Fail step's message).
    accuracy = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"},
            "Path": ACCURACY_PATH,
        }
    }
    (condition,) = steps["CheckAccuracy"]["Arguments"]["Conditions"]
    assert condition == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": accuracy,
        "RightValue": {"Get": "Parameters.MinAccuracy"},
    }
    assert steps["AccuracyTooLow"]["Type"] == "Fail"
    message = steps["AccuracyTooLow"]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message == [
        f"{ACCURACY_PATH} =",
        accuracy,
        "is below the threshold MinAccuracy =",
        {"Get": "Parameters.MinAccuracy"},
    ]

    register = steps["Register"]
    assert register["Type"] == "RegisterModel"
    arguments = register["Arguments"]
    assert arguments["ModelPackageGroupName"] == SLUG
    assert arguments["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    (container,) = arguments["InferenceSpecification"]["Containers"]
    # The model package names the image that trained and was evaluated by digest: a later push
    # of the tag cannot change what a deploy of this package serves.
    assert container["Image"] == ecr_uri(in_ecr, "training")
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    statistics = arguments["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"] == [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
        "evaluation.json",
    ]

    # Code and data were staged where the definition says.
    s3 = in_ecr.client("s3")
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=ship.BUCKET)["Contents"]}
    assert {
        f"{SLUG}/pipeline/code/preprocess.R/preprocess.R",
        f"{SLUG}/pipeline/code/evaluate.R/evaluate.R",
        f"{SLUG}/pipeline/code/sourcedir.tar.gz",
        f"{SLUG}/pipeline/input/train/iris.csv",
    } <= keys
    executions = in_ecr.client("sagemaker").list_pipeline_executions(PipelineName=SLUG)[
        "PipelineExecutionSummaries"
    ]
    assert len(executions) == 1

    again = make(default_project, "pipeline", PYTHON=sdk_python, NO_WAIT="1", MIN_ACCURACY="0.95")
    assert "Updated pipeline r-on-sagemaker" in again.stdout
    executions = in_ecr.client("sagemaker").list_pipeline_executions(PipelineName=SLUG)[
        "PipelineExecutionSummaries"
    ]
    assert len(executions) == 2


def test_pipeline_steps_carry_instance_counts_and_distributions(
    default_project, in_ecr, sdk_python, monkeypatch
):
    """Issue 30: Preprocess and Train on several instances, each input as configured; Evaluate on one."""
    monkeypatch.setenv("SAGEMAKER_PROCESSING_INSTANCE_COUNT", "3")
    monkeypatch.setenv("SAGEMAKER_PROCESSING_DATA_DISTRIBUTION", "ShardedByS3Key")
    monkeypatch.setenv("SAGEMAKER_TRAINING_INSTANCE_COUNT", "2")
    monkeypatch.setenv("SAGEMAKER_TRAINING_CHANNEL_DISTRIBUTION", json.dumps({"train": "ShardedByS3Key"}))
    make(default_project, "pipeline", PYTHON=sdk_python, NO_WAIT="1")
    steps = steps_by_name(pipeline_definition(in_ecr))
    preprocess, train, evaluate = (steps[name]["Arguments"] for name in ("Preprocess", "Train", "Evaluate"))

    def kinds(inputs):
        return {item["InputName"]: item["S3Input"]["S3DataDistributionType"] for item in inputs}

    assert preprocess["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    assert kinds(preprocess["ProcessingInputs"]) == {"code": "FullyReplicated", "data": "ShardedByS3Key"}
    assert train["ResourceConfig"]["InstanceCount"] == 2
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for channel in train["InputDataConfig"]
    }
    assert channels == {"train": "ShardedByS3Key", "validation": "FullyReplicated"}
    assert evaluate["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert set(kinds(evaluate["ProcessingInputs"]).values()) == {"FullyReplicated"}


HOOK = '''
"""Test seam in the tools' process: record the requests of HOOK_RECORD's operations, and answer
ListPipelineExecutionSteps (which moto 5.2 lacks) with HOOK_STEPS."""
import json
import os

import botocore.awsrequest
import botocore.session

_create_client = botocore.session.Session.create_client


def _record(params, model, **_kwargs):
    if model.name in os.environ.get("HOOK_RECORD", "").split(","):
        with open(os.environ["HOOK_LOG"], "a") as log:  # params: the serialized request
            log.write(json.dumps({"operation": model.name, "request": json.loads(params["body"])}) + "\\n")
    if model.name == "ListPipelineExecutionSteps" and "HOOK_STEPS" in os.environ:
        answer = {"PipelineExecutionSteps": json.loads(os.environ["HOOK_STEPS"])}
        return botocore.awsrequest.AWSResponse("http://127.0.0.1/", 200, {}, None), answer
    return None


def create_client(self, service_name, *args, **kwargs):
    client = _create_client(self, service_name, *args, **kwargs)
    if service_name == "sagemaker":
        client.meta.events.register("before-call.sagemaker", _record)
    return client


botocore.session.Session.create_client = create_client
'''


@pytest.fixture
def hook(tmp_path, monkeypatch):
    """Install HOOK for the make commands; returns a function reading the recorded requests."""
    folder = tmp_path / "hook"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setenv("HOOK_LOG", str(folder / "requests.jsonl"))

    def recorded(operation):
        log = folder / "requests.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return [entry["request"] for entry in map(json.loads, lines) if entry["operation"] == operation]

    return recorded


def test_pipeline_follows_the_execution_and_prints_the_registered_package(
    default_project, in_ecr, sdk_python, hook, monkeypatch, tmp_path
):
    package = f"arn:aws:sagemaker:{ship.REGION}:{ship.ACCOUNT}:model-package/{SLUG}/1"
    steps = [
        {"StepName": name, "StepStatus": "Succeeded", "Metadata": {}}
        for name in ("Preprocess", "Train", "Evaluate", "CheckAccuracy")
    ] + [{"StepName": "Register", "StepStatus": "Succeeded", "Metadata": {"RegisterModel": {"Arn": package}}}]
    monkeypatch.setenv("HOOK_RECORD", "ListPipelineExecutionSteps,StartPipelineExecution")
    monkeypatch.setenv("HOOK_STEPS", json.dumps(steps))
    outcome = tmp_path / "outcome.json"  # --json: what R's project_pipeline() reads
    cli = f"{sdk_python} -m rsagemaker_cli --json {outcome}"
    result = make(default_project, "pipeline", PYTHON=sdk_python, CLI=cli, APPROVAL="Approved")
    for name in ("Preprocess", "Train", "Evaluate", "CheckAccuracy", "Register"):
        assert f"  {name}: Succeeded" in result.stdout
    assert f"Pipeline execution Succeeded. Registered model package: {package}" in result.stdout
    (start,) = hook("StartPipelineExecution")
    assert start["PipelineName"] == SLUG
    assert {item["Name"]: item["Value"] for item in start["PipelineParameters"]} == {
        "MinAccuracy": "0.9",
        "ModelApprovalStatus": "Approved",
    }
    (listing,) = hook("ListPipelineExecutionSteps")  # moto finishes the execution at once: one poll
    assert listing["PipelineExecutionArn"].startswith(
        f"arn:aws:sagemaker:{ship.REGION}:{ship.ACCOUNT}:pipeline/"
    )
    reported = json.loads(outcome.read_text())["result"]
    assert reported == {
        "pipeline": SLUG,
        "execution_arn": listing["PipelineExecutionArn"],
        "status": "Succeeded",
        "model_package_arn": package,
    }


@pytest.mark.parametrize(
    ("unset", "expected"),
    [("SAGEMAKER_ROLE_ARN", "SageMaker execution role is not set"), ("bucket", "does not exist")],
    ids=["no-role", "no-bucket"],
)
def test_pipeline_with_bad_settings_says_so_and_creates_nothing(
    default_project, aws, sdk_python, monkeypatch, unset, expected
):
    if unset != "bucket":  # else the bucket is never created
        aws.client("s3").create_bucket(Bucket=ship.BUCKET)
        monkeypatch.delenv(unset)
    result = make(default_project, "pipeline", check=False, PYTHON=sdk_python, NO_WAIT="1")
    ship.assert_one_clear_error(result, expected)
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
    buckets = [bucket["Name"] for bucket in aws.client("s3").list_buckets()["Buckets"]]
    for bucket in buckets:
        assert aws.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_metric_definitions_match_the_lines_train_r_prints():
    import re

    from rsagemaker_cli.core.settings import BY_KEY

    # The CLI's default metric definitions are the sample train.R's lines.
    assert BY_KEY["training.metric_definitions"].default == METRIC_DEFINITIONS
    train_r = (TEMPLATE / "{{cookiecutter.project_slug}}" / "code" / "train.R").read_text()
    for definition, printed in zip(METRIC_DEFINITIONS, ("train_accuracy=%.4f;", "validation_accuracy=%.4f;")):
        assert f'cat(sprintf("{printed}\\n"' in train_r
        assert re.search(definition["Regex"], printed % 0.9583 + "\n").group(1) == "0.9583"


def test_only_a_project_with_both_images_has_the_pipeline(tmp_path):
    from conftest import bake

    for images in ("training", "processing"):
        project = bake(tmp_path / images, images=images)
        assert not (project / "code" / "evaluate.R").exists()
        assert "local-pipeline" not in (project / "Makefile").read_text()
    both = bake(tmp_path / "both")
    assert (both / "code" / "evaluate.R").exists()
    assert "local-pipeline:" in (both / "Makefile").read_text()
    # (The CLI refuses `rsagemaker pipeline` in a project without both images: cli/tests/test_project.py.)
