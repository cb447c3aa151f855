"""tune, tune-results and deploy TUNING_JOB against moto; config/tuning.json's checks; the local draw.

moto 5.2.5 completes a tuning job at once and answers ListTrainingJobsForHyperParameterTuningJob
with a 500 (not implemented): the tests answer that one call themselves (a botocore before-call hook
on the commands' session) with the training jobs SageMaker would list, in no particular order.
"""

import json
import random

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from cli_support import BUCKET, REGISTRY, ROLE, SLUG, TAG, digest_of, edit_json, the_only
from test_remote_jobs import EXPECTED_TAGS, GROUPS, OUTPUT_KEY, PRODUCTION, SUBNETS, VOLUME_KEY

from rsagemaker_cli.core import tuning as search
from rsagemaker_cli.core.project import load_project

TUNE = ("tune", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
TRAIN = ("remote-train", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
# What SageMaker would list: unordered, one without an objective (it failed).
LISTED = [
    ("job-b", "Completed", 0.93, {"maxdepth": "3", "cp": "0.01"}),
    ("job-c", "Failed", None, {"maxdepth": "1", "cp": "0.15"}),
    ("job-a", "Completed", 0.97, {"maxdepth": "5", "cp": "0.002"}),
    ("job-d", "Completed", 0.67, {"maxdepth": "1", "cp": "0.05"}),
]


def summaries(listed=LISTED):
    jobs = []
    for name, status, value, tuned in listed:
        job = {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
            "CreationTime": "2025-01-01T00:00:00Z",
            "TrainingJobStatus": status,
            "TunedHyperParameters": tuned,
        }
        if value is not None:
            job["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": "train:accuracy",
                "Value": value,
            }
        jobs.append(job)
    return {"TrainingJobSummaries": jobs}


@pytest.fixture
def sagemaker_answers(monkeypatch):
    """The commands' sessions answer ListTrainingJobsForHyperParameterTuningJob with LISTED, and
    DescribeHyperParameterTuningJob's BestTrainingJob names answers["best"] when it is set."""
    answers = {"best": None}

    def listed(**_):
        return AWSResponse("https://sagemaker", 200, {}, None), summaries()

    def best(parsed, **_):
        if answers["best"] and "BestTrainingJob" in parsed:
            parsed["BestTrainingJob"]["TrainingJobName"] = answers["best"]

    class AnsweringSession(boto3.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.events.register("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", listed)
            self.events.register("after-call.sagemaker.DescribeHyperParameterTuningJob", best)

    monkeypatch.setattr(boto3, "Session", AnsweringSession)
    return answers


def table_order(out):
    return [line.split()[1] for line in out.splitlines() if line[:1].isdigit()]


def test_tune_sends_remote_trains_job_with_the_search(project, in_ecr, sagemaker_answers, cli):
    result = cli(*TUNE)
    assert result.code == 0, result.out + result.err
    request = result.request("CreateHyperParameterTuningJob")
    name = request["HyperParameterTuningJobName"]
    assert name.startswith(SLUG) and len(name) <= 32
    config = request["HyperParameterTuningJobConfig"]
    assert config == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "train:accuracy"},
        "ResourceLimits": {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 6},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {"Name": "cp", "MinValue": "0.001", "MaxValue": "0.2", "ScalingType": "Logarithmic"}
            ],
            "IntegerParameterRanges": [
                {"Name": "maxdepth", "MinValue": "1", "MaxValue": "6", "ScalingType": "Auto"}
            ],
            "CategoricalParameterRanges": [],
        },
        "TrainingJobEarlyStoppingType": "Off",
    }
    definition = request["TrainingJobDefinition"]
    # remote-train's job: the image by digest, the metric definitions, the role, data and output.
    digest = digest_of(in_ecr, "training")
    algorithm = definition["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == f"{REGISTRY}/{SLUG}-training@{digest}"
    assert [m["Name"] for m in algorithm["MetricDefinitions"]] == ["train:accuracy", "validation:accuracy"]
    assert definition["RoleArn"] == ROLE
    assert definition["Environment"]["R_SAGEMAKER_IMAGE"] == f"{REGISTRY}/{SLUG}-training:{TAG}@{digest}"
    (channel,) = definition["InputDataConfig"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/{SLUG}/jobs/{name}/input/train/"
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/{SLUG}/output"}
    assert definition["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/{SLUG}/checkpoints/{name}/"
    # The static hyperparameters: config/hyperparameters.json less the tuned names, JSON-encoded.
    static = definition["StaticHyperParameters"]
    assert static["target"] == '"Species"' and "maxdepth" not in static and "cp" not in static
    assert static["sagemaker_program"] == '"train.R"'
    source = json.loads(static["sagemaker_submit_directory"])
    assert source == f"s3://{BUCKET}/{SLUG}/jobs/{name}/source/sourcedir.tar.gz"
    assert "TrainingJobName" not in definition and "HyperParameters" not in definition
    # moto keeps what it was sent.
    described = in_ecr.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name
    )
    assert described["HyperParameterTuningJobConfig"]["ParameterRanges"] == config["ParameterRanges"]

    # Followed to the end, then the table: best first, the failed job last.
    assert f"Created tuning job {name}" in result.out
    assert table_order(result.out) == ["job-a", "job-b", "job-d", "job-c"]
    assert f"Best: job-a. Next: make deploy TUNING_JOB={name}" in result.out
    header = the_only([line for line in result.out.splitlines() if line.startswith("#")])
    assert "train:accuracy (maximize)" in header and "maxdepth" in header and "cp" in header
    assert json.loads((project / "build" / "last-tuning-job.json").read_text())["tuning_job_name"] == name


def test_tune_sends_the_training_settings(project, in_ecr, sagemaker_answers, cli):
    """remote-train's production settings (test_remote_jobs.PRODUCTION) reach every trial."""
    result = cli(*TUNE, "--no-wait", env={**PRODUCTION, "SAGEMAKER_TRAINING_CHECKPOINT_S3_URI": "off"})
    assert result.code == 0, result.err
    request = result.request("CreateHyperParameterTuningJob")
    definition = request["TrainingJobDefinition"]
    assert definition["VpcConfig"] == {"Subnets": SUBNETS, "SecurityGroupIds": GROUPS}
    assert definition["EnableNetworkIsolation"] is True
    assert "code" in [channel["ChannelName"] for channel in definition["InputDataConfig"]]
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == VOLUME_KEY
    assert definition["OutputDataConfig"]["KmsKeyId"] == OUTPUT_KEY
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert "CheckpointConfig" not in definition
    assert sorted(request["Tags"], key=lambda tag: tag["Key"]) == EXPECTED_TAGS and "Tags" not in definition
    assert "make tune-results TUNING_JOB=" in result.out
    assert not result.requests("ListTrainingJobsForHyperParameterTuningJob")


def test_tune_results_and_deploy_the_best_job(project, in_ecr, sagemaker_answers, cli):
    trained = cli(*TRAIN)
    assert trained.code == 0, trained.err
    job = json.loads((project / "build" / "last-training-job.json").read_text())["job_name"]
    edit_json(project / "config" / "tuning.json", objective={"metric": "train:accuracy", "type": "Minimize"})
    name = cli(*TUNE, "--no-wait").request("CreateHyperParameterTuningJob")["HyperParameterTuningJobName"]

    results = cli("tune-results", "--tuning-job", name)
    assert results.code == 0, results.err
    assert table_order(results.out) == ["job-d", "job-b", "job-a", "job-c"]  # minimized
    assert cli("tune-results").out == results.out  # the last tune by default

    sagemaker_answers["best"] = job  # SageMaker's BestTrainingJob: here the job trained above
    deployed = cli("deploy", "--tuning-job", name, "--no-wait")
    assert deployed.code == 0, deployed.err
    container = deployed.request("CreateModel")["PrimaryContainer"]
    described = in_ecr.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert container["Image"] == described["AlgorithmSpecification"]["TrainingImage"]
    assert container["ModelDataUrl"] == described["ModelArtifacts"]["S3ModelArtifacts"]
    assert f"best training job {job} of tuning job {name}" in deployed.out

    cli("deploy", "--tuning-job", "no-such-tuning-job").error("tuning job no-such-tuning-job does not exist")


def bad(**changes):
    return changes


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            bad(objective={"metric": "val:auc", "type": "Maximize"}),
            "objective metric 'val:auc' is not a metric",
        ),
        (bad(objective={"metric": "train:accuracy", "type": "Most"}), "objective type 'Most' is unknown"),
        (bad(ranges={"maxdepth": {"type": "integer", "min": 6, "max": 2}}), "range 'maxdepth' is inverted"),
        (bad(ranges={"cp": {"type": "continuous", "min": 0.1, "max": 0.1}}), "range 'cp' is empty"),
        (bad(ranges={"maxdepth": {"type": "categorical", "values": []}}), "range 'maxdepth' is empty"),
        (
            bad(ranges={"max_depth": {"type": "integer", "min": 1, "max": 3}}),
            "range 'max_depth' tunes a hyperparameter",
        ),
        (
            bad(ranges={"cp": {"type": "continuous", "min": 0, "max": 1, "scaling": "Logarithmic"}}),
            "needs min above 0",
        ),
        (bad(ranges={"maxdepth": {"type": "integer", "min": 1.5, "max": 3}}), "min must be a whole number"),
        (bad(ranges={"cp": {"type": "real", "min": 0, "max": 1}}), "range 'cp' needs a type"),
        (bad(ranges={}), "ranges must name at least one"),
        (bad(strategy="Genetic"), "unknown strategy 'Genetic'"),
        (bad(strategy="Grid"), "Grid strategy searches categorical ranges only"),
        (bad(strategy="Hyperband", early_stopping="Auto"), "Hyperband strategy stops trials itself"),
        (bad(max_parallel_jobs=8), "max_parallel_jobs 8 is more than max_jobs 6"),
        (bad(max_jobs=0), "max_jobs must be a whole number from 1"),
        (bad(maxjobs=3), "unknown key(s) maxjobs"),
    ],
)
def test_a_bad_tuning_json_is_one_line_and_creates_nothing(project, in_ecr, cli, changes, expected):
    edit_json(project / "config" / "tuning.json", **changes)
    result = cli(*TUNE)
    result.error("config/tuning.json: ", expected)
    assert not result.requests("CreateHyperParameterTuningJob")
    assert not result.requests("PutObject") and not result.requests("CreateMultipartUpload")


