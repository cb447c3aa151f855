"""Local runs: the project's jobs in its images against an emulated /opt/ml, with no AWS account.

  local-process  the processing image as ScriptProcessor runs it: Rscript code/preprocess.R on data/train
  local-train    the training image with the /opt/ml tree a training job gets; packs build/model.tar.gz
  local-serve    the training image serving the unpacked build/model.tar.gz, detached, on 127.0.0.1
                 (--multi-model: a multi-model endpoint of the models in build/models/, multi_model.py)
  predict        sends sample rows of data/train to the local endpoint (--target-model NAME.tar.gz)
  local-stop     stops and removes this project's local containers

Run from the project root (the Makefile does). Everything lands in build/. The containers run as root,
as on SageMaker, so files they write through bind mounts (build/processing/output,
build/training/opt_ml) belong to root on a Linux Docker host; the next run clears them through a
container when this user may not.
"""

import os
import sys
import tarfile
import time
from pathlib import Path

import requests

from . import ToolError, engine, multi_model, opt_ml
from . import settings as aws_settings
from .opt_ml import job_name

ACCOUNT = "000000000000"  # a placeholder: nothing local talks to AWS
PROCESSING_BASE = "/opt/ml/processing"
TRAINING_STOP_TIMEOUT = 30  # SageMaker waits 120 s between SIGTERM and SIGKILL; locally less
HEALTH_TIMEOUT = 240  # seconds SageMaker gives a new endpoint to pass /ping


class UsageError(ToolError):
    """A mistake in the project or the arguments."""

    exit_code = 2


def register(subparsers):
    process = subparsers.add_parser("local-process", help="run code/preprocess.R in the processing image")
    process.add_argument("--image", required=True, help="processing image reference")
    process.add_argument("--code", default="code", help="folder uploaded as the `code` input (default: code)")
    process.add_argument(
        "--script", default="preprocess.R", help="script in --code to run (default: preprocess.R)"
    )
    process.add_argument("--input", default="data/train", help="folder mounted as the `data` input")
    process.add_argument("--output", default="build/processing/output", help="where the outputs go")
    process.add_argument("--outputs", default="train,validation", help="output names (comma separated)")
    process.add_argument(
        "--instance-count", type=int, default=1, help="hosts (containers) that share the work"
    )
    process.set_defaults(handler=local_process)

    train = subparsers.add_parser(
        "local-train", help="train in the training image; writes build/model.tar.gz"
    )
    train.add_argument("--image", required=True, help="training image reference")
    train.add_argument("--code", default="code", help="folder packed as sourcedir.tar.gz (default: code)")
    train.add_argument("--program", default="train.R", help="script in --code to run (default: train.R)")
    train.add_argument(
        "--hyperparameters", default="config/hyperparameters.json", help="JSON object of settings"
    )
    train.add_argument(
        "--channels", default="data", help="folder with one subfolder per channel (default: data)"
    )
    train.add_argument("--model", default="build/model.tar.gz", help="where to write model.tar.gz")
    train.set_defaults(handler=local_train)

    serve = subparsers.add_parser("local-serve", help="serve build/model.tar.gz on 127.0.0.1 (detached)")
    serve.add_argument("--image", required=True, help="training image reference")
    serve.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default: 8080)")
    serve.add_argument("--model", default="build/model.tar.gz", help="the model.tar.gz to serve")
    serve.add_argument("--timeout", type=float, default=HEALTH_TIMEOUT, help="seconds to wait for /ping")
    serve.add_argument(
        "--multi-model",
        action="store_true",
        help=f"a multi-model endpoint of the models in {multi_model.MODELS_DIR}/ (SAGEMAKER_MULTI_MODEL=true)",
    )
    serve.set_defaults(handler=local_serve)

    predict = subparsers.add_parser("predict", help="send sample rows of data/train to the local endpoint")
    predict.add_argument("--url", help="endpoint URL (default: the one local-serve started)")
    predict.add_argument("--data", default="data/train", help="folder of CSV files with a header row")
    predict.add_argument("--rows", type=int, default=5, help="rows to send (default: 5)")
    predict.add_argument(
        "--target", help="column left out (default: `target` in config/hyperparameters.json)"
    )
    predict.add_argument("--accept", default="text/csv", help="Accept header (default: text/csv)")
    predict.add_argument(
        "--target-model",
        help=f"on a multi-model endpoint: the model, a file name in {multi_model.MODELS_DIR}/",
    )
    predict.set_defaults(handler=predict_rows)

    stop = subparsers.add_parser("local-stop", help="stop and remove this project's local containers")
    stop.set_defaults(handler=local_stop)


