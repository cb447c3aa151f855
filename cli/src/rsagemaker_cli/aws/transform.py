"""`rsagemaker remote-transform`: a SageMaker batch transform job with the model deploy would serve.

It creates a model (deployable.py: the last training job's in the image that trained it, by digest;
MODEL_PACKAGE=..., TRAINING_JOB=..., IMAGE=...) and a transform job from config/aws.json's
`transform` block, and waits. The input is transform.input_s3_uri, else data/ made ready as
SageMaker sends CSV to a model (every CSV without its header and target column), uploaded under
the job's prefix; each input file gives one <file>.out under s3://<bucket>/<s3_prefix>/output/<job>/.
local-transform (local/transform.py) runs the same job on this machine.
"""

from ..core.aws import check_bucket, open_aws, s3_key, upload_directory
from ..core.data import without_target
from ..core.opt_ml import BATCH_INVOCATION_TIMEOUT, job_name
from .common import follow_job, production_note, tagged
from .deployable import model_request, what_to_deploy

INVOCATION_RETRIES = 3


def transform_job_request(settings, *, name, model_name, input_uri, output_uri):
    """The CreateTransformJob parameters."""
    split_type = settings["transform.split_type"]
    output = {
        "S3OutputPath": output_uri,
        "Accept": settings["transform.accept"],
        "AssembleWith": "Line" if split_type == "Line" else "None",
    }
    if settings["kms.output_key_id"]:
        output["KmsKeyId"] = settings["kms.output_key_id"]
    resources = {
        "InstanceType": settings["transform.instance_type"],
        "InstanceCount": settings["transform.instance_count"],
    }
    if settings["kms.volume_key_id"]:
        resources["VolumeKmsKeyId"] = settings["kms.volume_key_id"]
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": settings["transform.max_concurrent_transforms"],
        "MaxPayloadInMB": settings["transform.max_payload_mb"],
        "BatchStrategy": settings["transform.batch_strategy"],
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": BATCH_INVOCATION_TIMEOUT,
            "InvocationsMaxRetries": INVOCATION_RETRIES,
        },
        "Environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(BATCH_INVOCATION_TIMEOUT)},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": settings["transform.content_type"],
            "SplitType": split_type,
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        **tagged(settings),
    }


def remote_transform(args):
    project = args.project
    settings, session, account = open_aws(project, "role_arn", "bucket")
    region, bucket = settings["region"], settings["bucket"]
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    sagemaker = session.client("sagemaker")
    deployable = what_to_deploy(project, session, account, region, sagemaker, args)
    name = job_name(project.name, "transform")
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    input_uri = settings["transform.input_s3_uri"]
    if input_uri:
        print(f"Input: {input_uri} (transform.input_s3_uri)")
    else:
        prepared = without_target(
            project.data, project.build / "transform" / "remote" / name / "input", project.target()
        )
        input_uri = upload_directory(
            s3, prepared, bucket, s3_key(job_prefix, "input"), shown=project.show(prepared)
        )
        print("  (the CSV of data/ without header and target column, as SageMaker sends CSV to a model)")
    output_uri = f"s3://{bucket}/{s3_key(settings['s3_prefix'], 'output', name)}/"

    sagemaker.create_model(**model_request(settings, name, deployable))
    print(f"Created model {name}: {deployable.model_data} (from {deployable.model_source})")
    print(f"  image {deployable.image} ({deployable.image_source})")
    sagemaker.create_transform_job(
        **transform_job_request(
            settings, name=name, model_name=name, input_uri=input_uri, output_uri=output_uri
        )
    )
    print(
        f"Created transform job {name} ({settings['transform.instance_count']} x {settings['transform.instance_type']}, "
        f"{settings['transform.content_type']}, SplitType {settings['transform.split_type']}, "
        f"{settings['transform.batch_strategy']}, MaxPayloadInMB {settings['transform.max_payload_mb']}); "
        f"output: {output_uri}"
    )
    production_note(settings)
    args.result = {"job_name": name, "output_uri": output_uri, "status": None}  # --json
    code, description = follow_job(
        "transform", name, lambda: sagemaker.describe_transform_job(TransformJobName=name), args.no_wait
    )
    if description:
        args.result.update(status=description["TransformJobStatus"], job_arn=description["TransformJobArn"])
    if description and code == 0:
        print(f"Output: one <file>.out per input file in {output_uri}")
        print(f"Next: aws s3 ls --recursive {output_uri}; aws sagemaker delete-model --model-name {name}")
    return code


def remote_transform_arguments(parser):
    parser.add_argument("--training-job", default="", help="the training job's model (default: the last one)")
    parser.add_argument("--model-package", default="", help="a model package ARN (default: latest Approved)")
    parser.add_argument(
        "--image-uri", default="", help="serve in this image (default: the image that trained it)"
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the job is created")
