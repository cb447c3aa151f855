"""remote-train and remote-process: the requests SageMaker gets, the checks before anything is sent.

Against moto on loopback (conftest.py); the images are fake manifests in moto's ECR, as `make push`
leaves them. moto keeps most fields in its Describe* answers; where it drops one (Environment,
ProcessingResources, EnableNetworkIsolation of a model) the request itself is checked.
"""

import json
import tarfile

import pytest
from cli_support import (
    ACCOUNT,
    BUCKET,
    REGION,
    REGISTRY,
    ROLE,
    SLUG,
    TAG,
    digest_of,
    edit_json,
    s3_objects,
    s3_read,
    the_only,
)

from rsagemaker_cli.aws import common

TRAIN = ("remote-train", "--image", f"{SLUG}-training:{TAG}", "--tag", TAG)
PROCESS = ("remote-process", "--image", f"{SLUG}-processing:{TAG}", "--tag", TAG)
METRIC_DEFINITIONS = [
    {"Name": "train:accuracy", "Regex": r"train_accuracy=([0-9.]+);"},
    {"Name": "validation:accuracy", "Regex": r"validation_accuracy=([0-9.]+);"},
]


def training_job(session):
    sagemaker = session.client("sagemaker")
    name = the_only(sagemaker.list_training_jobs()["TrainingJobSummaries"])["TrainingJobName"]
    return sagemaker.describe_training_job(TrainingJobName=name)


def test_remote_train_creates_the_job_sagemaker_runs(project, in_ecr, cli, tmp_path):
    result = cli(*TRAIN)
    assert result.code == 0, result.out + result.err
    job = training_job(in_ecr)
    name = job["TrainingJobName"]
    assert name.startswith(f"{SLUG}-training-")

    # The image by digest: what `make push` sent, whatever the tag names later.
    digest = digest_of(in_ecr, "training")
    assert job["AlgorithmSpecification"]["TrainingImage"] == f"{REGISTRY}/{SLUG}-training@{digest}"
    assert f"{REGISTRY}/{SLUG}-training:{TAG}@{digest}" in result.out
    assert job["RoleArn"] == ROLE
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    request = result.request("CreateTrainingJob")
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert request["Environment"] == {
        "SAGEMAKER_CHECKPOINT_DIR": "/opt/ml/checkpoints",
        "R_SAGEMAKER_IMAGE": f"{REGISTRY}/{SLUG}-training:{TAG}@{digest}",
    }

    # Hyperparameters: each value JSON-encoded, as the SageMaker SDK sends them in script mode.
    hyperparameters = job["HyperParameters"]
    for key, value in json.loads((project / "config" / "hyperparameters.json").read_text()).items():
        assert hyperparameters[key] == json.dumps(value)
    assert hyperparameters["sagemaker_program"] == '"train.R"'
    assert hyperparameters["sagemaker_job_name"] == json.dumps(name)
    assert hyperparameters["sagemaker_region"] == json.dumps(REGION)
    source_uri = json.loads(hyperparameters["sagemaker_submit_directory"])
    assert source_uri == f"s3://{BUCKET}/{SLUG}/jobs/{name}/source/sourcedir.tar.gz"

    # sourcedir.tar.gz: the files of code/ at the archive's root, as they are here.
    tarball = tmp_path / "sourcedir.tar.gz"
    tarball.write_bytes(s3_read(in_ecr, source_uri))
    with tarfile.open(tarball) as archive:
        assert sorted(archive.getnames()) == sorted(path.name for path in (project / "code").iterdir())
        assert archive.extractfile("train.R").read() == (project / "code" / "train.R").read_bytes()

    # Channels from S3: data/train/ uploaded under the job's prefix.
    (channel,) = job["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    train_uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_uri == f"s3://{BUCKET}/{SLUG}/jobs/{name}/input/train/"
    assert s3_read(in_ecr, train_uri + "iris.csv") == (project / "data" / "train" / "iris.csv").read_bytes()
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/{SLUG}/output"
    # The default: one checkpoint folder per job.
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/{SLUG}/checkpoints/{name}/",
        "LocalPath": "/opt/ml/checkpoints",
    }

    assert f"Training job {name} completed." in result.out
    assert "/aws/sagemaker/TrainingJobs" in result.out
    assert "Next: make deploy" in result.out
    record = json.loads((project / "build" / "last-training-job.json").read_text())
    assert record["job_name"] == name and record["image"].endswith(f"@{digest}")


