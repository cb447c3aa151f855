"""Watching the deployed model: data capture settings, `rsagemaker monitor`, `monitor-schedule`
and `monitor-unschedule`.

deploy --capture (make deploy CAPTURE=1) adds data_capture_config() to the endpoint config: input
and output, capture.sampling_percentage, to capture.s3_uri (default s3://<bucket>/<s3_prefix>/
capture/), encrypted with capture.kms_key_id (else kms.output_key_id) when set; CSV and JSON bodies
are kept as text. monitor runs code/monitor.R in the processing image over the endpoint's captured
prefix (<capture>/<endpoint>/AllTraffic/), the deployed model (build/endpoint.json's model.tar.gz,
which holds train.R's baseline.json) and monitor.labels_s3_uri when set; the report, written with
S3UploadMode Continuous, lands in S3 also when violations fail the job. monitor-schedule has
EventBridge Scheduler send the same CreateProcessingJob request on monitor.schedule_expression (a
universal target; each run named by <aws.scheduler.execution-id>); monitor-unschedule deletes it.
monitor-schedule-role creates (or updates) the role the schedule runs as: EventBridge Scheduler may
assume it, and it may only start this project's monitoring jobs and pass them role_arn.
"""

import json

from ..core.aws import check_bucket, open_aws, pushed_image, put_service_role, s3_key, upload_file
from ..core.errors import SetupError
from ..core.opt_ml import job_name
from .common import follow_job
from .processing import PROCESSING_CODE_PATH, processing_job_request

MONITOR_SCRIPT = "monitor.R"
VARIANT = "AllTraffic"  # the one variant deploy creates
INPUT_ROOT = "/opt/ml/processing/input/data"
REPORT_PATH = "/opt/ml/processing/output/report"
SCHEDULER_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
SCHEDULER_POLICY_NAME = "rsagemaker-monitor-schedule"
EXECUTION_ID = "<aws.scheduler.execution-id>"  # EventBridge Scheduler fills it in at each run


def capture_uri(settings):
    """Where SageMaker writes the capture (it adds <endpoint>/<variant>/yyyy/mm/dd/hh/)."""
    if settings["capture.s3_uri"]:
        return settings["capture.s3_uri"].rstrip("/") + "/"
    settings.require("bucket")
    return f"s3://{settings['bucket']}/{s3_key(settings['s3_prefix'], 'capture')}/"


def capture_kms_key(settings):
    return settings["capture.kms_key_id"] or settings["kms.output_key_id"]


def data_capture_config(settings):
    """CreateEndpointConfig's DataCaptureConfig: requests and answers, CSV and JSON kept as text."""
    config = {
        "EnableCapture": True,
        "InitialSamplingPercentage": settings["capture.sampling_percentage"],
        "DestinationS3Uri": capture_uri(settings),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json", "application/jsonlines"],
        },
    }
    if capture_kms_key(settings):
        config["KmsKeyId"] = capture_kms_key(settings)
    return config


def deployed_model(project, endpoint):
    """The model.tar.gz deploy served on the endpoint (build/endpoint.json)."""
    record_file = project.build / "endpoint.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    model_data = record.get("serving", {}).get("model_data", "") if record.get("endpoint") == endpoint else ""
    if not model_data or record.get("serving", {}).get("target_models"):
        raise SetupError(
            f"no single-model deploy of endpoint {endpoint} recorded in {project.show(record_file)}: "
            "make deploy CAPTURE=1 first, or pass --model-data s3://.../model.tar.gz (its baseline.json)"
        )
    return model_data