def project_dir():
    root = Path.cwd()
    if not (root / "code").is_dir() or not (root / "sagemaker_tools").is_dir():
        raise UsageError(f"{root} is not the project root (no code/ or sagemaker_tools/): run from there")
    return root


def setting(key):
    """One setting of config/aws.json (or its environment variable), read and checked on its own: a
    local run needs no other AWS setting to be filled in or valid."""
    return aws_settings.load(keys=(key,))[key]


def region():
    return setting("region")


def existing_dir(path, what):
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{what} {path} is not a folder")
    return path.resolve()


def code_folder_with(code, script, root):
    """The code folder, checked to hold the script the job runs."""
    code_dir = existing_dir(code, "code folder")
    if not (code_dir / script).is_file():
        raise UsageError(f"{show(code_dir / script, root)} does not exist")
    return code_dir


def show(path, root):
    """A path as the user would type it from the project root."""
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


# --- processing -------------------------------------------------------------------------------


def local_process(args):
    root = project_dir()
    code_dir = code_folder_with(args.code, args.script, root)
    input_dir = existing_dir(args.input, "input folder")
    output_names = [name.strip() for name in args.outputs.split(",") if name.strip()]
    if args.instance_count < 1:
        raise UsageError("--instance-count must be at least 1")
    client = engine.connect()
    engine.check_image(client, args.image)

    work = root / "build" / "processing"
    output_dir = Path(args.output).resolve()
    engine.clear_directory(work / "hosts", client, args.image)
    engine.clear_directory(output_dir, client, args.image)

    # ScriptProcessor(command=["Rscript"], code=...) uploads the script's folder as input `code`
    # and replaces the image's entrypoint with the command plus the script's path in the container.
    entrypoint = ["Rscript", f"{PROCESSING_BASE}/input/code/{args.script}"]
    name = job_name("processing")
    inputs = {
        "code": (code_dir.as_uri(), f"{PROCESSING_BASE}/input/code"),
        "data": (input_dir.as_uri(), f"{PROCESSING_BASE}/input/data"),
    }
    outputs = {out: ((output_dir / out).as_uri(), f"{PROCESSING_BASE}/output/{out}") for out in output_names}
    job_config = opt_ml.processing_job_config(
        job_name=name,
        image=args.image,
        entrypoint=entrypoint,
        inputs=inputs,
        outputs=outputs,
        instance_count=args.instance_count,
        region=region(),
        account=ACCOUNT,
    )
    hosts = [f"algo-{i}" for i in range(1, args.instance_count + 1)]
    specs = []
    for host in hosts:
        host_dir = work / "hosts" / host
        opt_ml.write_json(host_dir / "config" / "processingjobconfig.json", job_config)
        opt_ml.write_json(
            host_dir / "config" / "resourceconfig.json", opt_ml.processing_resource_config(hosts, host)
        )
        (host_dir / "output").mkdir(parents=True)
        mounts = [
            engine.bind(host_dir / "config", "/opt/ml/config", read_only=True),
            engine.bind(host_dir / "output", "/opt/ml/output"),
            engine.bind(code_dir, f"{PROCESSING_BASE}/input/code", read_only=True),
            engine.bind(input_dir, f"{PROCESSING_BASE}/input/data", read_only=True),
        ]
        for out in output_names:
            (output_dir / out).mkdir(parents=True, exist_ok=True)
            mounts.append(engine.bind(output_dir / out, f"{PROCESSING_BASE}/output/{out}"))
        specs.append(
            {
                "image": args.image,
                "entrypoint": entrypoint,
                "command": [],
                "hostname": host,
                "mounts": mounts,
                "environment": job_config["Environment"],
                "labels": engine.labels_for(root, "processing"),
            }
        )

    print(f"==> Processing job {name}: {' '.join(entrypoint)} on {len(hosts)} host(s)")
    print(f"    inputs: code <- {show(code_dir, root)}, data <- {show(input_dir, root)}")
    # SIGTERM, as `docker stop` sends: the Rscript wrapper must (and does) stop on it, not just on SIGINT.
    codes = engine.run_to_completion(client, specs, stop_signal="SIGTERM", stop_timeout=10)

    failed = [(host, code) for host, code in zip(hosts, codes) if code != 0]
    for host, code in failed:
        message = work / "hosts" / host / "output" / "message"
        reason = (
            message.read_text(errors="replace").strip() if message.exists() else "(no /opt/ml/output/message)"
        )
        print(f"==> FAILED on {host} (exit code {code}): {reason}", file=sys.stderr)
    if failed:
        print(f"    Config given to the job: {show(work / 'hosts', root)}/<host>/config", file=sys.stderr)
        return 1

    print(f"==> Processing complete. Outputs in {show(output_dir, root)}:")
    for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
        print(f"    {show(path, root)}")
    print("Next: make local-train                  (trains on data/)")
    training_image = os.environ.get("TRAINING_IMAGE", "IMAGE")  # the Makefile exports it
    print(
        f"  or: python -m sagemaker_tools local-train --image {training_image} --channels {show(output_dir, root)}"
    )
    print("                                         (trains on this split: one channel per output)")
    return 0