@pytest.mark.parametrize("where", ["config/aws.json", "environment"])
def test_a_checkpoint_s3_uri_reaches_the_training_job(project, in_ecr, cli, where):
    """Issue 25 item 7: the bucket pattern of checkpoint_s3_uri (once broken by Jinja, which baked
    {1,61} as (1, 61)) accepts a URI, and the job's CheckpointConfig carries it."""
    uri = "s3://my-checkpoints.example-1/iris/run-7/"
    if where == "environment":
        result = cli(*TRAIN, env={"SAGEMAKER_TRAINING_CHECKPOINT_S3_URI": uri})
    else:
        edit_json(project / "config" / "aws.json", training={"checkpoint_s3_uri": uri})
        result = cli(*TRAIN)
    assert result.code == 0, result.err
    expected = {"S3Uri": uri, "LocalPath": "/opt/ml/checkpoints"}
    assert result.request("CreateTrainingJob")["CheckpointConfig"] == expected
    assert training_job(in_ecr)["CheckpointConfig"] == expected
    assert f"checkpoints: /opt/ml/checkpoints in the container <-> {uri}" in result.out
    # Every other command loads the same settings: the URI stops none of them.
    assert cli("settings").code == 0


def test_checkpoints_off_and_spot_training(project, in_ecr, cli):
    env = {
        "SAGEMAKER_TRAINING_SPOT": "true",
        "SAGEMAKER_TRAINING_MAX_WAIT_SECONDS": "600",
    }
    cli(*TRAIN, env=env).error(
        "training.max_wait_seconds (from $SAGEMAKER_TRAINING_MAX_WAIT_SECONDS) = 600", "3600"
    )
    env.update(SAGEMAKER_TRAINING_CHECKPOINT_S3_URI="off", SAGEMAKER_TRAINING_MAX_WAIT_SECONDS="3600")
    result = cli(*TRAIN, env=env)
    assert result.code == 0, result.err
    job = training_job(in_ecr)
    assert "CheckpointConfig" not in job
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600}
    assert "a spot job without checkpoints starts over" in result.out


