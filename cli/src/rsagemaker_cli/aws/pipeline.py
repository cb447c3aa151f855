"""Pipeline commands: `make local-pipeline` (this machine) and `make pipeline` (SageMaker).

The pipeline (pipeline_definition.py, SageMaker Python SDK v3) runs code/preprocess.R, code/train.R
and code/evaluate.R in the project's images, then gates on the test accuracy in evaluation.json:
at or above MinAccuracy the model is registered in the model package group (registry.py), below it
a Fail step names the metric, its value and the threshold.

local-pipeline uses the SDK's local mode with the local images and local files (no AWS account; the
containers get dummy credentials). Local mode cannot register models, so there the passing branch
creates the model and batch-transforms the test split with it instead.
pipeline uploads code/ and data/ to S3, upserts the pipeline, starts an execution and follows it.
The SDK is an optional dependency (the `pipeline` extra): only these commands import it.
"""

import json
import logging
import os
import socket
import sys
import time
import warnings
from datetime import datetime, timezone

from .opt_ml import encode_hyperparameters, pack_sourcedir, read_hyperparameters
from .registry import MODEL_PACKAGE_GROUP, package_arn
from .settings import BUILD_DIR, PROJECT_DIR, SetupError

PIPELINE_NAME = "{{ cookiecutter.project_slug | replace('_', '-') | replace('.', '-') }}"
CODE_DIR = PROJECT_DIR / "code"
DATA_DIR = PROJECT_DIR / "data"
HYPERPARAMETERS_FILE = PROJECT_DIR / "config" / "hyperparameters.json"
LOCAL_RUNS = BUILD_DIR / "pipeline" / "local"
SDK_HINT = "install the SageMaker Python SDK v3 with the pipeline extra: pip install -e '.[pipeline]'"
EXECUTION_DONE = ("Succeeded", "Failed", "Stopped")
POLL_SECONDS = 15


def load_sdk_modules(region, *names):
    """Import the modules that need the SDK, or fail with one line saying what to install.

    Importing the SDK creates boto3 clients, which need a region: the project's, unless one is set.
    """
    import importlib

    os.environ.setdefault("AWS_DEFAULT_REGION", region)

    try:
        return [importlib.import_module(f"sagemaker_tools.{name}") for name in names]
    except ImportError as error:
        missing = error.name or "sagemaker"
        raise SetupError(
            f"the pipeline commands need {missing}, which is not installed: {SDK_HINT}"
        ) from None


def quiet_sdk_logs():
    """The SDK logs requests and compose files at INFO (and resets the root logger to DEBUG while it
    builds steps), and warns of what it leaves out of the definition on purpose. Keep its other
    warnings and the containers' output: the tools themselves do not log."""
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


def project_hyperparameters():
    """(hyperparameters.json as a dict, the target column) for the training step and the scripts."""
    hyperparameters = read_hyperparameters(HYPERPARAMETERS_FILE)
    return hyperparameters, str(hyperparameters.get("target", "Species"))


def for_scripts(hyperparameters, **sdk_keys):
    try:
        return encode_hyperparameters(hyperparameters, **sdk_keys)
    except ValueError as error:
        raise SetupError(f"{HYPERPARAMETERS_FILE.relative_to(PROJECT_DIR)}: {error}") from None


def elapsed(seconds):
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


# --- local-pipeline ------------------------------------------------------------------------------------


class LocalReport:
    """One line as each step starts and ends, the metric after Evaluate and the gate's outcome."""

    def __init__(self, definition):
        self.definition = definition
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
        from .pipeline_local import file_path

        output = properties["ProcessingOutputConfig"]["Outputs"]["evaluation"]["S3Output"]["S3Uri"]
        report = json.loads((file_path(output) / self.definition.EVALUATION_FILE).read_text())
        return float(report["multiclass_classification_metrics"]["accuracy"]["value"])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_predictions(run_dir, transform_output, target):
    """The batch transform's output: one prediction per test row. Returns (rows, matches, output file)."""
    from .pipeline_local import file_path

    outputs = sorted(file_path(transform_output).glob("*.out"))
    if not outputs:
        raise SetupError(f"the batch transform wrote no output under {file_path(transform_output)}")
    predictions = [line for path in outputs for line in path.read_text().splitlines() if line.strip()]
    test_files = sorted(run_dir.rglob("test/test-*.csv"))
    import csv

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
    import tempfile

    from .engine import connect

    client = connect()
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
    try:
        return run_local_pipeline(args)
    finally:
        remove_step_containers((args.processing_image, args.training_image))


