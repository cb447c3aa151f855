"""`rsagemaker local-process`: the processing image as ScriptProcessor runs it, on this machine.

Rscript code/preprocess.R against an emulated /opt/ml: the `code` and `data` inputs mounted read-only
where a processing job puts them, each output a folder under build/processing/output, the job's
config files (processingjobconfig.json, resourceconfig.json) as SageMaker writes them, one
container per host (algo-1 .. algo-N; --instance-count, `make local-process INSTANCES=N`). A
ShardedByS3Key `data` input (processing.data_distribution) gives each host its share of the files
(opt_ml.shard(): in key order, dealt round-robin); each host writes its own output folders, then
gathered under build/processing/output as SageMaker uploads them under one prefix (a file written
by two hosts fails the job: on SageMaker one would silently overwrite the other). The containers run as root, as on SageMaker, so the files they write belong to
root on a Linux Docker host; the next run clears them through a container when this user may not.
"""

import os
import shutil
import sys
from pathlib import Path

from ..core import engine, opt_ml
from ..core.errors import SetupError
from ..core.settings import DISTRIBUTION, check_sharding, load

ACCOUNT = "000000000000"  # a placeholder: nothing local talks to AWS
PROCESSING_BASE = "/opt/ml/processing"


def local_process_arguments(parser):
    parser.add_argument("--image", required=True, help="processing image reference")
    parser.add_argument("--code", help="folder uploaded as the `code` input (default: code/)")
    parser.add_argument(
        "--script", default="preprocess.R", help="script in --code to run (default: preprocess.R)"
    )
    parser.add_argument("--input", help="folder mounted as the `data` input (default: data/train/)")
    parser.add_argument("--output", help="where the outputs go (default: build/processing/output/)")
    parser.add_argument("--outputs", default="train,validation", help="output names (comma separated)")
    parser.add_argument(
        "--instance-count",
        type=int,
        help="hosts (containers) that share the work (default: the setting processing.instance_count)",
    )


def existing_dir(path, what):
    path = Path(path)
    if not path.is_dir():
        raise SetupError(f"{what} {path} is not a folder")
    return path.resolve()


def code_folder_with(project, code, script):
    """The code folder (code/ by default), checked to hold the script the job runs."""
    code_dir = existing_dir(code or project.code, "code folder")
    if not (code_dir / script).is_file():
        raise SetupError(f"{project.show(code_dir / script)} does not exist")
    return code_dir


def instance_count(project, args, job, *keys):
    """--instance-count (make ... INSTANCES=N), else the setting <job>.instance_count, and the
    settings the run uses (keys besides these), checked: sharding across one instance is one line."""
    settings = load(project, keys=("region", f"{job}.instance_count", DISTRIBUTION[job], *keys))
    given = getattr(args, "instance_count", None)
    count = settings[f"{job}.instance_count"] if given is None else given
    if count < 1:
        raise SetupError("--instance-count must be at least 1")
    key = f"{job}.instance_count"
    counted = "--instance-count" if given is not None else f"{key} (from {settings.sources[key]})"
    check_sharding(settings, job, count, counted)
    return settings, count


def gather_outputs(host_outputs, output_dir):
    """Each host's output files under the one output folder, as SageMaker uploads them to one S3
    prefix. Two hosts writing the same file would overwrite each other there (the last upload wins):
    here that fails the job, naming the file and the hosts. Returns the clashes as lines."""
    owner, clashes = {}, []
    for host, folder in host_outputs:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder)
            if relative in owner:
                clashes.append(f"{relative} written by both {owner[relative]} and {host}")
                continue
            owner[relative] = host
            (output_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, output_dir / relative)
    return clashes


