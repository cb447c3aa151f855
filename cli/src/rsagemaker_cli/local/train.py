"""`rsagemaker local-train`: the training image with the /opt/ml tree a training job gets.

The code travels as SageMaker sends it to a network-isolated job: packed as sourcedir.tar.gz in the
`code` channel, named by sagemaker_submit_directory, so the container fetches and unpacks the very
tarball a remote job downloads from S3. Each data/<channel>/ folder is a channel, mounted read-only.
The model the job leaves in /opt/ml/model is packed as build/model.tar.gz, as SageMaker packs it.
"""

import sys
import tarfile
from pathlib import Path

from ..core import engine, opt_ml
from ..core.errors import SetupError
from ..core.settings import load
from .process import ACCOUNT, code_folder_with, existing_dir

TRAINING_STOP_TIMEOUT = 30  # SageMaker waits 120 s between SIGTERM and SIGKILL; locally less


def local_train_arguments(parser):
    parser.add_argument("--image", required=True, help="training image reference")
    parser.add_argument("--code", help="folder packed as sourcedir.tar.gz (default: code/)")
    parser.add_argument("--program", default="train.R", help="script in --code to run (default: train.R)")
    parser.add_argument(
        "--hyperparameters", help="JSON object of settings (default: config/hyperparameters.json)"
    )
    parser.add_argument("--channels", help="folder with one subfolder per channel (default: data/)")
    parser.add_argument("--model", help="where to write model.tar.gz (default: build/model.tar.gz)")


def build_training_tree(opt_ml_dir, *, code_dir, program, hyperparameters, channels, name, region):
    """Write the /opt/ml tree of a training job under opt_ml_dir; returns the packed code's members.

    (SageMaker SDK local mode instead mounts the source folder at /opt/ml/code, which skips packing
    and unpacking altogether.)
    """
    tarball = opt_ml_dir / "input" / "data" / opt_ml.CODE_CHANNEL / "sourcedir.tar.gz"
    members = opt_ml.pack_sourcedir(code_dir, tarball)
    config = opt_ml_dir / "input" / "config"
    encoded = opt_ml.encode_hyperparameters(
        hyperparameters,
        program=program,
        submit_directory=opt_ml.CODE_TARBALL_IN_CONTAINER,
        job_name=name,
        region=region,
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
    project = args.project
    code_dir = code_folder_with(project, args.code, args.program)
    channels_dir = existing_dir(args.channels or project.data, "channels folder")
    channels = sorted(p.name for p in channels_dir.iterdir() if p.is_dir())
    if not channels:
        raise SetupError(
            f"{project.show(channels_dir)} has no subfolder: each subfolder is a channel (e.g. train/)"
        )
    if opt_ml.CODE_CHANNEL in channels:
        raise SetupError(f"a channel may not be named `{opt_ml.CODE_CHANNEL}`: it carries the code")
    hyperparameters_file = args.hyperparameters or project.hyperparameters_file
    hyperparameters = project.hyperparameters(hyperparameters_file)
    settings = load(project, keys=("region", "training.checkpoint_local_path"))
    region = settings["region"] or "us-east-1"
    client = engine.connect()
    engine.check_image(client, args.image)

    work = project.build / "training"
    opt_ml_dir = work / "opt_ml"
    checkpoints = work / "checkpoints"
    engine.clear_directory(opt_ml_dir, client, args.image)
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = opt_ml.job_name(project.name, "training")
    try:
        members = build_training_tree(
            opt_ml_dir,
            code_dir=code_dir,
            program=args.program,
            hyperparameters=hyperparameters,
            channels=channels,
            name=name,
            region=region,
        )
    except ValueError as error:
        raise SetupError(f"{project.show(hyperparameters_file)}: {error}") from None

    checkpoint_path = settings["training.checkpoint_local_path"]
    mounts = [engine.bind(opt_ml_dir, "/opt/ml"), engine.bind(checkpoints, checkpoint_path)]
    mounts += [engine.bind(channels_dir / ch, f"/opt/ml/input/data/{ch}", read_only=True) for ch in channels]
    spec = {
        "image": args.image,
        "command": ["train"],
        "hostname": "algo-1",
        "mounts": mounts,
        "environment": {
            "TRAINING_JOB_NAME": name,
            "TRAINING_JOB_ARN": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{name}",
            # As remote-train sets it (aws/training.py): where the job's checkpoints are.
            opt_ml.CHECKPOINT_DIR_VARIABLE: checkpoint_path,
            opt_ml.IMAGE_VARIABLE: f"{args.image} (image ID {client.images.get(args.image).id})",
        },
        "labels": engine.labels_for(project.root, "training"),
    }
    print(f"==> Training job {name}: {args.image} train")
    print(f"    code: {project.show(code_dir)} packed as sourcedir.tar.gz ({', '.join(members)})")
    print(f"    channels: {', '.join(f'{ch} <- {project.show(channels_dir / ch)}' for ch in channels)}")
    print(f"    /opt/ml: {project.show(opt_ml_dir)}")
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
    model_tarball = Path(args.model).resolve() if args.model else project.build / "model.tar.gz"
    model_members = pack_model(opt_ml_dir / "model", model_tarball)
    print(f"==> Training complete. Model: {project.show(model_tarball)} ({', '.join(model_members)})")
    print(f"    Everything the job wrote: {project.show(opt_ml_dir)} (output/data, model, code)")
    print("Next: make local-serve, then make predict")
    return 0
