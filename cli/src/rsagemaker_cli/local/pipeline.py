"""`rsagemaker local-pipeline`: the pipeline on this machine, in local containers (no AWS account).

The SDK's local mode (pipeline/local_mode.py) runs each step in the project's local images with
local files; the containers get dummy credentials. Local mode cannot register models, so the
passing branch creates the model and batch-transforms the test split with it instead, and this
command checks one prediction per test row. The steps, the gate and the shared inputs are
pipeline/definition.py's and pipeline/common.py's.
"""

import csv
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

from ..core import engine
from ..core.errors import SetupError
from ..core.net import free_port
from ..core.settings import load
from ..pipeline.common import (
    elapsed,
    for_scripts,
    load_sdk,
    min_accuracy,
    pipeline_arguments,
    project_hyperparameters,
    quiet_sdk_logs,
)

local_pipeline_arguments = pipeline_arguments


class LocalReport:
    """One line as each step starts and ends, the metric after Evaluate and the gate's outcome."""

    def __init__(self, definition, file_path):
        self.definition = definition
        self.file_path = file_path  # local_mode.file_path: the folder of a file:// URI
        self.started_at = {}
        self.accuracy = None
        self.gate_passed = None
        self.transform_output = None

    def started(self, step):
        self.started_at[step.name] = time.monotonic()
        print(f"==> {step.name} ({step.step_type.value}) started", flush=True)

    def finished(self, step, status, properties):
        took = elapsed(time.monotonic() - self.started_at.get(step.name, time.monotonic()))
        line = f"<== {step.name} ({step.step_type.value}) {status} [{took}]"
        if status != "Succeeded":
            line += f": {properties.get('FailureReason', 'no reason given')}"
        print(line, flush=True)
        if status != "Succeeded":
            return
        if step.name == self.definition.EVALUATE:
            self.accuracy = self.read_accuracy(properties)
            if self.accuracy is not None:
                print(f"    test accuracy (evaluation.json): {self.accuracy:.4f}", flush=True)
        elif step.name == self.definition.CHECK:
            self.gate_passed = bool(properties.get("Outcome"))
        elif step.name == self.definition.TRANSFORM:
            self.transform_output = properties.get("TransformOutput", {}).get("S3OutputPath")

    def read_accuracy(self, properties):
        output = properties["ProcessingOutputConfig"]["Outputs"]["evaluation"]["S3Output"]["S3Uri"]
        report = json.loads((self.file_path(output) / self.definition.EVALUATION_FILE).read_text())
        return float(report["multiclass_classification_metrics"]["accuracy"]["value"])


def check_predictions(run_dir, transform_output, target, file_path):
    """The batch transform's output: one prediction per test row. Returns (rows, matches, output file)."""
    outputs = sorted(file_path(transform_output).glob("*.out"))
    if not outputs:
        raise SetupError(f"the batch transform wrote no output under {file_path(transform_output)}")
    predictions = [line for path in outputs for line in path.read_text().splitlines() if line.strip()]
    test_files = sorted(run_dir.rglob("test/test-*.csv"))
    labels = []
    for path in test_files:
        with path.open(newline="") as handle:
            labels.extend(row[target] for row in csv.DictReader(handle))
    if len(predictions) != len(labels):
        raise SetupError(
            f"the batch transform returned {len(predictions)} prediction(s) for {len(labels)} test row(s) "
            f"({', '.join(str(path) for path in outputs)})"
        )
    matches = sum(prediction.strip().strip('"') == label for prediction, label in zip(predictions, labels))
    return len(labels), matches, outputs[0]


# The SDK's local mode runs each step with `docker-compose up` from a temporary folder and never
# removes the containers; they would pile up, one per step and run.
COMPOSE_PROJECT_DIR_LABEL = "com.docker.compose.project.working_dir"


def remove_step_containers(images):
    """Remove the stopped step containers the SDK's local mode left, of this project's images only."""
    client = engine.connect()
    try:
        ours = {client.images.get(ref).id for ref in images}
        leftovers = [
            container
            for container in client.containers.list(
                all=True, filters={"status": "exited", "label": COMPOSE_PROJECT_DIR_LABEL}
            )
            if container.image is not None
            and container.image.id in ours
            and container.labels.get(COMPOSE_PROJECT_DIR_LABEL, "").startswith(tempfile.gettempdir())
        ]
        for container in leftovers:
            container.remove()
        if leftovers:
            print(f"Removed the {len(leftovers)} stopped step container(s) the SDK's local mode left.")
    finally:
        client.close()