# --- training ---------------------------------------------------------------------------------


def build_training_tree(opt_ml_dir, *, code_dir, program, hyperparameters, channels, name):
    """Write the /opt/ml tree of a training job under opt_ml_dir.

    The code travels as SageMaker sends it to a network-isolated job: packed as sourcedir.tar.gz in
    the `code` channel, named by sagemaker_submit_directory. The container then fetches and unpacks
    the very tarball a remote job would download from S3. (SageMaker SDK local mode instead mounts the
    source folder at /opt/ml/code, which skips packing and unpacking altogether.)
    """
    tarball = opt_ml_dir / "input" / "data" / opt_ml.CODE_CHANNEL / "sourcedir.tar.gz"
    members = opt_ml.pack_sourcedir(code_dir, tarball)
    config = opt_ml_dir / "input" / "config"
    encoded = opt_ml.encode_hyperparameters(
        hyperparameters,
        program=program,
        submit_directory=opt_ml.CODE_TARBALL_IN_CONTAINER,
        job_name=name,
        region=region(),
    )
    opt_ml.write_json(config / "hyperparameters.json", encoded)
    opt_ml.write_json(
        config / "inputdataconfig.json", opt_ml.input_data_config([*channels, opt_ml.CODE_CHANNEL])
    )
    opt_ml.write_json(config / "resourceconfig.json", opt_ml.training_resource_config(["algo-1"], "algo-1"))
    for channel in channels:  # mount points, created here so they belong to this user
        (opt_ml_dir / "input" / "data" / channel).mkdir(parents=True, exist_ok=True)
    for sub in ("model", "output", "code"):
        (opt_ml_dir / sub).mkdir(parents=True, exist_ok=True)
    return members


