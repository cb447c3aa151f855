"""Batch transform jobs: `make remote-transform` on SageMaker, `make local-transform` on this machine.

Both take their settings from config/aws.json's `transform` block: content type, Accept, split type
(None, Line; RecordIO and TFRecord on SageMaker only), batch strategy (MultiRecord, SingleRecord),
max payload in MB (0: no limit, each file sent whole in chunks), concurrent transforms, instances.
Their input is transform.input_s3_uri (remote) or a folder (--input, local), else data/ made ready as
SageMaker sends CSV to a model: every CSV of data/ without its header and target column
(build/transform/input/). Each input file gives one output file, <file>.out; with SplitType Line the
answers are joined with AssembleWith Line (a newline after each response), as SageMaker does.

local-transform does what SageMaker's batch transform does with the serving container: it starts
`IMAGE serve` on the unpacked build/model.tar.gz with SAGEMAKER_BATCH=true and the batch variables,
reads GET /execution-parameters (the container's answer wins over the job's settings, as on
SageMaker), splits each file into records, packs them into requests of at most MaxPayloadInMB, posts
them to /invocations (MaxConcurrentTransforms at a time) and writes build/transform/output/<file>.out.
remote-transform creates a model (the one deploy would serve: the last training job in the image
that trained it, MODEL_PACKAGE=..., TRAINING_JOB=..., IMAGE=...) and a transform job, and waits.
"""

import csv
import io
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from . import engine, local
from .opt_ml import job_name, read_hyperparameters
from .remote import (
    DATA_DIR,
    HYPERPARAMETERS_FILE,
    check_bucket,
    describe_production,
    follow_job,
    open_aws,
    s3_key,
    tagged,
    upload_directory,
)
from .settings import BUILD_DIR, SetupError
from .settings import load as load_settings

TRANSFORM_DIR = BUILD_DIR / "transform"
MB = 1024 * 1024
# SageMaker gives each batch request 600 s by default; the container's own limit is set to match.
INVOCATION_TIMEOUT = 600
INVOCATION_RETRIES = 3
# The batch strategies as the container's environment (and /execution-parameters) spell them.
STRATEGY_VARIABLE = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
STRATEGY_SETTING = {value: key for key, value in STRATEGY_VARIABLE.items()}
LOCAL_SPLIT_TYPES = ("None", "Line")


TRANSFORM_KEYS = (
    "transform.content_type",
    "transform.accept",
    "transform.split_type",
    "transform.batch_strategy",
    "transform.max_payload_mb",
    "transform.max_concurrent_transforms",
)


def local_settings():
    """The transform settings alone, each checked: a local run needs no other AWS setting."""
    return load_settings(keys=TRANSFORM_KEYS)


