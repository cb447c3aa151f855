"""`rsagemaker tune` and `tune-results`: SageMaker automatic model tuning of the project's train.R.

The tuning job's trials are remote-train's job (aws/training.py prepares it: code/ and data/ uploaded,
the pushed image by digest, metric definitions, VPC, KMS, spot, checkpoints, tags) with
config/hyperparameters.json as the static hyperparameters, less the names config/tuning.json
(core/tuning.py, checked before anything is created) searches. tune follows the job and prints its
training jobs best first; tune-results prints that table again; `make deploy TUNING_JOB=name`
serves the best one's model (best_training_job(), used by deployable.py).
"""

import json
import sys
from datetime import datetime, timezone

from ..core import tuning as search
from ..core.aws import open_aws
from ..core.errors import SetupError
from ..core.opt_ml import write_json
from .common import JOB_DONE, is_not_found, wait_for
from .processing import job_arguments
from .training import prepare_training, training_job_request, training_settings_note

MAX_NAME = 32  # SageMaker's limit on a tuning job's name (its trials get a suffix)


def last_tuning_job(project):
    return project.build / "last-tuning-job.json"


def tuning_job_name(project):
    """<project>-<UTC time to the second>, within SageMaker's 32 characters."""
    stamp = datetime.now(timezone.utc).strftime("%y%m%d-%H%M%S")
    return f"{project.resource_name[: MAX_NAME - len(stamp) - 1].strip('-')}-{stamp}"


def tuning_job_request(settings, tuning, prepared, name):
    """CreateHyperParameterTuningJob: remote-train's request as the trials' definition."""
    definition = training_job_request(settings, **prepared)
    del definition["TrainingJobName"]
    definition["StaticHyperParameters"] = definition.pop("HyperParameters")
    tags = definition.pop("Tags", None)
    request = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": search.tuning_job_config(tuning),
        "TrainingJobDefinition": definition,
    }
    if tags:
        request["Tags"] = tags
    return request


def describe_tuning_job(sagemaker, name):
    try:
        return sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except sagemaker.exceptions.ClientError as error:
        if is_not_found(error):
            raise SetupError(f"tuning job {name} does not exist in this account and region") from None
        raise


def best_training_job(sagemaker, name):
    """The training job SageMaker names best in a tuning job (deploy TUNING_JOB=name serves it)."""
    best = describe_tuning_job(sagemaker, name).get("BestTrainingJob") or {}
    if not best.get("TrainingJobName"):
        raise SetupError(
            f"tuning job {name} has no training job with an objective yet: make tune-results TUNING_JOB={name}"
        )
    return best["TrainingJobName"]


def training_jobs(sagemaker, name):
    """Every training job of a tuning job, as core.tuning.Trial."""
    trials, token = [], None
    while True:
        page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100, **({"NextToken": token} if token else {})
        )
        for job in page["TrainingJobSummaries"]:
            final = job.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
            trials.append(
                search.Trial(
                    name=job["TrainingJobName"],
                    status=job["TrainingJobStatus"],
                    objective=final.get("Value"),
                    hyperparameters=job.get("TunedHyperParameters", {}),
                )
            )
        token = page.get("NextToken")
        if not token:
            return trials


def print_results(sagemaker, name, description=None, args=None):
    """The table of a tuning job's training jobs, best first; returns the exit code (and leaves the
    rows in args.result for --json)."""
    description = description or describe_tuning_job(sagemaker, name)
    config = description["HyperParameterTuningJobConfig"]
    objective = config["HyperParameterTuningJobObjective"]
    ranges = config.get("ParameterRanges", {})
    names = [r["Name"] for kind in sorted(ranges) for r in ranges[kind]]
    trials = training_jobs(sagemaker, name)
    status = description["HyperParameterTuningJobStatus"]
    if args is not None:
        ordered = search.best_first(objective["Type"], trials)
        args.result = {
            "tuning_job_name": name,
            "status": status,
            "metric": objective["MetricName"],
            "type": objective["Type"],
            "training_jobs": [
                {
                    "name": t.name,
                    "status": t.status,
                    "objective": t.objective,
                    "hyperparameters": t.hyperparameters,
                }
                for t in ordered
            ],
        }
    print(f"Tuning job {name}: {status}, {len(trials)} training job(s), {config['Strategy']} strategy")
    if not trials:
        print("  no training job yet")
        return 0 if status not in ("Failed", "Stopped") else 1
    table, ordered = search.results_table(objective["MetricName"], objective["Type"], trials, names)
    print(table)
    if ordered[0].objective is not None:
        print(f"Best: {ordered[0].name}. Next: make deploy TUNING_JOB={name}")
    if status == "Failed":
        print(
            f"Tuning job {name} failed: {description.get('FailureReason') or 'no reason given'}",
            file=sys.stderr,
        )
        return 1
    return 0


def tune(args):
    project = args.project
    settings, session, account = open_aws(project, "role_arn", "bucket")
    tuning = search.load(project, settings["training.metric_definitions"])
    hyperparameters = project.hyperparameters()
    name = tuning_job_name(project)
    prepared = prepare_training(
        project, settings, session, account, args, name, tuning.static(hyperparameters)
    )
    sagemaker = session.client("sagemaker")
    sagemaker.create_hyper_parameter_tuning_job(**tuning_job_request(settings, tuning, prepared, name))
    write_json(last_tuning_job(project), {"tuning_job_name": name, "region": settings["region"]})
    jobs = f"{tuning.max_jobs} job(s)" + (" (the grid)" if tuning.strategy == "Grid" else "")
    print(
        f"Created tuning job {name} ({prepared['image'].described}, {settings['training.instance_type']}): "
        f"{tuning.strategy}, {jobs}, {tuning.max_parallel_jobs} at a time, "
        f"{tuning.objective_type.lower()} {tuning.metric}, early stopping {tuning.early_stopping}"
    )
    for r in tuning.ranges:
        print(f"  {r.describe()}")
    training_settings_note(settings, prepared["checkpoints"])
    hint = f"Follow it: make tune-results TUNING_JOB={name}"
    if args.no_wait:
        args.result = {"tuning_job_name": name, "status": None}  # --json; tune-results reports the rest
        print(hint)
        return 0

    def describe():
        description = describe_tuning_job(sagemaker, name)
        counts = description.get("TrainingJobStatusCounters", {})
        description["SecondaryStatus"] = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or None
        return description

    description = wait_for(describe, "HyperParameterTuningJobStatus", JOB_DONE, f"tuning job {name}", hint)
    return print_results(sagemaker, name, description, args)


def tune_results(args):
    project = args.project
    name = args.tuning_job
    if not name:
        record = last_tuning_job(project)
        if not record.exists():
            raise SetupError("no tuning job: run `make tune` first, or pass TUNING_JOB=name")
        name = json.loads(record.read_text())["tuning_job_name"]
    _settings, session, _account = open_aws(project)
    return print_results(session.client("sagemaker"), name, args=args)


tune_arguments = job_arguments


def tune_results_arguments(parser):
    parser.add_argument("--tuning-job", default="", help="the tuning job (default: the last `make tune`)")