def pack_model(model_dir, dest):
    """model.tar.gz as SageMaker packs /opt/ml/model: its contents at the archive's root."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    with tarfile.open(dest) as archive:
        return [member.name for member in archive.getmembers() if member.isfile()]


def local_train(args):
    root = project_dir()
    code_dir = code_folder_with(args.code, args.program, root)
    channels_dir = existing_dir(args.channels, "channels folder")
    channels = sorted(p.name for p in channels_dir.iterdir() if p.is_dir())
    if not channels:
        raise UsageError(
            f"{show(channels_dir, root)} has no subfolder: each subfolder is a channel (e.g. train/)"
        )
    if opt_ml.CODE_CHANNEL in channels:
        raise UsageError(f"a channel may not be named `{opt_ml.CODE_CHANNEL}`: it carries the code")
    hyperparameters = opt_ml.read_hyperparameters(args.hyperparameters)
    client = engine.connect()
    engine.check_image(client, args.image)

    work = root / "build" / "training"
    opt_ml_dir = work / "opt_ml"
    checkpoints = work / "checkpoints"
    engine.clear_directory(opt_ml_dir, client, args.image)
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = job_name("training")
    try:
        members = build_training_tree(
            opt_ml_dir,
            code_dir=code_dir,
            program=args.program,
            hyperparameters=hyperparameters,
            channels=channels,
            name=name,
        )
    except ValueError as error:
        raise UsageError(f"{args.hyperparameters}: {error}") from None

    checkpoint_path = setting("training.checkpoint_local_path")
    mounts = [engine.bind(opt_ml_dir, "/opt/ml"), engine.bind(checkpoints, checkpoint_path)]
    mounts += [engine.bind(channels_dir / ch, f"/opt/ml/input/data/{ch}", read_only=True) for ch in channels]
    spec = {
        "image": args.image,
        "command": ["train"],
        "hostname": "algo-1",
        "mounts": mounts,
        "environment": {
            "TRAINING_JOB_NAME": name,
            "TRAINING_JOB_ARN": f"arn:aws:sagemaker:{region()}:{ACCOUNT}:training-job/{name}",
            # As remote-train sets it (jobs.py): where the job's checkpoints are.
            opt_ml.CHECKPOINT_DIR_VARIABLE: checkpoint_path,
            opt_ml.IMAGE_VARIABLE: f"{args.image} (image ID {client.images.get(args.image).id})",
        },
        "labels": engine.labels_for(root, "training"),
    }
    print(f"==> Training job {name}: {args.image} train")
    print(f"    code: {show(code_dir, root)} packed as sourcedir.tar.gz ({', '.join(members)})")
    print(f"    channels: {', '.join(f'{ch} <- {show(channels_dir / ch, root)}' for ch in channels)}")
    print(f"    /opt/ml: {show(opt_ml_dir, root)}")
    [code] = engine.run_to_completion(
        client, [spec], stop_signal="SIGTERM", stop_timeout=TRAINING_STOP_TIMEOUT
    )

    if code != 0:
        failure = opt_ml_dir / "output" / "failure"
        reason = (
            failure.read_text(errors="replace").strip() if failure.exists() else "(no /opt/ml/output/failure)"
        )
        print(f"==> Training FAILED (exit code {code}): {reason}", file=sys.stderr)
        return 1
    model_tarball = Path(args.model).resolve()
    model_members = pack_model(opt_ml_dir / "model", model_tarball)
    print(f"==> Training complete. Model: {show(model_tarball, root)} ({', '.join(model_members)})")
    print(f"    Everything the job wrote: {show(opt_ml_dir, root)} (output/data, model, code)")
    print("Next: make local-serve, then make predict")
    return 0


# --- serving ----------------------------------------------------------------------------------


def unpack_model(tarball, dest):
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, filter="data")  # refuses members that leave dest
        else:
            archive.extractall(dest)


def wait_until_healthy(container, url, timeout):
    """Poll /ping until it answers 200; False if the container exits or time runs out."""
    started = time.monotonic()
    next_report = started + 2
    while time.monotonic() - started < timeout:
        container.reload()
        if container.status in ("exited", "dead"):
            return False
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        if time.monotonic() >= next_report:
            print(f"    waiting for {url}/ping ({time.monotonic() - started:.0f}s)", flush=True)
            next_report += 2
        time.sleep(0.25)
    return False


def local_serve(args):
    root = project_dir()
    model_tarball = Path(args.model)
    tarballs = multi_model.model_tarballs(root) if args.multi_model else []
    if not args.multi_model and not model_tarball.is_file():
        raise UsageError(f"{args.model} does not exist: run `make local-train` first")
    client = engine.connect()
    engine.check_image(client, args.image)
    for old in engine.find_containers(client, root, "serving"):
        print(f"==> Replacing the running local endpoint {old.labels.get(engine.LABEL_URL, old.short_id)}")
        engine.remove(old, timeout=10)

    url = f"http://127.0.0.1:{args.port}"
    if args.multi_model:
        return local_serve_multi_model(args, root, client, url, tarballs)
    model_dir = root / "build" / "serving" / "model"
    engine.clear_directory(model_dir, client, args.image)
    model_dir.mkdir(parents=True)
    unpack_model(model_tarball, model_dir)
    container = start_endpoint(
        args, root, client, url, mounts=[engine.bind(model_dir, "/opt/ml/model", read_only=True)]
    )
    if container is None:
        return 1
    print(f"==> Endpoint ready at {url} (model read-only at /opt/ml/model from {show(model_dir, root)})")
    print("Next: make predict")
    print(f"      curl -s -X POST -H 'Content-Type: text/csv' --data '5.1,3.5,1.4,0.2' {url}/invocations")
    print(f"      docker logs -f {container.short_id}")
    print("      make local-stop")
    return 0


def local_serve_multi_model(args, root, client, url, tarballs):
    """A multi-model endpoint: no model at start; predict --target-model loads them as SageMaker would."""
    models_dir = root / multi_model.LOCAL_MODELS_DIR
    engine.clear_directory(models_dir, client, args.image)
    models_dir.mkdir(parents=True)
    container = start_endpoint(
        args,
        root,
        client,
        url,
        mounts=[engine.bind(models_dir, multi_model.CONTAINER_MODELS_DIR, read_only=True)],
        environment={multi_model.MULTI_MODEL_VARIABLE: "true"},
        labels={multi_model.LABEL_MULTI_MODEL: "true"},
    )
    if container is None:
        return 1
    print(
        f"==> Multi-model endpoint ready at {url}: no model loaded yet; {len(tarballs)} model(s) to ask for"
    )
    print(
        f"    ({multi_model.MODELS_DIR}/*.tar.gz; unpacked on first use under {show(models_dir, root)}/<id>/model)"
    )
    print("Next, one per model (each loads on its first request, as on SageMaker):")
    multi_model.print_targets(tarballs, "make predict")
    print(f"      curl -s {url}/models      (the loaded models)")
    print(f"      docker logs -f {container.short_id}")
    print("      make local-stop")
    return 0


def start_endpoint(args, root, client, url, mounts, environment=None, labels=None):
    """`IMAGE serve` detached on 127.0.0.1:PORT; the container once /ping answers 200, else None
    (its log printed, the container removed)."""
    with engine.sigterm_as_interrupt():
        try:
            container = client.containers.run(
                args.image,
                command=["serve"],
                detach=True,
                mounts=mounts,
                environment=environment or {},
                ports={"8080/tcp": ("127.0.0.1", args.port)},
                labels=engine.labels_for(root, "serving", **{engine.LABEL_URL: url}, **(labels or {})),
            )
        except engine.docker.errors.APIError as error:
            for created in engine.find_containers(client, root, "serving"):  # created but not started
                engine.remove(created, timeout=1)
            raise engine.EngineError(
                f"cannot start the endpoint on 127.0.0.1:{args.port} ({error.explanation or error}); "
                "is the port taken? Try --port"
            ) from None
        what = "multi-model" if args.multi_model else f"model from {args.model}"
        print(f"==> Started {args.image} serve as container {container.short_id}, {what}")
        try:
            healthy = wait_until_healthy(container, url, args.timeout)
        except KeyboardInterrupt:
            engine.remove(container, timeout=5)
            raise
    if not healthy:
        container.reload()
        logs = container.logs(tail=40).decode("utf-8", "replace")
        print(logs, file=sys.stderr)
        print(
            f"==> The endpoint did not become healthy ({container.status}, "
            f"exit code {container.attrs['State'].get('ExitCode')}): see the log above",
            file=sys.stderr,
        )
        engine.remove(container, timeout=5)
        return None
    return container


def find_endpoint(root):
    """The running local endpoint's container."""
    client = engine.connect()
    for container in engine.find_containers(client, root, "serving"):
        if container.status == "running" and engine.LABEL_URL in container.labels:
            return container
    raise UsageError("no local endpoint is running: run `make local-serve` first (or pass --url)")