def test_remote_train_takes_configured_channels_as_they_are(project, in_ecr, cli):
    env = {"SAGEMAKER_TRAINING_CHANNELS": json.dumps({"train": "s3://elsewhere/iris/"})}
    assert cli(*TRAIN, env=env).code == 0
    (channel,) = training_job(in_ecr)["InputDataConfig"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://elsewhere/iris/"
    assert not [key for key in s3_objects(in_ecr) if "/input/" in key]


def test_remote_train_sends_the_configured_metric_definitions(project, in_ecr, cli):
    mine = [{"Name": "rmse", "Regex": r"rmse=([0-9.]+)"}]
    edit_json(project / "config" / "aws.json", training={"metric_definitions": mine})
    result = cli(*TRAIN, "--no-wait")
    assert result.request("CreateTrainingJob")["AlgorithmSpecification"]["MetricDefinitions"] == mine
    edit_json(
        project / "config" / "aws.json", training={"metric_definitions": [{"Name": "x", "Regex": "no group"}]}
    )
    cli(*TRAIN).error("training.metric_definitions", "has 0 groups")


def test_remote_process_runs_the_script_as_script_processor_does(project, in_ecr, cli):
    result = cli(*PROCESS)
    assert result.code == 0, result.err
    sagemaker = in_ecr.client("sagemaker")
    name = the_only(sagemaker.list_processing_jobs()["ProcessingJobSummaries"])["ProcessingJobName"]
    job = sagemaker.describe_processing_job(ProcessingJobName=name)
    digest = digest_of(in_ecr, "processing")
    assert job["AppSpecification"] == {
        "ImageUri": f"{REGISTRY}/{SLUG}-processing@{digest}",
        "ContainerEntrypoint": ["Rscript", "/opt/ml/processing/input/code/preprocess.R"],
    }
    assert job["RoleArn"] == ROLE
    cluster = result.request("CreateProcessingJob")["ProcessingResources"]["ClusterConfig"]
    assert cluster == {"InstanceType": "ml.t3.medium", "InstanceCount": 1, "VolumeSizeInGB": 30}
    inputs = {item["InputName"]: item["S3Input"] for item in job["ProcessingInputs"]}
    assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code"
    assert s3_read(in_ecr, inputs["code"]["S3Uri"]) == (project / "code" / "preprocess.R").read_bytes()
    assert inputs["data"]["LocalPath"] == "/opt/ml/processing/input/data"
    uploaded = s3_read(in_ecr, inputs["data"]["S3Uri"] + "train/iris.csv")
    assert uploaded == (project / "data/train/iris.csv").read_bytes()
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{BUCKET}/{SLUG}/output/{name}/"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    assert f"Processing job {name} completed." in result.out
    assert "/aws/sagemaker/ProcessingJobs" in result.out


SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
GROUPS = ["sg-0123456789abcdef0"]
VOLUME_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OUTPUT_KEY = "alias/cli-test-output"
TAGS = {"team": "ml", "cost-center": "42"}
PRODUCTION = {
    "SAGEMAKER_SUBNETS": ",".join(SUBNETS),
    "SAGEMAKER_SECURITY_GROUP_IDS": ",".join(GROUPS),
    "SAGEMAKER_NETWORK_ISOLATION": "true",
    "SAGEMAKER_VOLUME_KMS_KEY_ID": VOLUME_KEY,
    "SAGEMAKER_OUTPUT_KMS_KEY_ID": OUTPUT_KEY,
    "SAGEMAKER_TAGS": json.dumps(TAGS),
    "SAGEMAKER_TRAINING_SPOT": "true",
    "SAGEMAKER_TRAINING_MAX_WAIT_SECONDS": "7200",
}
EXPECTED_TAGS = sorted(
    ({"Key": key, "Value": value} for key, value in TAGS.items()), key=lambda tag: tag["Key"]
)


def tags_of(sagemaker, arn):
    return sorted(sagemaker.list_tags(ResourceArn=arn)["Tags"], key=lambda tag: tag["Key"])


def test_production_settings_reach_every_job_model_and_endpoint(project, in_ecr, cli, monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    sagemaker = in_ecr.client("sagemaker")
    vpc = {"Subnets": SUBNETS, "SecurityGroupIds": GROUPS}

    trained = cli(*TRAIN)
    assert trained.code == 0, trained.err
    job = training_job(in_ecr)
    name = job["TrainingJobName"]
    assert job["VpcConfig"] == vpc
    assert job["EnableNetworkIsolation"] is True
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == VOLUME_KEY
    assert job["OutputDataConfig"]["KmsKeyId"] == OUTPUT_KEY
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert tags_of(sagemaker, job["TrainingJobArn"]) == EXPECTED_TAGS
    # Isolated, the container cannot fetch its code from S3: it arrives as the `code` channel.
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["code"] == f"s3://{BUCKET}/{SLUG}/jobs/{name}/source/sourcedir.tar.gz"
    assert s3_read(in_ecr, channels["code"])[:2] == b"\x1f\x8b"  # the gzip tarball itself
    assert (
        job["HyperParameters"]["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    )
    assert "production settings: VPC subnets" in trained.out

    processed = cli(*PROCESS)
    assert processed.code == 0, processed.err
    process_name = the_only(sagemaker.list_processing_jobs()["ProcessingJobSummaries"])["ProcessingJobName"]
    process_job = sagemaker.describe_processing_job(ProcessingJobName=process_name)
    assert process_job["NetworkConfig"] == {"VpcConfig": vpc, "EnableNetworkIsolation": True}
    assert process_job["ProcessingOutputConfig"]["KmsKeyId"] == OUTPUT_KEY
    assert tags_of(sagemaker, process_job["ProcessingJobArn"]) == EXPECTED_TAGS
    cluster = processed.request("CreateProcessingJob")["ProcessingResources"]["ClusterConfig"]
    assert cluster["VolumeKmsKeyId"] == VOLUME_KEY

    deployed = cli("deploy")
    assert deployed.code == 0, deployed.err
    endpoint = sagemaker.describe_endpoint(EndpointName=SLUG)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["VpcConfig"] == vpc
    assert deployed.request("CreateModel")["EnableNetworkIsolation"] is True
    assert config["KmsKeyId"] == VOLUME_KEY
    for arn in (model["ModelArn"], config["EndpointConfigArn"], endpoint["EndpointArn"]):
        assert tags_of(sagemaker, arn) == EXPECTED_TAGS, arn
    assert "production settings: VPC subnets" in deployed.out


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("SAGEMAKER_SUBNETS", "subnet-1", "vpc.subnets = 'subnet-1' (from $SAGEMAKER_SUBNETS) is invalid"),
        ("SAGEMAKER_SECURITY_GROUP_IDS", "sg-0123456789abcdef0", "go together"),
        ("SAGEMAKER_VOLUME_KMS_KEY_ID", "my key", "a KMS key ID, key ARN, alias/<name> or alias ARN"),
        ("SAGEMAKER_TAGS", '{"aws:team": "x"}', "not starting aws:"),
        ("SAGEMAKER_TAGS", "team=ml", "a JSON object"),
        ("SAGEMAKER_NETWORK_ISOLATION", "maybe", "true or false"),
        ("SAGEMAKER_TRAINING_CHECKPOINT_S3_URI", "/tmp/x", "an s3://bucket/prefix URI, 'off'"),
        ("SAGEMAKER_TRAINING_CHECKPOINT_S3_URI", "s3://a/x", "an s3://bucket/prefix URI, 'off'"),
        ("SAGEMAKER_TRAINING_CHECKPOINT_LOCAL_PATH", "checkpoints", "an absolute path in the container"),
        ("SAGEMAKER_TRAINING_INSTANCE_COUNT", "0", "a whole number of at least 1"),
    ],
)
def test_each_setting_is_checked_with_one_line_before_anything_is_sent(
    in_ecr, cli, variable, value, expected
):
    result = cli(*TRAIN, env={variable: value})
    result.error(expected)
    assert result.calls == []  # not even STS
    assert s3_objects(in_ecr) == []


@pytest.mark.parametrize(
    "unset, expected",
    [
        (
            ["SAGEMAKER_ROLE_ARN"],
            ("SageMaker execution role is not set", "SAGEMAKER_ROLE_ARN", "config/aws.json"),
        ),
        (["SAGEMAKER_BUCKET"], ("S3 bucket is not set", "SAGEMAKER_BUCKET", "config/aws.json")),
        (["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], ("no AWS credentials found", "AWS_PROFILE")),
        (["AWS_SECRET_ACCESS_KEY"], ("incomplete AWS credentials", "AWS_SECRET_ACCESS_KEY")),
    ],
)
def test_missing_settings_stop_remote_jobs_before_anything_is_uploaded(
    in_ecr, cli, monkeypatch, unset, expected
):
    for variable in unset:
        monkeypatch.delenv(variable)
    for command in (TRAIN, PROCESS):
        cli(*command).error(*expected)
    assert s3_objects(in_ecr) == []
    assert in_ecr.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert in_ecr.client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"] == []


def test_missing_region_names_both_ways_to_set_it(project, in_ecr, cli):
    edit_json(project / "config" / "aws.json", region="")
    cli(*TRAIN).error("AWS region is not set", "config/aws.json", "AWS_REGION")
    assert s3_objects(in_ecr) == []


def test_remote_train_before_push_says_to_push(aws, cli):
    aws.client("s3").create_bucket(Bucket=BUCKET)
    cli(*TRAIN).error(f"{SLUG}-training:{TAG} is not in ECR", "make push")
    assert s3_objects(aws) == []


def test_a_dirty_tag_is_never_run(in_ecr, cli):
    cli("remote-train", "--image", f"{SLUG}-training:x", "--tag", "abc-dirty").error(
        "TAG abc-dirty marks uncommitted changes"
    )


def test_waiting_shows_each_status_then_the_failure_reason_and_the_logs(capsys, monkeypatch):
    monkeypatch.setattr(common, "POLL_SECONDS", 0)
    states = iter(
        [
            {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"},
            {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
            {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
            {
                "TrainingJobStatus": "Failed",
                "SecondaryStatus": "Failed",
                "TrainingJobName": "job-1",
                "FailureReason": "AlgorithmError: no .csv files in the train channel",
            },
        ]
    )
    code, _ = common.follow_job("training", "job-1", lambda: next(states), no_wait=False)
    out, err = capsys.readouterr()
    assert code == 1
    progress = [line.split("[")[0].strip() for line in out.splitlines() if line.startswith("  training")]
    assert progress == [
        "training job job-1: InProgress (Starting)",
        "training job job-1: InProgress (Training)",
        "training job job-1: Failed",
    ]
    assert "Training job job-1 failed: AlgorithmError: no .csv files in the train channel" in err
    assert "aws logs tail /aws/sagemaker/TrainingJobs --log-stream-name-prefix job-1" in out


# --- several instances, each input FullyReplicated or ShardedByS3Key (issue 30) -----------------


def test_remote_process_shards_the_data_across_its_instances(project, in_ecr, cli):
    edit_json(
        project / "config" / "aws.json",
        processing={"instance_count": 3, "data_distribution": "ShardedByS3Key"},
    )
    result = cli(*PROCESS)
    assert result.code == 0, result.err
    request = result.request("CreateProcessingJob")
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    kinds = {
        item["InputName"]: item["S3Input"]["S3DataDistributionType"] for item in request["ProcessingInputs"]
    }
    assert kinds == {"code": "FullyReplicated", "data": "ShardedByS3Key"}  # every instance runs the script


def test_remote_process_replicates_by_default(project, in_ecr, cli):
    request = cli(*PROCESS).request("CreateProcessingJob")
    assert {item["S3Input"]["S3DataDistributionType"] for item in request["ProcessingInputs"]} == {
        "FullyReplicated"
    }


def test_remote_train_sets_each_channel_s_distribution(project, in_ecr, cli):
    (project / "data" / "validation").mkdir()
    (project / "data" / "validation" / "v.csv").write_text("a\n1\n")
    env = {
        "SAGEMAKER_TRAINING_INSTANCE_COUNT": "2",
        "SAGEMAKER_TRAINING_CHANNEL_DISTRIBUTION": json.dumps({"train": "ShardedByS3Key"}),
    }
    result = cli(*TRAIN, env=env)
    assert result.code == 0, result.err
    request = result.request("CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    kinds = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for channel in request["InputDataConfig"]
    }
    assert kinds == {"train": "ShardedByS3Key", "validation": "FullyReplicated"}


@pytest.mark.parametrize(
    "command, document, expected",
    [
        (PROCESS, {"processing": {"data_distribution": "Sharded"}}, "FullyReplicated or ShardedByS3Key"),
        (
            TRAIN,
            {"training": {"channel_distribution": {"train": "sharded"}}},
            "FullyReplicated or ShardedByS3Key",
        ),
        (
            PROCESS,
            {"processing": {"data_distribution": "ShardedByS3Key"}},
            "shards data (ShardedByS3Key) but processing.instance_count (from default) is 1",
        ),
        (
            TRAIN,
            {"training": {"channel_distribution": {"train": "ShardedByS3Key"}}},
            "shards train (ShardedByS3Key) but training.instance_count (from default) is 1",
        ),
        (
            TRAIN,
            {"training": {"instance_count": 2, "channel_distribution": {"tain": "ShardedByS3Key"}}},
            "training.channel_distribution names tain, not a channel of this job (train)",
        ),
    ],
)
def test_a_bad_distribution_is_one_line_before_anything_is_sent(
    project, in_ecr, cli, command, document, expected
):
    edit_json(project / "config" / "aws.json", **document)
    cli(*command).error(expected)
    assert in_ecr.client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"] == []
    assert in_ecr.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_local_runs_check_sharding_against_their_instance_count(project, cli):
    edit_json(project / "config" / "aws.json", processing={"data_distribution": "ShardedByS3Key"})
    local = ("local-process", "--image", "no-such-image:x", "--instance-count", "1")
    cli(*local).error("shards data (ShardedByS3Key) but --instance-count is 1")