def monitor_job_request(settings, *, name, image, code_uri, capture, model_data, output_uri):
    """CreateProcessingJob for code/monitor.R: capture, baseline (the model) and labels inputs."""
    request = processing_job_request(
        settings, name=name, image=image, code_uri=code_uri, data_uri=capture, output_uri=output_uri
    )
    request["AppSpecification"]["ContainerEntrypoint"] = [
        "Rscript",
        f"{PROCESSING_CODE_PATH}/{MONITOR_SCRIPT}",
    ]

    def s3_input(input_name, uri, local_path):
        return {
            "InputName": input_name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": local_path,
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        }

    inputs = [
        s3_input("code", code_uri, PROCESSING_CODE_PATH),
        s3_input("capture", capture, f"{INPUT_ROOT}/capture"),
        s3_input("baseline", model_data, f"{INPUT_ROOT}/baseline"),
    ]
    if settings["monitor.labels_s3_uri"]:
        inputs.append(s3_input("labels", settings["monitor.labels_s3_uri"], f"{INPUT_ROOT}/labels"))
    request["ProcessingInputs"] = inputs
    output = request["ProcessingOutputConfig"]["Outputs"][0]
    output["OutputName"] = "report"
    # Continuous: the report reaches S3 while the job runs, so a job failed by violations keeps it.
    output["S3Output"].update(LocalPath=REPORT_PATH, S3UploadMode="Continuous")
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 1  # one report
    request["Environment"] = {"MONITOR_WINDOW_HOURS": str(settings["monitor.window_hours"])}
    return request


def prepare(args, name):
    """Settings, session, the pushed image and the uploaded script: the request of one run."""
    project = args.project
    settings, session, account = open_aws(project, "role_arn", "bucket")
    region, bucket, prefix = settings["region"], settings["bucket"], settings["s3_prefix"]
    script = project.code / MONITOR_SCRIPT
    if not script.is_file():
        raise SetupError(f"{project.show(script)} is missing: the monitoring job runs it")
    endpoint = settings["endpoint.name"]
    model_data = args.model_data or deployed_model(project, endpoint)
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image(session, account, region, args.image, args.tag)
    code_uri = upload_file(s3, script, bucket, s3_key(prefix, "monitoring", "code", MONITOR_SCRIPT))
    print(f"Uploaded {project.show(script)} to {code_uri}")
    capture = f"{capture_uri(settings)}{endpoint}/{VARIANT}/"
    name = name(project)
    request = monitor_job_request(
        settings,
        name=name,
        image=image.by_digest,
        code_uri=code_uri,
        capture=capture,
        model_data=model_data,
        output_uri=f"s3://{bucket}/{s3_key(prefix, 'monitoring', 'reports', name)}/",
    )
    return settings, session, image, request


def monitor(args):
    settings, session, image, request = prepare(args, lambda project: job_name(project.name, "monitor"))
    name = request["ProcessingJobName"]
    sagemaker = session.client("sagemaker")
    sagemaker.create_processing_job(**request)
    inputs = {item["InputName"]: item["S3Input"]["S3Uri"] for item in request["ProcessingInputs"]}
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    print(
        f"Created monitoring job {name} ({image.described}): capture {inputs['capture']} of the last "
        f"{settings['monitor.window_hours']} h against the baseline in {inputs['baseline']}"
    )
    code, description = follow_job(
        "processing", name, lambda: sagemaker.describe_processing_job(ProcessingJobName=name), args.no_wait
    )
    args.result = {"processing_job": name, "report": f"{output}report.html", "exit_status": code}
    if description:
        print(f"Report: {output}report.html and violations.json (aws s3 cp {output}report.html .)")
        if code != 0:
            print("A failed monitoring job with a report means violations: read its FailureReason above.")
    return code


def schedule_name(settings):
    return f"{settings['endpoint.name']}-monitor"[:64]


def scheduled_job_prefix(project):
    """The start of every scheduled monitoring job's name (the rest: the run's execution id)."""
    return f"{project.resource_name[:38].rstrip('-')}-monitor-"


