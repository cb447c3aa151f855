"""The files SageMaker puts in front of a container, built the way SageMaker builds them.

Shared by the local runs (which write them under build/) and the remote jobs (which send the same
hyperparameters and the same sourcedir.tar.gz to SageMaker):
  encode_hyperparameters()  the hyperparameters.json of a script-mode training job
  pack_sourcedir()          the sourcedir.tar.gz the SDK uploads for a source_dir
  training_resource_config() / processing_job_config() / ...  the JSON files under /opt/ml
  job_name() / unique_name()  the name of every job, model and endpoint config, local or remote
(The project's data as SageMaker sends CSV to a model: data.py.)
"""

import fnmatch
import gzip
import io
import json
import os
import re
import shutil
import tarfile
from datetime import datetime, timezone
from pathlib import Path

# SageMaker gives each batch transform request 600 s by default; the container's own limit is set to match
# (local-transform and remote-transform alike).
BATCH_INVOCATION_TIMEOUT = 600

# SageMaker's limits on CreateTrainingJob's HyperParameters.
MAX_HYPERPARAMETERS = 100
MAX_KEY_LENGTH = 256
MAX_VALUE_LENGTH = 2500

# Where a network-isolated training job finds its code: the `code` channel, named by
# sagemaker_submit_directory. The local runs use the same place (local/train.py).
CODE_CHANNEL = "code"
CODE_TARBALL_IN_CONTAINER = "/opt/ml/input/data/code/sourcedir.tar.gz"

# The environment variable that tells a training container where its checkpoints are (the R side
# reads it); its value is the setting training.checkpoint_local_path, locally and remotely.
CHECKPOINT_DIR_VARIABLE = "SAGEMAKER_CHECKPOINT_DIR"
# The image a training job runs, as the R side keeps it with the model (rsagemaker-versions.json):
# a container cannot learn its own image, so remote-train passes the pushed digest, local-train the
# local image's ID.
IMAGE_VARIABLE = "R_SAGEMAKER_IMAGE"

# What of code/ is packed: the same rule for the image (.dockerignore), sourcedir.tar.gz (here) and
# the code/ folder of model.tar.gz (the R side), written out in the README ("What gets packed").
# Left out: every dotfile and dot-folder at any depth (.Renviron, .env, .git, .Rproj.user, .RData,
# .Rhistory, .DS_Store ...) except KEPT_DOTFILES, plus caches and archives (SOURCEDIR_EXCLUDES).
KEPT_DOTFILES = (".Rprofile",)  # at the top of code/: renv's .Rprofile runs renv/activate.R
SOURCEDIR_EXCLUDES = (
    "__pycache__",
    "*.pyc",
    "*.tar",
    "*.tar.gz",
    "*.tgz",
    "*.zip",
)
# Caches inside renv/ that renv rebuilds from renv.lock (a host's library does not fit the image).
RENV_CACHES = ("renv/library", "renv/staging", "renv/sandbox")


def encode_hyperparameters(
    hyperparameters, *, program=None, submit_directory=None, job_name=None, region=None
):
    """hyperparameters.json of a script-mode job: every value JSON-encoded, as the SageMaker SDK does.

    The SDK sends json.dumps(value) for each value, so "abc" arrives as "\\"abc\\"" and 10 as "10";
    the container decodes them back to typed values. program / submit_directory / job_name / region
    add the SDK's own keys (sagemaker_program, sagemaker_submit_directory, sagemaker_job_name,
    sagemaker_region) and sagemaker_container_log_level. Raises ValueError on what SageMaker refuses
    (TypeError when hyperparameters is not a dict).
    """
    if not isinstance(hyperparameters, dict):
        raise TypeError("hyperparameters must be a JSON object (name -> value)")
    sdk_keys = {
        "sagemaker_program": program,
        "sagemaker_submit_directory": submit_directory,
        "sagemaker_container_log_level": 20 if program is not None else None,
        "sagemaker_job_name": job_name,
        "sagemaker_region": region,
    }
    sdk_keys = {key: value for key, value in sdk_keys.items() if value is not None}
    clashes = sorted(set(hyperparameters) & set(sdk_keys))
    if clashes:
        raise ValueError(f"hyperparameter(s) {', '.join(clashes)} are set by the tools; remove them")
    encoded = {}
    for key, value in {**hyperparameters, **sdk_keys}.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"hyperparameter name {key!r} must be 1 to {MAX_KEY_LENGTH} characters")
        text = json.dumps(value)
        if len(text) > MAX_VALUE_LENGTH:
            raise ValueError(
                f"hyperparameter {key!r} is {len(text)} characters once JSON-encoded; "
                f"SageMaker accepts at most {MAX_VALUE_LENGTH}"
            )
        encoded[key] = text
    if len(encoded) > MAX_HYPERPARAMETERS:
        raise ValueError(f"{len(encoded)} hyperparameters; SageMaker accepts at most {MAX_HYPERPARAMETERS}")
    return encoded


def packed(relative_path):
    """Whether a path of code/ (relative, with / separators) goes into the image and the tarballs."""
    if relative_path in RENV_CACHES or relative_path.startswith(tuple(f"{cache}/" for cache in RENV_CACHES)):
        return False
    for part in relative_path.split("/"):
        if part.startswith(".") and relative_path not in KEPT_DOTFILES:
            return False
        if any(fnmatch.fnmatch(part, pattern) for pattern in SOURCEDIR_EXCLUDES):
            return False
    return True