def find_endpoint_url(root):
    return find_endpoint(root).labels[engine.LABEL_URL]


def predict_rows(args):
    root = project_dir()
    target = args.target
    if target is None and Path("config/hyperparameters.json").is_file():
        target = opt_ml.read_hyperparameters("config/hyperparameters.json").get("target")
    body, _ = opt_ml.sample_rows(args.data, args.rows, target)
    endpoint = None if args.url else find_endpoint(root)
    url = args.url or endpoint.labels[engine.LABEL_URL]
    is_multi_model = args.target_model or (endpoint and endpoint.labels.get(multi_model.LABEL_MULTI_MODEL))
    if is_multi_model and not args.target_model:
        names = ", ".join(path.name for path in sorted((root / multi_model.MODELS_DIR).glob("*.tar.gz")))
        raise UsageError(
            f"{url} is a multi-model endpoint: name the model, make predict TARGET_MODEL=<one of: {names}>"
        )
    if args.target_model:
        multi_model.check_target(root, args.target_model)
    where = f"{url} TargetModel={args.target_model}" if args.target_model else f"{url}/invocations"
    print(f"==> POST {where} (text/csv, {len(body.splitlines())} rows):")
    print(body, end="")
    try:
        if args.target_model:
            response = multi_model.predict(
                root, url, args.target_model, body.encode(), "text/csv", args.accept
            )
        else:
            response = requests.post(
                f"{url}/invocations",
                data=body.encode(),
                headers={"Content-Type": "text/csv", "Accept": args.accept},
                timeout=60,
            )
    except requests.RequestException as error:
        print(f"==> No answer from {url}: {error}", file=sys.stderr)
        return 1
    print(f"==> {response.status_code} {response.headers.get('Content-Type', '')}:")
    print(response.text.rstrip("\n"))
    if not response.ok:
        return 1
    print("Next: make local-stop (stops the endpoint)")
    return 0


def local_stop(args):
    root = project_dir()
    client = engine.connect()
    containers = engine.find_containers(client, root)
    if not containers:
        print("==> No local container of this project is running.")
        return 0
    for container in containers:
        role = container.labels.get(engine.LABEL_TOOL)
        print(
            f"==> Stopping {role} container {container.short_id} {container.labels.get(engine.LABEL_URL, '')}"
        )
        engine.remove(container, timeout=TRAINING_STOP_TIMEOUT)
    print(f"==> Stopped {len(containers)} container(s).")
    return 0
