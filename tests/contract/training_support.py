"""Helpers of the training tests: an /opt/ml tree as SageMaker writes it, tarballs, and runs of the
R entry point on the host (Rscript against a temporary root, through SAGEMAKER_BASE_DIR)."""

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import free_port

from contract.common import PROJECT_ROOT

TRAINING_IMAGE_DIR = PROJECT_ROOT / "images" / "training"
FETCH_CODE = Path(__file__).resolve().parents[2] / "rsagemaker" / "inst" / "fetch_code.py"
ENTRYPOINT = TRAINING_IMAGE_DIR / "entrypoint.R"

# A user program written for the toolkit's conventions: a shebang, arguments from the command
# line, settings from SM_*. It records what it was given.
DUMP_PROGRAM = """#!/usr/bin/env Rscript
record <- list(args = commandArgs(trailingOnly = TRUE), env = as.list(Sys.getenv()), cwd = getwd())
writeLines(jsonlite::toJSON(record, auto_unbox = TRUE), file.path(Sys.getenv("SM_OUTPUT_DATA_DIR"), "dump.json"))
writeLines("model", file.path(Sys.getenv("SM_MODEL_DIR"), "model.txt"))
"""


def encode_script_mode(values):
    """hyperparameters.json as the SageMaker SDK writes it in script mode: each value JSON-encoded."""
    return {key: json.dumps(value) for key, value in values.items()}


class OptMl:
    """A temporary /opt/ml: config files, channels, code; paths as SageMaker lays them out."""

    def __init__(self, root):
        self.root = Path(root)
        for sub in ("input/config", "input/data", "model", "output", "code"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def path(self, *parts):
        return self.root.joinpath(*parts)

    def write_config(self, name, content):
        text = content if isinstance(content, str) else json.dumps(content)
        self.path("input", "config", name).write_text(text)

    def hyperparameters(self, values):
        self.write_config("hyperparameters.json", values)

    def channels(self, configs, create=True):
        self.write_config("inputdataconfig.json", configs)
        if create:
            for name in configs:
                self.path("input", "data", name).mkdir(parents=True, exist_ok=True)

    def hosts(self, current_host, hosts, **extra):
        self.write_config("resourceconfig.json", {"current_host": current_host, "hosts": hosts, **extra})

    def failure(self):
        path = self.path("output", "failure")
        return path.read_text() if path.exists() else None

    def dump(self):
        return json.loads(self.path("output", "data", "dump.json").read_text())


def make_tarball(path, files, extra_members=()):
    """A sourcedir.tar.gz holding `files` ({name: text}) and raw TarInfo members (for unsafe cases)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith((".R", ".sh")) else 0o644
            archive.addfile(info, io.BytesIO(data))
        for member in extra_members:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def tar_member(name, kind=tarfile.REGTYPE, linkname="", size=1):
    """A raw TarInfo (for make_tarball's extra_members): any type, any name, any link target."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = size if kind == tarfile.REGTYPE else 0
    return info


def symlink_chain(levels_up, target):
    """Members that climb `levels_up` folders above the extraction folder and then write `target`.

    Each link points to '..' and is created through the previous one, so every link target stays
    inside the tree *as text* (a check of names and link texts passes them all), while the real
    path of each climbs one folder higher: the attack of the bookworm base, whose Python 3.11.2
    has no tarfile extraction filters. Returns (members, name of the first member refused)."""
    base = "a/b"
    links = []
    path = base
    for i in range(1, levels_up + 3):
        path = f"{path}/l{i}"
        links.append(tar_member(path, tarfile.SYMTYPE, ".."))
    return [*links, tar_member(f"{path}/{target}")], links[1].name


def host_env(opt_ml, **extra):
    """The environment of a host run: only what a container would have, plus the root override."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SM_", "SAGEMAKER_", "AWS_", "TRAINING_JOB")) and key != "R_PROFILE_USER"
    }
    env.update(
        SAGEMAKER_BASE_DIR=str(opt_ml.root),
        SAGEMAKER_PYTHON=sys.executable,  # has boto3: the image uses Debian's python3-boto3
        # As the renv images set it: code/.Rprofile's renv activation stays off (README, Reproducible R).
        RENV_CONFIG_AUTOLOADER_ENABLED="FALSE",
        RENV_CONFIG_USER_PROFILE="FALSE",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_train(rscript, opt_ml, timeout=120, **extra_env):
    """`entrypoint.R train` on the host against opt_ml; returns the CompletedProcess."""
    return subprocess.run(
        [rscript, str(ENTRYPOINT), "train"],
        env=host_env(opt_ml, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def toolkit_python():
    """A Python that can import sagemaker_training (the training toolkit), or None."""
    candidates = [sys.executable, os.environ.get("SAGEMAKER_TRAINING_TOOLKIT_PYTHON", "")]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import sagemaker_training"], capture_output=True, check=False)
        if probe.returncode == 0:
            return python
    return None


def toolkit_env_vars(python, opt_ml, **extra_env):
    """What sagemaker_training.environment.Environment().to_env_vars() gives for opt_ml.

    The toolkit reads SAGEMAKER_BASE_DIR when it is imported, so it runs in a fresh process."""
    code = (
        "import json\n"
        "from sagemaker_training import environment\n"
        "print(json.dumps(environment.Environment().to_env_vars()))\n"
    )
    done = subprocess.run(
        [python, "-c", code], env=host_env(opt_ml, **extra_env), capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- a loopback S3 API server (moto) ----------------------------------------------------------------------


def run_s3_server():
    """moto's S3 API on 127.0.0.1 (a generator for a fixture); yields the endpoint URL."""
    moto_server = Path(sys.executable).with_name("moto_server")
    if not moto_server.exists():
        pytest.fail(f"moto_server is not installed next to {sys.executable} (dev dependency moto[server])")
    port = free_port()
    process = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("moto_server did not start")
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


def upload(endpoint, bucket, key, path):
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(path), bucket, key)