def test_local_tune_checks_tuning_json_before_any_container(project, cli):
    (project / "config" / "tuning.json").unlink()
    cli("local-tune", "--image", "none:here").error("config/tuning.json: missing")


# --- the local draw (no AWS, no container) ---------------------------------------------------


def local_tuning(project, **changes):
    edit_json(project / "config" / "tuning.json", **changes)
    return search.load(load_project(project), search_metrics())


def search_metrics():
    return [{"Name": "train:accuracy", "Regex": r"train_accuracy=([0-9.]+);"}]


def test_the_draw_honours_types_and_scaling_and_repeats_with_a_seed(project):
    edit_json(project / "config" / "hyperparameters.json", split="gini")
    tuning = local_tuning(
        project,
        ranges={
            "maxdepth": {"type": "integer", "min": 1, "max": 6},
            "cp": {"type": "continuous", "min": 0.0001, "max": 1, "scaling": "Logarithmic"},
            "split": {"type": "categorical", "values": ["gini", "information"]},
        },
    )
    trials = search.sample(tuning, 400, seed=7)
    assert trials == search.sample(tuning, 400, seed=7) != search.sample(tuning, 400, seed=8)
    depths = {t["maxdepth"] for t in trials}
    assert depths == {1, 2, 3, 4, 5, 6} and all(isinstance(d, int) for d in depths)
    assert {t["split"] for t in trials} == {"gini", "information"}
    cps = [t["cp"] for t in trials]
    assert all(0.0001 <= cp <= 1 for cp in cps)
    # Logarithmic: each decade about as likely (linear would put ~90% above 0.1).
    decades = [sum(1 for cp in cps if 10**-k < cp <= 10 ** (-k + 1)) for k in (1, 2, 3, 4)]
    assert min(decades) > 60, decades


