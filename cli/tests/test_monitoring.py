"""Data capture and monitoring against moto: deploy --capture's DataCaptureConfig, the monitoring
processing job (code/monitor.R over the captured prefix and the deployed model's baseline), its
schedule in EventBridge Scheduler and its removal."""

import fnmatch
import json

import pytest
from cli_support import ACCOUNT, BUCKET, REGION, ROLE, SLUG, TAG, s3_read, the_only

TRAIN = ("remote-train", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
MONITOR = ("monitor", "--image", f"{SLUG}-processing:{TAG}", "--tag", TAG)
SCHEDULE = ("monitor-schedule", "--image", f"{SLUG}-processing:{TAG}", "--tag", TAG)
CAPTURE_KEY = "alias/cli-test-capture"
SCHEDULER_ROLE = ROLE.replace("cli-test", "cli-test-scheduler")


@pytest.fixture
def deployed(project, in_ecr, cli):
    """A model trained and deployed with data capture; returns its model.tar.gz URI."""
    (project / "code" / "monitor.R").write_text("# the monitoring script\n")
    assert cli(*TRAIN).code == 0
    result = cli("deploy", "--capture", env={"SAGEMAKER_CAPTURE_KMS_KEY_ID": CAPTURE_KEY})
    assert result.code == 0, result.err
    assert "capturing 100 % of requests" in result.out
    return json.loads((project / "build" / "endpoint.json").read_text())["serving"]["model_data"]


def test_deploy_capture_sends_the_data_capture_config(project, in_ecr, cli):
    assert cli(*TRAIN).code == 0
    env = {"SAGEMAKER_CAPTURE_SAMPLING_PERCENTAGE": "25", "SAGEMAKER_CAPTURE_KMS_KEY_ID": CAPTURE_KEY}
    result = cli("deploy", "--capture", env=env)
    assert result.code == 0, result.err
    assert result.request("CreateEndpointConfig")["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": f"s3://{BUCKET}/{SLUG}/capture/",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json", "application/jsonlines"],
        },
        "KmsKeyId": CAPTURE_KEY,
    }
    # Without the flag, no capture; the output key stands in for an unset capture key.
    plain = cli("deploy", env={"SAGEMAKER_OUTPUT_KMS_KEY_ID": "alias/out"})
    assert "DataCaptureConfig" not in plain.request("CreateEndpointConfig")
    again = cli("deploy", "--capture", env={"SAGEMAKER_OUTPUT_KMS_KEY_ID": "alias/out"})
    config = again.request("CreateEndpointConfig")["DataCaptureConfig"]
    assert (config["KmsKeyId"], config["InitialSamplingPercentage"]) == ("alias/out", 100)


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("SAGEMAKER_CAPTURE_SAMPLING_PERCENTAGE", "101", "expected at most 100"),
        ("SAGEMAKER_CAPTURE_S3_URI", "bucket/capture", "an s3://bucket/prefix URI"),
        ("SAGEMAKER_MONITOR_SCHEDULE", "daily", "rate(1 day) or cron("),
    ],
)
def test_bad_capture_and_monitor_settings_fail_in_one_line(project, in_ecr, cli, variable, value, expected):
    cli("deploy", "--capture", env={variable: value}).error(variable, expected)


def test_monitor_runs_monitor_r_over_the_captured_prefix(project, deployed, in_ecr, cli):
    result = cli(*MONITOR, env={"SAGEMAKER_MONITOR_LABELS_S3_URI": f"s3://{BUCKET}/labels/"})
    assert result.code == 0, result.err
    sagemaker = in_ecr.client("sagemaker")
    name = the_only(sagemaker.list_processing_jobs()["ProcessingJobSummaries"])["ProcessingJobName"]
    assert name.startswith(f"{SLUG}-monitor-")
    request = result.request("CreateProcessingJob")
    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "Rscript",
        "/opt/ml/processing/input/code/monitor.R",
    ]
    inputs = {item["InputName"]: item["S3Input"] for item in request["ProcessingInputs"]}
    assert {name: item["LocalPath"] for name, item in inputs.items()} == {
        "code": "/opt/ml/processing/input/code",
        "capture": "/opt/ml/processing/input/data/capture",
        "baseline": "/opt/ml/processing/input/data/baseline",
        "labels": "/opt/ml/processing/input/data/labels",
    }
    # SageMaker captures under <destination>/<endpoint>/<variant>/; the baseline is in the model.
    assert inputs["capture"]["S3Uri"] == f"s3://{BUCKET}/{SLUG}/capture/{SLUG}/AllTraffic/"
    assert inputs["baseline"]["S3Uri"] == deployed
    assert s3_read(in_ecr, inputs["code"]["S3Uri"]) == (project / "code" / "monitor.R").read_bytes()
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"] == {
        "S3Uri": f"s3://{BUCKET}/{SLUG}/monitoring/reports/{name}/",
        "LocalPath": "/opt/ml/processing/output/report",
        "S3UploadMode": "Continuous",  # the report of a job failed by violations reaches S3
    }
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert request["Environment"] == {"MONITOR_WINDOW_HOURS": "24"}
    assert "report.html" in result.out