def run_local_pipeline(args):
    from .engine import check_image, connect
    from .settings import load

    threshold = min_accuracy(args.min_accuracy)
    region = load()["region"]
    # Importing the SDK creates boto3 clients; without credentials botocore would ask the EC2
    # instance metadata service for some. A local run needs no AWS account: keep it on this machine.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    quiet_sdk_logs()
    definition, local = load_sdk_modules(region, "pipeline_definition", "pipeline_local")
    import boto3

    client = connect()
    for ref in (args.processing_image, args.training_image):
        check_image(client, ref)
    client.close()
    hyperparameters, target = project_hyperparameters()
    run_dir = LOCAL_RUNS / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    code_uri = CODE_DIR.as_uri()
    plan = definition.PipelinePlan(
        name=PIPELINE_NAME,
        role_arn="arn:aws:iam::000000000000:role/local-pipeline",  # not used by local mode
        processing_image=args.processing_image,
        training_image=args.training_image,
        preprocess_code_uri=code_uri,
        evaluate_code_uri=code_uri,
        input_data_uri=DATA_DIR.as_uri(),
        output_uri=run_dir.as_uri(),
        hyperparameters=for_scripts(hyperparameters, program="train.R", submit_directory=code_uri),
        target=target,
        model_package_group=MODEL_PACKAGE_GROUP,
        processing_instance_type="local",
        training_instance_type="local",
        min_accuracy=threshold,
        local=True,
    )
    # Dummy credentials: the local containers must never act on a real account.
    boto_session = boto3.Session(
        aws_access_key_id="local-pipeline", aws_secret_access_key="local-pipeline", region_name=region
    )
    report = LocalReport(definition)
    step_session, runner = local.sessions(boto_session, free_port(), report)
    pipeline = definition.build(plan, step_session)
    print(f"Running pipeline {PIPELINE_NAME} locally (MinAccuracy {threshold}); outputs in {run_dir}")
    runner.create_pipeline(pipeline, f"{PIPELINE_NAME}, run by make local-pipeline")
    execution = runner.start_pipeline_execution(PipelineName=PIPELINE_NAME)
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
    rows, matches, output = check_predictions(where, report.transform_output, target)
    print(f"Batch transform: {rows} predictions for {rows} test rows, {matches} match the labels ({output})")
    print(
        "Registration happens on SageMaker only (local mode cannot register models): here CreateModel "
        f"and TransformTest stood in for Register. Next: make push, then make pipeline to register the "
        f"model in model package group {MODEL_PACKAGE_GROUP}."
    )
    return 0


# --- pipeline (SageMaker) ------------------------------------------------------------------------------


def stage_inputs(s3, settings, bucket, prefix):
    """Upload the scripts, the training code and data/ for the pipeline; returns their URIs."""
    from .remote import s3_key, upload_directory, upload_file

    uris = {}
    for script in ("preprocess.R", "evaluate.R"):
        if not (CODE_DIR / script).is_file():
            raise SetupError(f"code/{script} is missing: the pipeline runs it")
        uris[script] = upload_file(s3, CODE_DIR / script, bucket, s3_key(prefix, "code", script, script))
    tarball = BUILD_DIR / "pipeline" / "sourcedir.tar.gz"
    members = pack_sourcedir(CODE_DIR, tarball)
    uris["sourcedir"] = upload_file(s3, tarball, bucket, s3_key(prefix, "code", "sourcedir.tar.gz"))
    print(f"Uploaded code/ (preprocess.R, evaluate.R and {len(members)} files as sourcedir.tar.gz)")
    uris["data"] = settings["processing.input_s3_uri"] or upload_directory(
        s3, DATA_DIR, bucket, s3_key(prefix, "input")
    )
    return uris


def build_remote_pipeline(definition, settings, session, account, args):
    """Check settings, bucket and images, upload the inputs and build the SDK Pipeline."""
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from .remote import check_bucket, pushed_image_uri, s3_key

    region, bucket = settings["region"], settings["bucket"]
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    images = {
        kind: pushed_image_uri(session, account, region, ref, args.tag)
        for kind, ref in (("processing", args.processing_image), ("training", args.training_image))
    }
    hyperparameters, target = project_hyperparameters()
    prefix = s3_key(settings["s3_prefix"], "pipeline")
    uris = stage_inputs(s3, settings, bucket, prefix)
    plan = definition.PipelinePlan(
        name=PIPELINE_NAME,
        role_arn=settings["role_arn"],
        processing_image=images["processing"],
        training_image=images["training"],
        preprocess_code_uri=uris["preprocess.R"],
        evaluate_code_uri=uris["evaluate.R"],
        input_data_uri=uris["data"],
        output_uri=f"s3://{bucket}/{s3_key(prefix, 'executions')}",
        hyperparameters=for_scripts(
            hyperparameters, program=settings["training.entry_point"], submit_directory=uris["sourcedir"]
        ),
        target=target,
        model_package_group=MODEL_PACKAGE_GROUP,
        processing_instance_type=settings["processing.instance_type"],
        training_instance_type=settings["training.instance_type"],
        serving_instance_type=settings["training.instance_type"],
        min_accuracy=min_accuracy(args.min_accuracy),
    )
    pipeline_session = PipelineSession(boto_session=session, default_bucket=bucket)
    return definition.build(plan, pipeline_session)