def local_pipeline(args):
    """Check the arguments, the SDK and the images, then run the pipeline and remove what the
    SDK's local mode leaves behind."""
    project = args.project
    threshold = min_accuracy(args.min_accuracy)
    settings = load(project, keys=("region", "training.metric_definitions"))
    region = settings["region"] or "us-east-1"
    # Importing the SDK creates boto3 clients; without credentials botocore would ask the EC2
    # instance metadata service for some. A local run needs no AWS account: keep it on this machine.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    quiet_sdk_logs()
    sdk = load_sdk(region, local=True)
    client = engine.connect()
    for ref in (args.processing_image, args.training_image):
        engine.check_image(client, ref)
    client.close()
    try:
        return run_local_pipeline(args, project, sdk, settings, threshold)
    finally:
        remove_step_containers((args.processing_image, args.training_image))


def run_local_pipeline(args, project, sdk, settings, threshold):
    import boto3

    definition, local = sdk
    region = settings["region"] or "us-east-1"
    hyperparameters, target = project_hyperparameters(project)
    run_dir = project.build / "pipeline" / "local" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    code_uri = project.code.as_uri()
    name = project.resource_name
    plan = definition.PipelinePlan(
        name=name,
        role_arn="arn:aws:iam::000000000000:role/local-pipeline",  # not used by local mode
        processing_image=args.processing_image,
        training_image=args.training_image,
        preprocess_code_uri=code_uri,
        evaluate_code_uri=code_uri,
        input_data_uri=project.data.as_uri(),
        output_uri=run_dir.as_uri(),
        hyperparameters=for_scripts(project, hyperparameters, program="train.R", submit_directory=code_uri),
        target=target,
        model_package_group=name,
        metric_definitions=settings["training.metric_definitions"],
        processing_instance_type="local",
        training_instance_type="local",
        min_accuracy=threshold,
        local=True,
    )
    # Dummy credentials: the local containers must never act on a real account.
    boto_session = boto3.Session(
        aws_access_key_id="local-pipeline", aws_secret_access_key="local-pipeline", region_name=region
    )
    report = LocalReport(definition, local.file_path)
    step_session, runner = local.sessions(boto_session, free_port(), report)
    pipeline = definition.build(plan, step_session)
    print(f"Running pipeline {name} locally (MinAccuracy {threshold}); outputs in {run_dir}")
    runner.create_pipeline(pipeline, f"{name}, run by make local-pipeline")
    execution = runner.start_pipeline_execution(PipelineName=name)
    outcome = execution.describe()
    status = outcome["PipelineExecutionStatus"]
    where = run_dir / outcome["PipelineExecutionArn"]

    if report.gate_passed is False or (report.accuracy is not None and report.accuracy < threshold):
        shown = f"{report.accuracy:.4f}" if report.accuracy is not None else "?"
        print(f"Gate: test accuracy {shown} < MinAccuracy {threshold}: failed; nothing would be registered.")
        print(f"Pipeline {status}: {outcome.get('FailureReason', 'no reason given')}", file=sys.stderr)
        return 1
    if status != "Succeeded":
        print(f"Pipeline {status}: {outcome.get('FailureReason', 'no reason given')}", file=sys.stderr)
        print(f"Outputs so far in {where}", file=sys.stderr)
        return 1
    print(f"Gate: test accuracy {report.accuracy:.4f} >= MinAccuracy {threshold}: passed.")
    rows, matches, output = check_predictions(where, report.transform_output, target, local.file_path)
    print(f"Batch transform: {rows} predictions for {rows} test rows, {matches} match the labels ({output})")
    print(
        "Registration happens on SageMaker only (local mode cannot register models): here CreateModel "
        f"and TransformTest stood in for Register. Next: make push, then make pipeline to register the "
        f"model in model package group {name}."
    )
    return 0
