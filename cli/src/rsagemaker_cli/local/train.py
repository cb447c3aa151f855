"""`rsagemaker local-train`: the training image with the /opt/ml tree a training job gets.

The code travels as SageMaker sends it to a network-isolated job: packed as sourcedir.tar.gz in the
`code` channel, named by sagemaker_submit_directory, so the container fetches and unpacks the very
tarball a remote job downloads from S3. Each data/<channel>/ folder is a channel, mounted read-only.
The model the job leaves in /opt/ml/model is packed as build/model.tar.gz, as SageMaker packs it.

On N instances (--instance-count, `make local-train INSTANCES=N`, else training.instance_count) N
containers run as SageMaker runs them: hosts algo-1 .. algo-N, each with its own /opt/ml
(build/training/opt_ml for algo-1, build/training/hosts/<host>/opt_ml for the others) whose
resourceconfig.json names it and all hosts, on one user-defined network where each reaches the
others by host name. A ShardedByS3Key channel (training.channel_distribution) gives each host its
share of the files (opt_ml.shard()); the others are given whole. The model is algo-1's, as on SageMaker.
"""

import sys
import tarfile
from pathlib import Path

from ..core import engine, opt_ml
from ..core.errors import SetupError
from .process import ACCOUNT, code_folder_with, existing_dir, instance_count

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
    parser.add_argument(
        "--instance-count",
        type=int,
        help="hosts (containers) of the job (default: the setting training.instance_count)",
    )


def build_training_tree(
    opt_ml_dir,
    *,
    code_dir,
    program,
    hyperparameters,
    channels,
    name,
    region,
    hosts=("algo-1",),
    host="algo-1",
    distribution=None,
):
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
        config / "inputdataconfig.json",
        opt_ml.input_data_config([*channels, opt_ml.CODE_CHANNEL], distribution),
    )
    opt_ml.write_json(config / "resourceconfig.json", opt_ml.training_resource_config(hosts, host))
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
    # local-tune (local/tune.py) runs each trial through here with its values over the file's.
    overrides = getattr(args, "overrides", None)
    hyperparameters = {**project.hyperparameters(hyperparameters_file), **(overrides or {})}
    settings, count = instance_count(project, args, "training", "training.checkpoint_local_path")
    distribution = settings["training.channel_distribution"]
    unknown = sorted(set(distribution) - set(channels))
    if unknown:
        raise SetupError(
            f"training.channel_distribution names {', '.join(unknown)}, not a channel here "
            f"({', '.join(channels)} in {project.show(channels_dir)})"
        )
    region = settings["region"] or "us-east-1"
    client = engine.connect()
    engine.check_image(client, args.image)

    work = project.build / "training"
    hosts = opt_ml.hosts_of(count)
    # algo-1's /opt/ml where a one-instance job has it; the other hosts' beside it.
    trees = {
        host: work / "opt_ml" if host == "algo-1" else work / "hosts" / host / "opt_ml" for host in hosts
    }
    checkpoints = work / "checkpoints"
    engine.clear_directory(work / "opt_ml", client, args.image)
    engine.clear_directory(work / "hosts", client, args.image)
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = opt_ml.job_name(project.name, "training")
    checkpoint_path = settings["training.checkpoint_local_path"]
    shares = {
        ch: opt_ml.shard(channels_dir / ch, hosts)
        for ch in channels
        if distribution.get(ch) == opt_ml.SHARDED
    }
    environment = {
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{name}",
        # As remote-train sets it (aws/training.py): where the job's checkpoints are.
        opt_ml.CHECKPOINT_DIR_VARIABLE: checkpoint_path,
        opt_ml.IMAGE_VARIABLE: f"{args.image} (image ID {client.images.get(args.image).id})",
    }
    print(f"==> Training job {name}: {args.image} train on {count} host(s)")
    specs = []
    for host, tree in trees.items():
        try:
            members = build_training_tree(
                tree,
                code_dir=code_dir,
                program=args.program,
                hyperparameters=hyperparameters,
                channels=channels,
                name=name,
                region=region,
                hosts=hosts,
                host=host,
                distribution=distribution,
            )
        except ValueError as error:
            raise SetupError(f"{project.show(hyperparameters_file)}: {error}") from None
        # Each host's checkpoints apart (SageMaker syncs each instance's folder with the same S3 URI).
        host_checkpoints = checkpoints if host == "algo-1" else work / "hosts" / host / "checkpoints"
        host_checkpoints.mkdir(parents=True, exist_ok=True)
        mounts = [engine.bind(tree, "/opt/ml"), engine.bind(host_checkpoints, checkpoint_path)]
        for ch in channels:
            source = channels_dir / ch
            if ch in shares:  # this host's share of the channel's files
                source = work / "hosts" / host / "shards" / ch
                opt_ml.copy_files(channels_dir / ch, source, shares[ch][host])
                print(
                    f"    {host}: {len(shares[ch][host])} file(s) of {ch}: {', '.join(shares[ch][host]) or '(none)'}"
                )
            mounts.append(engine.bind(source, f"/opt/ml/input/data/{ch}", read_only=True))
        specs.append(
            {
                "image": args.image,
                "command": ["train"],
                "hostname": host,
                "mounts": mounts,
                "environment": environment,
                "labels": engine.labels_for(project.root, "training"),
            }
        )
    print(f"    code: {project.show(code_dir)} packed as sourcedir.tar.gz ({', '.join(members)})")
    print(
        "    channels: "
        + ", ".join(
            f"{ch} <- {project.show(channels_dir / ch)} ({distribution.get(ch, opt_ml.REPLICATED)})"
            for ch in channels
        )
    )
    print(
        f"    /opt/ml: {project.show(trees['algo-1'])}"
        + (f" (other hosts: {project.show(work / 'hosts')}/<host>/opt_ml)" if count > 1 else "")
    )
    # On one network, each container reachable by its host name, as on SageMaker.
    with engine.job_network(client, name, engine.labels_for(project.root, "training")) as network:
        for spec in specs:
            spec.update(engine.network_of(client, network, spec["hostname"]))
        codes = engine.run_to_completion(
            client, specs, stop_signal="SIGTERM", stop_timeout=TRAINING_STOP_TIMEOUT
        )

    failed = [(host, code) for host, code in zip(hosts, codes) if code != 0]
    for host, code in failed:
        failure = trees[host] / "output" / "failure"
        reason = (
            failure.read_text(errors="replace").strip() if failure.exists() else "(no /opt/ml/output/failure)"
        )
        print(f"==> Training FAILED on {host} (exit code {code}): {reason}", file=sys.stderr)
    if failed:
        return 1
    model_tarball = Path(args.model).resolve() if args.model else project.build / "model.tar.gz"
    model_members = pack_model(trees["algo-1"] / "model", model_tarball)
    print(f"==> Training complete. Model: {project.show(model_tarball)} ({', '.join(model_members)})")
    if count > 1:
        print("    (algo-1's /opt/ml/model, as SageMaker uploads it; the other hosts' are not kept)")
    print(f"    Everything the job wrote: {project.show(trees['algo-1'])} (output/data, model, code)")
    if overrides is None:
        print("Next: make local-serve, then make predict")
    return 0
