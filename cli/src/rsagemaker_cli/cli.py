"""rsagemaker COMMAND: build, run locally and ship the R code of a project made from the r-sagemaker
template (its Makefile's targets call these). Run it in the project (or a folder inside it)."""

import argparse
import importlib
import json
import signal
import sys
from dataclasses import dataclass

import botocore.exceptions

from . import __version__
from .core.errors import ToolError
from .core.project import find_project

PROCESSING, TRAINING, BOTH = ("processing",), ("training",), ("processing", "training")


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # under rsagemaker_cli: it defines handler(args) and handler_arguments(parser)
    handler: str
    images: tuple  # the images of the project the command needs
    help: str


# The command table: every command, where it lives, and the images it needs.
COMMANDS = (
    Command(
        "settings",
        "config.show_settings",
        "show",
        (),
        "Print every AWS setting and where its value comes from",
    ),
    Command(
        "pin-base", "config.pin_base", "pin_base", (), "Pin BASE_IMAGE to its tag's current @sha256 digest"
    ),
    # On this machine (local/), no AWS account.
    Command(
        "local-process",
        "local.process",
        "local_process",
        PROCESSING,
        "Run code/preprocess.R in the processing image",
    ),
    Command(
        "local-train",
        "local.train",
        "local_train",
        TRAINING,
        "Train in the training image; writes build/model.tar.gz",
    ),
    Command(
        "local-serve",
        "local.serve",
        "local_serve",
        TRAINING,
        "Serve build/model.tar.gz on 127.0.0.1 (detached)",
    ),
    Command(
        "predict", "local.predict", "predict", TRAINING, "Send sample rows of data/ to the local endpoint"
    ),
    Command("local-stop", "local.serve", "local_stop", (), "Stop and remove this project's local containers"),
    Command(
        "local-transform", "local.transform", "local_transform", TRAINING, "Run a batch transform job here"
    ),
    Command(
        "local-tune",
        "local.tune",
        "local_tune",
        TRAINING,
        "Search config/tuning.json here: N trials in the training image",
    ),
    Command(
        "local-monitor",
        "local.monitor",
        "local_monitor",
        PROCESSING,
        "Run code/monitor.R here on build/capture/ against the local model's baseline",
    ),
    Command("bench", "local.bench", "bench", TRAINING, "Benchmark the server with this project's model"),
    Command(
        "local-pipeline",
        "local.pipeline",
        "local_pipeline",
        BOTH,
        "Run the pipeline here, in local containers",
    ),
    # Amazon ECR and SageMaker (aws/).
    Command("push", "aws.push", "push", (), "Push the built images to Amazon ECR (or to --registry)"),
    Command(
        "remote-build",
        "aws.remote_build",
        "remote_build",
        (),
        "Build and push the images in AWS CodeBuild (no local Docker)",
    ),
    Command(
        "remote-build-role",
        "aws.codebuild_role",
        "remote_build_role",
        (),
        "Create or update remote-build's CodeBuild service role",
    ),
    Command(
        "remote-process",
        "aws.processing",
        "remote_process",
        PROCESSING,
        "Run code/preprocess.R as a processing job",
    ),
    Command(
        "remote-train",
        "aws.training",
        "remote_train",
        TRAINING,
        "Run a SageMaker training job with code/ and data/",
    ),
    Command("tune", "aws.tuning", "tune", TRAINING, "Run a SageMaker tuning job over config/tuning.json"),
    Command(
        "tune-results",
        "aws.tuning",
        "tune_results",
        TRAINING,
        "Print a tuning job's training jobs, best first",
    ),
    Command("deploy", "aws.endpoints", "deploy", TRAINING, "Deploy a trained model to an endpoint"),
    Command("invoke", "aws.endpoints", "invoke", TRAINING, "Send sample rows to the endpoint"),
    Command("undeploy", "aws.endpoints", "undeploy", TRAINING, "Delete the endpoint, its configs and models"),
    Command(
        "invoke-async",
        "aws.async_inference",
        "invoke_async",
        TRAINING,
        "Send a request to the asynchronous endpoint",
    ),
    Command(
        "autoscale",
        "aws.autoscaling",
        "autoscale",
        TRAINING,
        "Scale the endpoint's instances (MIN, MAX, TARGET)",
    ),
    Command(
        "remote-transform",
        "aws.transform",
        "remote_transform",
        TRAINING,
        "Run a SageMaker batch transform job",
    ),
    Command(
        "monitor",
        "aws.monitoring",
        "monitor",
        PROCESSING,
        "Run code/monitor.R as a processing job over the endpoint's data capture",
    ),
    Command(
        "monitor-schedule",
        "aws.monitoring",
        "monitor_schedule",
        PROCESSING,
        "Run the monitoring job on a schedule (EventBridge Scheduler, daily by default)",
    ),
    Command(
        "monitor-unschedule", "aws.monitoring", "monitor_unschedule", (), "Delete the monitoring schedule"
    ),
    Command(
        "monitor-schedule-role",
        "aws.monitoring",
        "monitor_schedule_role",
        (),
        "Create or update the role the monitoring schedule runs as",
    ),
    Command("models", "aws.registry", "models", TRAINING, "List the model package group's versions"),
    Command("approve", "aws.registry", "approve", TRAINING, "Approve (or reject) one model package version"),
    Command(
        "pipeline", "aws.pipeline", "remote_pipeline", BOTH, "Upsert the pipeline on SageMaker and start it"
    ),
)


def build_parser():
    parser = argparse.ArgumentParser(prog="rsagemaker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rsagemaker {__version__}")
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write the outcome as JSON to FILE: exit_status, error (its one line) and result "
        "(what the command made or read, for the commands that have one; R's project_*() read it)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        module = importlib.import_module(f"{__package__}.{command.module}")
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        add_arguments = getattr(module, f"{command.handler}_arguments", None)
        if add_arguments:
            add_arguments(sub)
        sub.set_defaults(handler=getattr(module, command.handler), needs=command.images)
    return parser


def check_images(project, command, needs):
    """One line when the project does not build an image the command runs."""
    missing = [image for image in needs if image not in project.images]
    if missing:
        raise ToolError(
            f"`rsagemaker {command}` needs the {' and '.join(missing)} image, which this project does not "
            f"build (its Makefile: IMAGES := {' '.join(project.images)})"
        )


def main(argv=None):
    # Ctrl-C (SIGINT) stops a command and removes its containers, also when it was started as a
    # background job of a script (`make local-train &`, some CI runners): such a job inherits SIGINT
    # ignored, and Python then leaves it ignored, so a stop would leave the containers running.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = build_parser().parse_args(argv)
    args.result = None  # a handler may set it: what --json FILE reports as "result"
    code, error = run(args)
    if args.json:
        outcome = {"command": args.command, "exit_status": code, "error": error, "result": args.result}
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(outcome, file, indent=2, default=str)
            file.write("\n")
    return code


def run(args):
    """The command's exit status and its error line (printed to stderr too), or None."""
    try:
        args.project = find_project()
        check_images(args.project, args.command, args.needs)
        return args.handler(args) or 0, None
    except ToolError as error:
        return failed(f"error: {error}", error.exit_code)
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        message = " ".join(str(details.get("Message", "")).split())[:300]  # one line, even from HTML
        return failed(f"error: AWS refused {error.operation_name}: {details.get('Code')}: {message}", 1)
    except botocore.exceptions.BotoCoreError as error:
        return failed(f"error: {error}", 1)
    except KeyboardInterrupt:
        return failed("Interrupted.", 130)


def failed(line, code):
    print(line, file=sys.stderr)
    return code, line.removeprefix("error: ")