def local_process(args):
    project = args.project
    code_dir = code_folder_with(project, args.code, args.script)
    input_dir = existing_dir(args.input or project.data / "train", "input folder")
    output_names = [name.strip() for name in args.outputs.split(",") if name.strip()]
    settings, count = instance_count(project, args, "processing")
    region, distribution = settings["region"], settings["processing.data_distribution"]
    client = engine.connect()
    engine.check_image(client, args.image)

    work = project.build / "processing"
    output_dir = Path(args.output).resolve() if args.output else work / "output"
    engine.clear_directory(work / "hosts", client, args.image)
    engine.clear_directory(output_dir, client, args.image)

    # ScriptProcessor(command=["Rscript"], code=...) uploads the script's folder as input `code`
    # and replaces the image's entrypoint with the command plus the script's path in the container.
    entrypoint = ["Rscript", f"{PROCESSING_BASE}/input/code/{args.script}"]
    name = opt_ml.job_name(project.name, "processing")
    inputs = {
        "code": (code_dir.as_uri(), f"{PROCESSING_BASE}/input/code"),
        "data": (input_dir.as_uri(), f"{PROCESSING_BASE}/input/data", distribution),
    }
    outputs = {out: ((output_dir / out).as_uri(), f"{PROCESSING_BASE}/output/{out}") for out in output_names}
    job_config = opt_ml.processing_job_config(
        job_name=name,
        image=args.image,
        entrypoint=entrypoint,
        inputs=inputs,
        outputs=outputs,
        instance_count=count,
        environment=getattr(args, "environment", None),  # local-monitor's MONITOR_* settings
        region=region or "us-east-1",
        account=ACCOUNT,
    )
    hosts = opt_ml.hosts_of(count)
    shares = opt_ml.shard(input_dir, hosts) if distribution == opt_ml.SHARDED else None
    specs = []
    print(f"==> Processing job {name}: {' '.join(entrypoint)} on {len(hosts)} host(s)")
    print(f"    inputs: code <- {project.show(code_dir)}, data <- {project.show(input_dir)} ({distribution})")
    for host in hosts:
        host_dir = work / "hosts" / host
        opt_ml.write_json(host_dir / "config" / "processingjobconfig.json", job_config)
        opt_ml.write_json(
            host_dir / "config" / "resourceconfig.json", opt_ml.processing_resource_config(hosts, host)
        )
        (host_dir / "output").mkdir(parents=True)
        data = input_dir
        if shares is not None:  # this host's share of the files, at the paths they have under data/
            data = host_dir / "data"
            opt_ml.copy_files(input_dir, data, shares[host])
            print(f"    {host}: {len(shares[host])} file(s) of data: {', '.join(shares[host]) or '(none)'}")
        mounts = [
            engine.bind(host_dir / "config", "/opt/ml/config", read_only=True),
            engine.bind(host_dir / "output", "/opt/ml/output"),
            engine.bind(code_dir, f"{PROCESSING_BASE}/input/code", read_only=True),
            engine.bind(data, f"{PROCESSING_BASE}/input/data", read_only=True),
        ]
        for out in output_names:  # each host its own folder, gathered at the end
            (host_dir / "outputs" / out).mkdir(parents=True, exist_ok=True)
            mounts.append(engine.bind(host_dir / "outputs" / out, f"{PROCESSING_BASE}/output/{out}"))
        specs.append(
            {
                "image": args.image,
                "entrypoint": entrypoint,
                "command": [],
                "hostname": host,
                "mounts": mounts,
                "environment": job_config["Environment"],
                "labels": engine.labels_for(project.root, "processing"),
            }
        )

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
        print(f"    Config given to the job: {project.show(work / 'hosts')}/<host>/config", file=sys.stderr)
        return 1

    output_dir.mkdir(parents=True, exist_ok=True)
    clashes = gather_outputs([(host, work / "hosts" / host / "outputs") for host in hosts], output_dir)
    if clashes:
        for clash in clashes:
            print(f"==> FAILED: {clash}: on SageMaker one upload would overwrite the other", file=sys.stderr)
        print(
            "    Name each host's outputs apart (e.g. by current_host in resourceconfig.json)",
            file=sys.stderr,
        )
        return 1
    print(f"==> Processing complete. Outputs in {project.show(output_dir)}:")
    for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
        print(f"    {project.show(path)}")
    print("Next: make local-train                  (trains on data/)")
    training_image = os.environ.get("TRAINING_IMAGE", "IMAGE")  # the Makefile exports it
    print(f"  or: rsagemaker local-train --image {training_image} --channels {project.show(output_dir)}")
    print("                                         (trains on this split: one channel per output)")
    return 0
