"""`rsagemaker remote-process`: code/preprocess.R as a SageMaker processing job.

The request is the one ScriptProcessor(command=["Rscript"]) sends: the script uploaded as the `code`
input, data/ (or processing.input_s3_uri) as `data`, one output under s3://<bucket>/<s3_prefix>/
output/<job name>/, the pushed image by digest, and the production settings (aws/common.py).
On processing.instance_count instances, `data` goes FullyReplicated or ShardedByS3Key
(processing.data_distribution); every instance's output files land under the one output prefix.
"""

from ..core.aws import check_bucket, open_aws, pushed_image, s3_key, upload_directory, upload_file
from ..core.errors import SetupError
from ..core.opt_ml import job_name
from .common import follow_job, instances, production_note, tagged, vpc_config

PROCESSING_SCRIPT = "preprocess.R"
PROCESSING_CODE_PATH = "/opt/ml/processing/input/code"
PROCESSING_DATA_PATH = "/opt/ml/processing/input/data"
PROCESSING_OUTPUT_PATH = "/opt/ml/processing/output"


def job_arguments(parser):
    """The arguments of remote-process and remote-train."""
    parser.add_argument(
        "--image", required=True, help="the local image ref (its repository names the ECR one)"
    )
    parser.add_argument("--tag", required=True, help="the pushed tag to run")
    parser.add_argument("--no-wait", action="store_true", help="return once the job is created")


remote_process_arguments = job_arguments


def processing_job_request(settings, *, name, image, code_uri, data_uri, output_uri):
    """The CreateProcessingJob parameters: the script as ScriptProcessor(command=["Rscript"]) sends it."""

    def s3_input(input_name, uri, local_path, distribution="FullyReplicated"):
        source = {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File"}
        return {"InputName": input_name, "S3Input": {**source, "S3DataDistributionType": distribution}}

    cluster = instances(settings, "processing")
    output_config = {
        "Outputs": [
            {
                "OutputName": "output",
                "S3Output": {
                    "S3Uri": output_uri,
                    "LocalPath": PROCESSING_OUTPUT_PATH,
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    if settings["kms.output_key_id"]:
        output_config["KmsKeyId"] = settings["kms.output_key_id"]
    request = {
        "ProcessingJobName": name,
        "RoleArn": settings["role_arn"],
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["Rscript", f"{PROCESSING_CODE_PATH}/{PROCESSING_SCRIPT}"],
        },
        "ProcessingInputs": [
            s3_input("code", code_uri, PROCESSING_CODE_PATH),
            # Each instance runs the script: the code goes to all, the data as configured.
            s3_input("data", data_uri, PROCESSING_DATA_PATH, settings["processing.data_distribution"]),
        ],
        "ProcessingOutputConfig": output_config,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings["processing.max_runtime_seconds"]},
        **tagged(settings),
    }
    network = {}
    if vpc_config(settings):
        network["VpcConfig"] = vpc_config(settings)
    if settings["network_isolation"]:
        network["EnableNetworkIsolation"] = True
    if network:
        request["NetworkConfig"] = network
    return request


def remote_process(args):
    project = args.project
    settings, session, account = open_aws(project, "role_arn", "bucket")
    region, bucket = settings["region"], settings["bucket"]
    script = project.code / PROCESSING_SCRIPT
    if not script.is_file():
        raise SetupError(f"{project.show(script)} is missing: the processing job runs it")
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    image = pushed_image(session, account, region, args.image, args.tag)

    name = job_name(project.name, "processing")
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    code_uri = upload_file(s3, script, bucket, s3_key(job_prefix, "code", PROCESSING_SCRIPT))
    print(f"Uploaded {project.show(script)} to {code_uri}")
    data_uri = settings["processing.input_s3_uri"] or upload_directory(
        s3, project.data, bucket, s3_key(job_prefix, "input"), shown="data"
    )
    output_uri = f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output', name)}/"

    sagemaker = session.client("sagemaker")
    sagemaker.create_processing_job(
        **processing_job_request(
            settings,
            name=name,
            image=image.by_digest,
            code_uri=code_uri,
            data_uri=data_uri,
            output_uri=output_uri,
        )
    )
    print(
        f"Created processing job {name} ({image.described}, {settings['processing.instance_type']}); "
        f"output: {output_uri}"
    )
    production_note(settings)
    args.result = {"job_name": name, "output_uri": output_uri, "status": None}
    code, description = follow_job(
        "processing", name, lambda: sagemaker.describe_processing_job(ProcessingJobName=name), args.no_wait
    )
    if description:
        args.result.update(
            job_arn=description.get("ProcessingJobArn"), status=description.get("ProcessingJobStatus")
        )
    if description and code == 0:
        print(f"Output in {output_uri}. Next: aws s3 ls --recursive {output_uri}")
    return code