def test_monitor_needs_a_deployed_model(project, in_ecr, cli):
    (project / "code" / "monitor.R").write_text("# the monitoring script\n")
    cli(*MONITOR).error("make deploy CAPTURE=1 first", "--model-data")


def test_monitor_schedule_and_unschedule(project, deployed, in_ecr, cli):
    cli(*SCHEDULE).error("monitoring schedule's role is not set", "SAGEMAKER_MONITOR_SCHEDULER_ROLE_ARN")
    env = {"SAGEMAKER_MONITOR_SCHEDULER_ROLE_ARN": SCHEDULER_ROLE}
    outcome = project / "build" / "outcome.json"
    result = cli("--json", outcome, *SCHEDULE, env=env)
    assert result.code == 0, result.err
    reported = json.loads(outcome.read_text())["result"]  # what R's project_monitor_schedule() returns
    assert (reported["schedule"], reported["expression"]) == (f"{SLUG}-monitor", "rate(1 day)")
    assert reported["arn"].endswith(f":schedule/default/{SLUG}-monitor")
    assert in_ecr.client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"] == []  # none yet
    scheduler = in_ecr.client("scheduler", region_name=REGION)
    schedule = scheduler.get_schedule(Name=f"{SLUG}-monitor")
    assert schedule["ScheduleExpression"] == "rate(1 day)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
    assert target["RoleArn"] == SCHEDULER_ROLE
    request = json.loads(target["Input"])
    # Each run its own job and report folder: Scheduler fills in the execution ID.
    assert request["ProcessingJobName"] == f"{SLUG}-monitor-<aws.scheduler.execution-id>"
    assert len(request["ProcessingJobName"].replace("<aws.scheduler.execution-id>", "d32c5kddcf5bb8c3")) <= 63
    assert request["AppSpecification"]["ContainerEntrypoint"][-1] == "/opt/ml/processing/input/code/monitor.R"
    inputs = {item["InputName"]: item["S3Input"]["S3Uri"] for item in request["ProcessingInputs"]}
    assert inputs["baseline"] == deployed and inputs["capture"].endswith(f"/capture/{SLUG}/AllTraffic/")
    assert request["RoleArn"] == ROLE

    daily = cli(*SCHEDULE, env={**env, "SAGEMAKER_MONITOR_SCHEDULE": "cron(0 6 * * ? *)"})
    assert daily.code == 0, daily.err
    assert "Updated schedule" in daily.out
    assert scheduler.get_schedule(Name=f"{SLUG}-monitor")["ScheduleExpression"] == "cron(0 6 * * ? *)"

    gone = cli("monitor-unschedule")
    assert gone.code == 0 and f"Deleted schedule {SLUG}-monitor" in gone.out
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=f"{SLUG}-monitor")
    again = cli("monitor-unschedule")
    assert again.code == 0 and "No schedule" in again.out


def test_monitor_schedule_role_may_start_only_this_projects_monitoring_jobs(project, deployed, in_ecr, cli):
    outcome = project / "build" / "outcome.json"
    result = cli("--json", outcome, "monitor-schedule-role")
    assert result.code == 0, result.err
    name = f"{SLUG}-monitor-scheduler"
    iam = in_ecr.client("iam")
    role = iam.get_role(RoleName=name)["Role"]
    assert json.loads(outcome.read_text())["result"] == {"role_arn": role["Arn"]}
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    document = iam.get_role_policy(RoleName=name, PolicyName="rsagemaker-monitor-schedule")["PolicyDocument"]
    statements = {statement["Sid"]: statement for statement in document["Statement"]}
    jobs = statements["StartMonitoringJobs"]
    assert jobs["Action"] == ["sagemaker:CreateProcessingJob", "sagemaker:AddTags"]
    assert jobs["Resource"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{SLUG}-monitor-*"
    passing = statements["PassTheJobsRole"]
    assert (passing["Action"], passing["Resource"]) == ("iam:PassRole", ROLE)
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert f'{{"monitor": {{"scheduler_role_arn": "{role["Arn"]}"}}}}' in result.out

    # The schedule made with it starts jobs the policy names (a run's name: its execution id filled in).
    assert cli(*SCHEDULE, env={"SAGEMAKER_MONITOR_SCHEDULER_ROLE_ARN": role["Arn"]}).code == 0
    schedule = in_ecr.client("scheduler", region_name=REGION).get_schedule(Name=f"{SLUG}-monitor")
    job = json.loads(schedule["Target"]["Input"])["ProcessingJobName"]
    run_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/" + job.replace(
        "<aws.scheduler.execution-id>", "d32c5kddcf5bb8c3"
    )
    assert fnmatch.fnmatchcase(run_arn.lower(), jobs["Resource"])

    again = cli("monitor-schedule-role")
    assert again.code == 0 and f"IAM role {name} exists: trust policy updated" in again.out


def test_monitor_schedule_role_needs_the_jobs_role(project, aws, cli, monkeypatch):
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN", raising=False)
    cli("monitor-schedule-role").error("SAGEMAKER_ROLE_ARN")
    assert aws.client("iam").list_roles()["Roles"] == []
