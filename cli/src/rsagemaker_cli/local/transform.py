"""`rsagemaker local-transform`: what SageMaker's batch transform does, on this machine.

It starts `IMAGE serve` on the unpacked build/model.tar.gz with SAGEMAKER_BATCH=true and the batch
variables, reads GET /execution-parameters (the container's answer wins over the job's settings, as
on SageMaker), splits each file into records, packs them into requests of at most MaxPayloadInMB,
posts them to /invocations (MaxConcurrentTransforms at a time) and writes
build/transform/output/<file>.out. Settings: config/aws.json's `transform` block (content type,
Accept, split type None or Line, batch strategy, max payload in MB: 0 is no limit, each file sent
whole in chunks; concurrent transforms). The input is --input, else data/ made ready as SageMaker
sends CSV to a model (every CSV without its header and target column, build/transform/input/).
Each input file gives one output file, <file>.out; with SplitType Line the answers are joined with
AssembleWith Line (a newline after each response), as SageMaker does. remote-transform
(aws/transform.py) runs the same job on SageMaker.
"""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from ..core import engine
from ..core.data import without_target
from ..core.errors import SetupError
from ..core.net import free_port
from ..core.opt_ml import BATCH_INVOCATION_TIMEOUT, job_name
from ..core.settings import load
from .process import existing_dir
from .serve import HEALTH_TIMEOUT, unpack_model, wait_until_healthy

MB = 1024 * 1024
# The batch strategies as the container's environment (and /execution-parameters) spell them.
STRATEGY_VARIABLE = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
STRATEGY_SETTING = {value: key for key, value in STRATEGY_VARIABLE.items()}
LOCAL_SPLIT_TYPES = ("None", "Line")
# The transform settings alone, each checked: a local run needs no other AWS setting.
TRANSFORM_KEYS = (
    "transform.content_type",
    "transform.accept",
    "transform.split_type",
    "transform.batch_strategy",
    "transform.max_payload_mb",
    "transform.max_concurrent_transforms",
)


def local_transform_arguments(parser):
    parser.add_argument("--image", required=True, help="training (serving) image reference")
    parser.add_argument("--model", help="the model.tar.gz to serve (default: build/model.tar.gz)")
    parser.add_argument("--input", default="", help="folder of input files (default: data/ made ready)")
    parser.add_argument("--output", help="where <file>.out go (default: build/transform/output/)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")


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
        timeout=BATCH_INVOCATION_TIMEOUT + 10,
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
    project = args.project
    settings = load(project, keys=TRANSFORM_KEYS)
    split_type, content_type = settings["transform.split_type"], settings["transform.content_type"]
    if split_type not in LOCAL_SPLIT_TYPES:
        raise SetupError(
            f"transform.split_type {split_type} is not read by local-transform (it splits None and Line); "
            "remote-transform runs it on SageMaker"
        )
    work = project.build / "transform"
    model_tarball = Path(args.model) if args.model else project.build / "model.tar.gz"
    if not model_tarball.is_file():
        raise SetupError(f"{project.show(model_tarball)} does not exist: run `make local-train` first")
    if args.input:
        input_dir = existing_dir(args.input, "input folder")
        what = project.show(input_dir)
    else:
        input_dir = without_target(project.data, work / "input", project.target())
        what = f"{project.show(input_dir)} (the CSV of data/ without header and target column)"
    files = input_files(input_dir)
    if not files:
        raise SetupError(f"{project.show(input_dir)} holds no files to transform")
    output_dir = Path(args.output).resolve() if args.output else work / "output"
    client = engine.connect()
    engine.check_image(client, args.image)
    model_dir = work / "model"
    engine.clear_directory(model_dir, client, args.image)
    engine.clear_directory(output_dir, client, args.image)
    model_dir.mkdir(parents=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    unpack_model(model_tarball, model_dir)

    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    # What SageMaker sets on a transform job's container.
    environment = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(settings["transform.max_payload_mb"]),
        "SAGEMAKER_BATCH_STRATEGY": STRATEGY_VARIABLE[settings["transform.batch_strategy"]],
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(settings["transform.max_concurrent_transforms"]),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(BATCH_INVOCATION_TIMEOUT),
    }
    name = job_name(project.name, "transform")
    print(f"==> Transform job {name}: {args.image} serve on {url}, model from {project.show(model_tarball)}")
    print(f"    input: {what}, {len(files)} file(s); {content_type}, SplitType {split_type}")
    with engine.sigterm_as_interrupt():
        container = client.containers.run(
            args.image,
            command=["serve"],
            detach=True,
            environment=environment,
            mounts=[engine.bind(model_dir, "/opt/ml/model", read_only=True)],
            ports={"8080/tcp": ("127.0.0.1", port)},
            labels=engine.labels_for(project.root, "transform", **{engine.LABEL_URL: url}),
        )
        try:
            return run_transform(container, url, settings, files, input_dir, output_dir, project)
        finally:
            engine.remove(container, timeout=10)


def run_transform(container, url, settings, files, input_dir, output_dir, project):
    if not wait_until_healthy(container, url, HEALTH_TIMEOUT):
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
            print(f"    {relative}: {len(bodies)} request(s) -> {project.show(out)}")
    print(f"==> Transform complete. Output in {project.show(output_dir)}:")
    for out in written:
        print(f"    {project.show(out)}")
    print("Next: make remote-transform (the same job on SageMaker, after make push and make remote-train)")
    return 0