def test_grid_enumerates_and_the_objective_is_the_last_match(project):
    edit_json(project / "config" / "hyperparameters.json", split="gini")
    ranges = {
        "maxdepth": {"type": "categorical", "values": [2, 4]},
        "split": {"type": "categorical", "values": ["gini", "information"]},
    }
    tuning = local_tuning(project, strategy="Grid", ranges=ranges, max_parallel_jobs=1)
    assert tuning.max_jobs == 4  # the grid's size
    assert search.sample(tuning, 10) == [
        {"maxdepth": 2, "split": "gini"},
        {"maxdepth": 2, "split": "information"},
        {"maxdepth": 4, "split": "gini"},
        {"maxdepth": 4, "split": "information"},
    ]
    assert "MaxNumberOfTrainingJobs" not in search.tuning_job_config(tuning)["ResourceLimits"]
    assert search.parameter_ranges(tuning)["CategoricalParameterRanges"][1]["Values"] == [
        '"gini"',
        '"information"',
    ]
    assert search.objective_from_log(tuning, "train_accuracy=0.5;\n...\ntrain_accuracy=0.9750;\n") == 0.975
    assert search.objective_from_log(tuning, "nothing here") is None
    reverse = search.Range("momentum", "continuous", 0.2, 0.99, "ReverseLogarithmic")
    rng = random.Random(1)
    draws = [search.draw(reverse, rng) for _ in range(400)]
    assert all(0.2 <= value <= 0.99 for value in draws)
    assert sum(value > 0.9 for value in draws) > 100  # dense near 1, as SageMaker scales it