def monitor_schedule(args):
    """Create or update the daily (monitor.schedule_expression) schedule of the monitoring job."""

    def scheduled_name(project):
        return scheduled_job_prefix(project) + EXECUTION_ID

    settings, session, image, request = prepare(args, scheduled_name)
    settings.require("monitor.scheduler_role_arn")
    scheduler = session.client("scheduler")
    name = schedule_name(settings)
    schedule = {
        "Name": name,
        "ScheduleExpression": settings["monitor.schedule_expression"],
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": SCHEDULER_TARGET,
            "RoleArn": settings["monitor.scheduler_role_arn"],
            "Input": json.dumps(request),
        },
        "Description": f"code/monitor.R over endpoint {settings['endpoint.name']}'s data capture",
    }
    try:
        scheduler.get_schedule(Name=name)
        arn = scheduler.update_schedule(**schedule)["ScheduleArn"]
        verb = "Updated"
    except scheduler.exceptions.ResourceNotFoundException:
        arn = scheduler.create_schedule(**schedule)["ScheduleArn"]
        verb = "Created"
    args.result = {"schedule": name, "arn": arn, "expression": settings["monitor.schedule_expression"]}
    print(
        f"{verb} schedule {name}: {settings['monitor.schedule_expression']}, a monitoring job "
        f"({image.described}) each time; reports under "
        f"{request['ProcessingOutputConfig']['Outputs'][0]['S3Output']['S3Uri']}"
    )
    print(
        "A run with violations fails: alert on SageMaker Processing Job State Change (Failed) in EventBridge."
    )
    print("Remove it: make monitor-unschedule")
    return 0


def monitor_unschedule(args):
    settings, session, _account = open_aws(args.project)
    scheduler = session.client("scheduler")
    name = schedule_name(settings)
    try:
        scheduler.delete_schedule(Name=name)
    except scheduler.exceptions.ResourceNotFoundException:
        print(f"No schedule {name} in {settings['region']}")
        return 0
    print(f"Deleted schedule {name} (jobs it started run on; reports stay in S3)")
    return 0


def monitor_arguments(parser):
    parser.add_argument("--image", required=True, help="the local processing image ref (its ECR repository)")
    parser.add_argument("--tag", required=True, help="the pushed tag to run")
    parser.add_argument(
        "--model-data", default="", help="the model.tar.gz with the baseline (default: the deployed one)"
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the job is created")


def monitor_schedule_arguments(parser):
    monitor_arguments(parser)


def scheduler_policy(partition, region, account, prefix, role_arn):
    """Least privilege for the schedule: start (and tag) this project's monitoring jobs, and hand
    them role_arn, to SageMaker only. SageMaker's ARNs hold the job name in lower case."""
    jobs = f"arn:{partition}:sagemaker:{region}:{account}:processing-job/{prefix.lower()}*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartMonitoringJobs",
                "Effect": "Allow",
                "Action": ["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                "Resource": jobs,
            },
            {
                "Sid": "PassTheJobsRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": role_arn,
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
        ],
    }


def monitor_schedule_role(args):
    """Create or update the role monitor-schedule's schedule runs as (monitor.scheduler_role_arn)."""
    project = args.project
    settings, session, account = open_aws(project, "role_arn")
    name = args.role_name or f"{project.resource_name[:52]}-monitor-scheduler"
    partition = session.get_partition_for_region(settings["region"])
    policy = scheduler_policy(
        partition, settings["region"], account, scheduled_job_prefix(project), settings["role_arn"]
    )
    role = put_service_role(
        session,
        account,
        name,
        "scheduler.amazonaws.com",
        f"EventBridge Scheduler role of {project.name}'s monitoring schedule",
        SCHEDULER_POLICY_NAME,
        policy,
    )
    args.result = {"role_arn": role["Arn"]}
    setting = json.dumps({"monitor": {"scheduler_role_arn": role["Arn"]}})
    print(f"Next: put it in config/aws.json ({setting}), then make monitor-schedule")
    return 0


def monitor_schedule_role_arguments(parser):
    parser.add_argument(
        "--role-name", default="", help="the role's name (default: <project>-monitor-scheduler)"
    )