def upsert(sagemaker, name, definition_json, role_arn):
    request = {
        "PipelineName": name,
        "PipelineDefinition": definition_json,
        "RoleArn": role_arn,
        "PipelineDescription": "process -> train -> evaluate -> accuracy gate -> register (make pipeline)",
    }
    from .endpoints import is_not_found

    try:
        sagemaker.describe_pipeline(PipelineName=name)
    except sagemaker.exceptions.ClientError as error:
        # SageMaker answers ResourceNotFound ("... does not exist"); moto a ValidationException.
        if error.response.get("Error", {}).get("Code") != "ResourceNotFound" and not is_not_found(error):
            raise
        arn = sagemaker.create_pipeline(**request)["PipelineArn"]
        print(f"Created pipeline {name}: {arn}")
        return arn
    arn = sagemaker.update_pipeline(**request)["PipelineArn"]
    print(f"Updated pipeline {name}: {arn}")
    return arn


def follow(sagemaker, execution_arn):
    """A line per step status change until the execution ends; returns (description, steps)."""
    seen = {}
    started = time.monotonic()
    try:
        while True:
            description = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            steps = sagemaker.list_pipeline_execution_steps(
                PipelineExecutionArn=execution_arn, SortOrder="Ascending"
            )["PipelineExecutionSteps"]
            for step in steps:
                state = step.get("StepStatus")
                if seen.get(step["StepName"]) != state:
                    seen[step["StepName"]] = state
                    reason = f": {step['FailureReason']}" if step.get("FailureReason") else ""
                    print(
                        f"  {step['StepName']}: {state}{reason}  [{elapsed(time.monotonic() - started)}]",
                        flush=True,
                    )
            if description["PipelineExecutionStatus"] in EXECUTION_DONE:
                return description, steps
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print(
            f"\nStopped following; the execution goes on. Follow it: aws sagemaker "
            f"describe-pipeline-execution --pipeline-execution-arn {execution_arn}",
            file=sys.stderr,
        )
        raise


def registered_package(steps):
    for step in steps:
        arn = step.get("Metadata", {}).get("RegisterModel", {}).get("Arn")
        if arn:
            return arn
    return None


def remote_pipeline(args):
    from .remote import open_aws

    threshold = min_accuracy(args.min_accuracy)
    settings, session, account = open_aws("role_arn", "bucket")
    quiet_sdk_logs()
    (definition,) = load_sdk_modules(settings["region"], "pipeline_definition")
    pipeline = build_remote_pipeline(definition, settings, session, account, args)
    sagemaker = session.client("sagemaker")
    upsert(sagemaker, PIPELINE_NAME, pipeline.definition(), settings["role_arn"])
    execution_arn = sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE_NAME,
        PipelineExecutionDisplayName=f"make-pipeline-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}",
        PipelineParameters=[
            {"Name": "MinAccuracy", "Value": str(threshold)},
            {"Name": "ModelApprovalStatus", "Value": args.approval_status},
        ],
    )["PipelineExecutionArn"]
    print(f"Started execution {execution_arn} (MinAccuracy {threshold})")
    hint = f"aws sagemaker list-pipeline-execution-steps --pipeline-execution-arn {execution_arn}"
    if args.no_wait:
        print(f"Follow it: {hint}")
        print("Next, once it has succeeded: make models")
        return 0
    description, steps = follow(sagemaker, execution_arn)
    status = description["PipelineExecutionStatus"]
    if status != "Succeeded":
        reason = description.get("FailureReason") or next(
            (step["FailureReason"] for step in steps if step.get("FailureReason")), "no reason given"
        )
        print(f"Pipeline execution {status}: {reason}", file=sys.stderr)
        return 1
    arn = registered_package(steps)
    print(f"Pipeline execution Succeeded. Registered model package: {arn or '(none reported)'}")
    if arn is None:
        example = package_arn(account, settings["region"], MODEL_PACKAGE_GROUP, 1)
        print(f"  (see the group's versions with make models; an ARN looks like {example})")
    print("Next: make models; make approve VERSION=<n>; make deploy")
    return 0


def register(subparsers):
    def pipeline_parser(command, help_text):
        parser = subparsers.add_parser(command, help=help_text)
        parser.add_argument("--processing-image", required=True, help="the local processing image ref")
        parser.add_argument("--training-image", required=True, help="the local training image ref")
        parser.add_argument("--min-accuracy", default="0.9", help="the gate's threshold (MinAccuracy)")
        return parser

    pipeline_parser("local-pipeline", "Run the pipeline here, in local containers").set_defaults(
        handler=local_pipeline
    )
    parser = pipeline_parser("pipeline", "Upsert the pipeline on SageMaker and start an execution")
    parser.add_argument("--tag", required=True, help="the pushed tag of both images")
    parser.add_argument("--no-wait", action="store_true", help="return once the execution has started")
    parser.add_argument(
        "--approval-status",
        default="PendingManualApproval",
        choices=("PendingManualApproval", "Approved"),
        help="the registered version's approval status",
    )
    parser.set_defaults(handler=remote_pipeline)