def pack_sourcedir(code_dir, dest_tar_gz):
    """Pack the code in code_dir into dest_tar_gz, files at the archive's root as the SDK packs them.

    Only code goes in: see packed() (no dotfiles but .Rprofile, no caches or archives). Symbolic links are stored as the
    files they point to (the container refuses links that leave the code directory). Members are
    sorted with fixed owners and times, so the same code gives the same bytes. Returns the member names.
    """
    code_dir = Path(code_dir)
    if not code_dir.is_dir():
        raise FileNotFoundError(f"code directory {code_dir} does not exist")
    dest = Path(dest_tar_gz)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest_real = dest.resolve()

    paths = []
    for root, dirs, files in os.walk(code_dir):
        here = Path(root).relative_to(code_dir)
        dirs[:] = [d for d in dirs if packed((here / d).as_posix())]
        for name in files:
            path = Path(root, name)
            if packed((here / name).as_posix()) and path.resolve() != dest_real:
                paths.append(path)
    paths.sort(key=lambda path: path.relative_to(code_dir).as_posix())

    members = []
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in paths:
            arcname = path.relative_to(code_dir).as_posix()
            info = tarfile.TarInfo(arcname)
            data = path.read_bytes()  # follows symbolic links
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
            members.append(arcname)
    with open(dest, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())
    return members


def unique_name(base):
    """<base>-<UTC time to the millisecond>, within SageMaker's 63 letters, digits and hyphens."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")
    return f"{base[: 62 - len(stamp)]}-{stamp}"


def job_name(project, kind):
    """The name of a job, local or remote: <project>-<kind>-<UTC time>, e.g.
    myproject-training-20250101-120000-000 (project: its name, PROJECT in the Makefile)."""
    return unique_name(f"{project}-{kind}")


def write_json(path, value):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def training_resource_config(hosts, current_host, instance_type="local"):
    """resourceconfig.json of a training container (a homogeneous cluster)."""
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": sorted(hosts),
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": sorted(hosts),
            }
        ],
        "network_interface_name": "eth0",
    }


def input_data_config(channels, distribution=None):
    """inputdataconfig.json: File mode for each channel name, FullyReplicated unless distribution
    (channel -> S3DataDistributionType) says otherwise."""
    distribution = distribution or {}
    return {
        name: {
            "TrainingInputMode": "File",
            "S3DistributionType": distribution.get(name, REPLICATED),
            "RecordWrapperType": "None",
        }
        for name in sorted(channels)
    }


REPLICATED, SHARDED = "FullyReplicated", "ShardedByS3Key"


def hosts_of(count):
    """The hosts of a job of count instances, as SageMaker names them: algo-1 .. algo-<count>."""
    return [f"algo-{i}" for i in range(1, count + 1)]


def shard(folder, hosts):
    """ShardedByS3Key, emulated: host -> the files of folder (relative paths) it gets.

    Each file is an S3 object; SageMaker gives each instance about 1/N of the objects and does not
    document which. Here the objects are taken in key order (the relative paths, sorted as S3 lists
    keys) and dealt round-robin: the i-th (from 0) goes to hosts[i % N]. A host may get none.
    """
    folder = Path(folder)
    keys = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    return {host: keys[rank :: len(hosts)] for rank, host in enumerate(hosts)}


def copy_files(source, dest, keys):
    """Copy the files keys (relative paths) of source into dest, keeping their paths (a hard link
    where the file system allows): one host's share of a sharded input."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    for key in keys:
        target = Path(dest) / key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(Path(source) / key, target)
        except OSError:
            shutil.copy2(Path(source) / key, target)


def processing_resource_config(hosts, current_host):
    """/opt/ml/config/resourceconfig.json of a processing container."""
    return {"current_host": current_host, "hosts": sorted(hosts)}


def processing_job_config(
    *,
    job_name,
    image,
    entrypoint,
    inputs,
    outputs,
    instance_count=1,
    instance_type="local",
    environment=None,
    region="us-east-1",
    account="000000000000",
    role_arn=None,
):
    """/opt/ml/config/processingjobconfig.json: the job as DescribeProcessingJob describes it.

    inputs / outputs map a name to (source URI, container path), e.g.
    {"code": ("file:///home/me/project/code", "/opt/ml/processing/input/code")}; an input may add
    its S3DataDistributionType as a third item (default FullyReplicated).
    """
    return {
        "ProcessingJobArn": f"arn:aws:sagemaker:{region}:{account}:processing-job/{job_name}",
        "ProcessingJobName": job_name,
        "ProcessingInputs": [
            {
                "InputName": name,
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": local_path,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": (rest or [REPLICATED])[0],
                    "S3CompressionType": "None",
                },
            }
            for name, (uri, local_path, *rest) in inputs.items()
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": name,
                    "AppManaged": False,
                    "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
                }
                for name, (uri, local_path) in outputs.items()
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": 30,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": list(entrypoint)},
        "Environment": dict(environment or {}),
        "RoleArn": role_arn or f"arn:aws:iam::{account}:role/SageMakerExecutionRole",
    }