def prepare_data_input(data_dir, dest, target):
    """Every CSV under data_dir without its header and target column, as SageMaker sends CSV to a
    model, into dest (same relative paths); other files are not inputs of the model. Returns dest."""
    files = sorted(Path(data_dir).rglob("*.csv"))
    if not files:
        raise SetupError(f"no .csv file in {data_dir} to transform: pass --input DIR (INPUT=...) or add data")
    for path in files:
        with open(path, newline="") as handle:
            header, *records = list(csv.reader(handle))
        name = target if target in header else header[-1]
        keep = [i for i, column in enumerate(header) if column != name]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for record in records:
            if record:
                writer.writerow([record[i] for i in keep])
        destination = Path(dest) / path.relative_to(data_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(out.getvalue())
    return Path(dest)


def data_target():
    return (
        read_hyperparameters(HYPERPARAMETERS_FILE).get("target") if HYPERPARAMETERS_FILE.is_file() else None
    )


def job_parameters(settings, container_parameters):
    """Batch strategy, max payload and concurrency: the container's /execution-parameters where it
    answers them, else the job's settings (SageMaker does the same)."""
    strategy = STRATEGY_SETTING.get(
        str(container_parameters.get("BatchStrategy", "")).upper(), settings["transform.batch_strategy"]
    )
    payload = container_parameters.get("MaxPayloadInMB", settings["transform.max_payload_mb"])
    concurrent = container_parameters.get(
        "MaxConcurrentTransforms", settings["transform.max_concurrent_transforms"]
    )
    return strategy, int(payload), max(1, int(concurrent))


def records_of(data, split_type):
    """The records of one input file: lines (each with its newline) for Line, the whole file for None."""
    if split_type == "None":
        return [data] if data else []
    return [line for line in data.splitlines(keepends=True) if line.strip()]


def batches(records, strategy, max_payload_mb, file_name):
    """The request bodies: one record each (SingleRecord), or as many records as fit in
    MaxPayloadInMB (MultiRecord; 0: all of them in one request). A record over the limit fails the
    job, as on SageMaker."""
    limit = max_payload_mb * MB
    if strategy == "SingleRecord" or limit == 0:
        bodies = list(records) if strategy == "SingleRecord" else [b"".join(records)]
    else:
        bodies, current = [], []
        size = 0
        for record in records:
            if current and size + len(record) > limit:
                bodies.append(b"".join(current))
                current, size = [], 0
            current.append(record)
            size += len(record)
        if current:
            bodies.append(b"".join(current))
    if limit:
        for body in bodies:
            if len(body) > limit:
                raise SetupError(
                    f"{file_name}: a record of {len(body)} bytes is over MaxPayloadInMB={max_payload_mb} "
                    "(raise transform.max_payload_mb, up to 100, or 0 for no limit)"
                )
    return [body for body in bodies if body]


def chunks(body, size=MB):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post(url, body, content_type, accept, chunked):
    """One /invocations request; a chunked body as SageMaker sends it with MaxPayloadInMB=0."""
    data = chunks(body) if chunked else body
    return requests.post(
        f"{url}/invocations",
        data=data,
        headers={"Content-Type": content_type, "Accept": accept},
        timeout=INVOCATION_TIMEOUT + 10,
    )


def assemble(answers, split_type):
    """AssembleWith Line: a newline after each response (as SageMaker adds it); None: concatenated."""
    if split_type == "Line":
        return b"".join(answer if answer.endswith(b"\n") else answer + b"\n" for answer in answers)
    return b"".join(answers)


def input_files(input_dir):
    return sorted(
        path for path in Path(input_dir).rglob("*") if path.is_file() and not path.name.startswith(".")
    )


def local_transform(args):
    root = local.project_dir()
    settings = local_settings()
    split_type, content_type = settings["transform.split_type"], settings["transform.content_type"]
    if split_type not in LOCAL_SPLIT_TYPES:
        raise SetupError(
            f"transform.split_type {split_type} is not read by local-transform (it splits None and Line); "
            "remote-transform runs it on SageMaker"
        )
    model_tarball = Path(args.model)
    if not model_tarball.is_file():
        raise SetupError(f"{args.model} does not exist: run `make local-train` first")
    if args.input:
        input_dir = local.existing_dir(args.input, "input folder")
        what = local.show(input_dir, root)
    else:
        input_dir = prepare_data_input(DATA_DIR, TRANSFORM_DIR / "input", data_target())
        what = f"{local.show(input_dir, root)} (the CSV of data/ without header and target column)"
    files = input_files(input_dir)
    if not files:
        raise SetupError(f"{local.show(input_dir, root)} holds no files to transform")
    output_dir = Path(args.output).resolve()
    client = engine.connect()
    engine.check_image(client, args.image)
    model_dir = TRANSFORM_DIR / "model"
    engine.clear_directory(model_dir, client, args.image)
    engine.clear_directory(output_dir, client, args.image)
    model_dir.mkdir(parents=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    local.unpack_model(model_tarball, model_dir)

    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    # What SageMaker sets on a transform job's container.
    environment = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(settings["transform.max_payload_mb"]),
        "SAGEMAKER_BATCH_STRATEGY": STRATEGY_VARIABLE[settings["transform.batch_strategy"]],
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(settings["transform.max_concurrent_transforms"]),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(INVOCATION_TIMEOUT),
    }
    name = job_name("transform")
    print(f"==> Transform job {name}: {args.image} serve on {url}, model from {args.model}")
    print(f"    input: {what}, {len(files)} file(s); {content_type}, SplitType {split_type}")
    with engine.sigterm_as_interrupt():
        container = client.containers.run(
            args.image,
            command=["serve"],
            detach=True,
            environment=environment,
            mounts=[engine.bind(model_dir, "/opt/ml/model", read_only=True)],
            ports={"8080/tcp": ("127.0.0.1", port)},
            labels=engine.labels_for(root, "transform", **{engine.LABEL_URL: url}),
        )
        try:
            return run_transform(container, url, settings, files, input_dir, output_dir, root)
        finally:
            engine.remove(container, timeout=10)


def run_transform(container, url, settings, files, input_dir, output_dir, root):
    if not local.wait_until_healthy(container, url, local.HEALTH_TIMEOUT):
        print(container.logs(tail=40).decode("utf-8", "replace"), file=sys.stderr)
        print("==> The serving container did not become healthy: see the log above", file=sys.stderr)
        return 1
    response = requests.get(f"{url}/execution-parameters", timeout=10)
    container_parameters = response.json() if response.status_code == 200 else {}
    strategy, payload_mb, concurrent = job_parameters(settings, container_parameters)
    split_type = settings["transform.split_type"]
    content_type, accept = settings["transform.content_type"], settings["transform.accept"]
    print(
        f"    /execution-parameters: {container_parameters or '(none)'} -> {strategy}, "
        f"MaxPayloadInMB {payload_mb}{' (no limit: chunked)' if payload_mb == 0 else ''}, "
        f"{concurrent} concurrent request(s)"
    )
    written = []
    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        for path in files:
            relative = path.relative_to(input_dir)
            bodies = batches(records_of(path.read_bytes(), split_type), strategy, payload_mb, relative)
            answers = list(
                pool.map(lambda body: post(url, body, content_type, accept, chunked=payload_mb == 0), bodies)
            )
            failed = [answer for answer in answers if answer.status_code != 200]
            if failed:
                print(
                    f"==> FAILED on {relative}: {failed[0].status_code} {failed[0].text[:500]}",
                    file=sys.stderr,
                )
                print(container.logs(tail=20).decode("utf-8", "replace"), file=sys.stderr)
                return 1
            out = output_dir / f"{relative}.out"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(assemble([answer.content for answer in answers], split_type))
            written.append(out)
            print(f"    {relative}: {len(bodies)} request(s) -> {local.show(out, root)}")
    print(f"==> Transform complete. Output in {local.show(output_dir, root)}:")
    for out in written:
        print(f"    {local.show(out, root)}")
    print("Next: make remote-transform (the same job on SageMaker, after make push and make remote-train)")
    return 0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- remote-transform ---------------------------------------------------------------------------


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
            "InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT,
            "InvocationsMaxRetries": INVOCATION_RETRIES,
        },
        "Environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(INVOCATION_TIMEOUT)},
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
    from .endpoints import model_request, what_to_deploy

    settings, session, account = open_aws("role_arn", "bucket")
    region, bucket = settings["region"], settings["bucket"]
    s3 = session.client("s3")
    check_bucket(s3, bucket, region)
    sagemaker = session.client("sagemaker")
    deployable = what_to_deploy(session, account, region, sagemaker, args)
    name = job_name("transform")
    job_prefix = s3_key(settings["s3_prefix"], "jobs", name)
    input_uri = settings["transform.input_s3_uri"]
    if input_uri:
        print(f"Input: {input_uri} (transform.input_s3_uri)")
    else:
        prepared = prepare_data_input(DATA_DIR, TRANSFORM_DIR / "remote" / name / "input", data_target())
        input_uri = upload_directory(s3, prepared, bucket, s3_key(job_prefix, "input"))
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
    note = describe_production(settings)
    if note:
        print(f"  production settings: {note}")
    code, description = follow_job(
        "transform", name, lambda: sagemaker.describe_transform_job(TransformJobName=name), args.no_wait
    )
    if description and code == 0:
        print(f"Output: one <file>.out per input file in {output_uri}")
        print(f"Next: aws s3 ls --recursive {output_uri}; aws sagemaker delete-model --model-name {name}")
    return code


def register(subparsers):
    parser = subparsers.add_parser(
        "local-transform", help="Run a batch transform job here: the serving image over files, <file>.out"
    )
    parser.add_argument("--image", required=True, help="training (serving) image reference")
    parser.add_argument("--model", default="build/model.tar.gz", help="the model.tar.gz to serve")
    parser.add_argument("--input", default="", help="folder of input files (default: data/ made ready)")
    parser.add_argument("--output", default=str(TRANSFORM_DIR / "output"), help="where <file>.out go")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.set_defaults(handler=local_transform)

    parser = subparsers.add_parser("remote-transform", help="Run a SageMaker batch transform job")
    parser.add_argument("--training-job", default="", help="the training job's model (default: the last one)")
    parser.add_argument("--model-package", default="", help="a model package ARN (default: latest Approved)")
    parser.add_argument(
        "--image-uri", default="", help="serve in this image (default: the image that trained it)"
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the job is created")
    parser.set_defaults(handler=remote_transform)
