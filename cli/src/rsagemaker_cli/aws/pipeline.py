"""`rsagemaker pipeline`: upsert the pipeline on SageMaker and start an execution.

It uploads code/ (preprocess.R, evaluate.R, the training code as sourcedir.tar.gz) and data/ (or
processing.input_s3_uri), builds the definition (pipeline/definition.py) with the pushed images by
digest, creates or updates the pipeline named after the project, starts an execution with the
MinAccuracy and ModelApprovalStatus parameters and follows it, step by step, to the registered
model package (aws/registry.py lists and approves them).
"""

import sys
import time
from datetime import datetime, timezone

from ..core.aws import check_bucket, open_aws, pushed_image, s3_key, upload_directory, upload_file
from ..core.errors import SetupError
from ..core.opt_ml import pack_sourcedir
from ..pipeline.common import (
    elapsed,
    for_scripts,
    load_sdk,
    min_accuracy,
    pipeline_arguments,
    project_hyperparameters,
    quiet_sdk_logs,
)
from .common import is_not_found
from .registry import package_arn

EXECUTION_DONE = ("Succeeded", "Failed", "Stopped")
POLL_SECONDS = 15


def stage_inputs(project, s3, settings, bucket, prefix):
    """Upload the scripts, the training code and data/ for the pipeline; returns their URIs."""
    uris = {}
    for script in ("preprocess.R", "evaluate.R"):
        if not (project.code / script).is_file():
            raise SetupError(f"code/{script} is missing: the pipeline runs it")
        uris[script] = upload_file(s3, project.code / script, bucket, s3_key(prefix, "code", script, script))
    tarball = project.build / "pipeline" / "sourcedir.tar.gz"
    members = pack_sourcedir(project.code, tarball)
    uris["sourcedir"] = upload_file(s3, tarball, bucket, s3_key(prefix, "code", "sourcedir.tar.gz"))
    print(f"Uploaded code/ (preprocess.R, evaluate.R and {len(members)} files as sourcedir.tar.gz)")
    uris["data"] = settings["processing.input_s3_uri"] or upload_directory(
        s3, project.data, bucket, s3_key(prefix, "input"), shown="data"
    )
    return uris


def build_remote_pipeline(project, definition, settings, session, account, args):
    """Check settings, bucket and images, upload the inputs and build the SDK Pipeline.

    The steps and the registered model package name each image by its digest: the bytes `make push`
    sent, whatever the tag names later (a package deployed months on serves the image it was
    trained and evaluated with)."""
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    region, bucket = settings["region"], settings["bucket"]
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    images = {
        kind: pushed_image(session, account, region, ref, args.tag)
        for kind, ref in (("processing", args.processing_image), ("training", args.training_image))
    }
    for image in images.values():
        print(f"Image {image.described}")
    hyperparameters, target = project_hyperparameters(project)
    prefix = s3_key(settings["s3_prefix"], "pipeline")
    uris = stage_inputs(project, s3, settings, bucket, prefix)
    plan = definition.PipelinePlan(
        name=project.resource_name,
        role_arn=settings["role_arn"],
        processing_image=images["processing"].by_digest,
        training_image=images["training"].by_digest,
        preprocess_code_uri=uris["preprocess.R"],
        evaluate_code_uri=uris["evaluate.R"],
        input_data_uri=uris["data"],
        output_uri=f"s3://{bucket}/{s3_key(prefix, 'executions')}",
        hyperparameters=for_scripts(
            project,
            hyperparameters,
            program=settings["training.entry_point"],
            submit_directory=uris["sourcedir"],
        ),
        target=target,
        model_package_group=project.resource_name,
        metric_definitions=settings["training.metric_definitions"],
        processing_instance_type=settings["processing.instance_type"],
        training_instance_type=settings["training.instance_type"],
        serving_instance_type=settings["training.instance_type"],
        min_accuracy=min_accuracy(args.min_accuracy),
        processing_instance_count=settings["processing.instance_count"],
        training_instance_count=settings["training.instance_count"],
        data_distribution=settings["processing.data_distribution"],
        channel_distribution=settings["training.channel_distribution"],
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
    project = args.project
    threshold = min_accuracy(args.min_accuracy)
    settings, session, account = open_aws(project, "role_arn", "bucket")
    quiet_sdk_logs()
    definition, _ = load_sdk(settings["region"])
    pipeline = build_remote_pipeline(project, definition, settings, session, account, args)
    sagemaker = session.client("sagemaker")
    name = project.resource_name
    upsert(sagemaker, name, pipeline.definition(), settings["role_arn"])
    execution_arn = sagemaker.start_pipeline_execution(
        PipelineName=name,
        PipelineExecutionDisplayName=f"make-pipeline-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}",
        PipelineParameters=[
            {"Name": "MinAccuracy", "Value": str(threshold)},
            {"Name": "ModelApprovalStatus", "Value": args.approval_status},
        ],
    )["PipelineExecutionArn"]
    print(f"Started execution {execution_arn} (MinAccuracy {threshold})")
    args.result = {
        "pipeline": name,
        "execution_arn": execution_arn,
        "status": None,
        "model_package_arn": None,
    }
    hint = f"aws sagemaker list-pipeline-execution-steps --pipeline-execution-arn {execution_arn}"
    if args.no_wait:
        print(f"Follow it: {hint}")
        print("Next, once it has succeeded: make models")
        return 0
    description, steps = follow(sagemaker, execution_arn)
    status = description["PipelineExecutionStatus"]
    args.result["status"] = status
    if status != "Succeeded":
        reason = description.get("FailureReason") or next(
            (step["FailureReason"] for step in steps if step.get("FailureReason")), "no reason given"
        )
        print(f"Pipeline execution {status}: {reason}", file=sys.stderr)
        return 1
    arn = registered_package(steps)
    args.result["model_package_arn"] = arn
    print(f"Pipeline execution Succeeded. Registered model package: {arn or '(none reported)'}")
    if arn is None:
        example = package_arn(account, settings["region"], name, 1)
        print(f"  (see the group's versions with make models; an ARN looks like {example})")
    print("Next: make models; make approve VERSION=<n>; make deploy")
    return 0


def remote_pipeline_arguments(parser):
    pipeline_arguments(parser)
    parser.add_argument("--tag", required=True, help="the pushed tag of both images")
    parser.add_argument("--no-wait", action="store_true", help="return once the execution has started")
    parser.add_argument(
        "--approval-status",
        default="PendingManualApproval",
        choices=("PendingManualApproval", "Approved"),
        help="the registered version's approval status",
    )
