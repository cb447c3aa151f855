"""Shared fixtures of the contract tests: the container engine and the images under test.

The images come from the environment (`make test` sets TRAINING_IMAGE and PROCESSING_IMAGE from
the Makefile); build them first with `make build`. Without a container engine the tests that need
one are skipped with the reason on a laptop, and fail under CI=true, where nothing may be skipped.
"""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import docker
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (the one helper of these tests for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unavailable(reason):
    """Skip on a laptop; fail in CI, where every test must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure means "no engine"
        unavailable(f"no container engine reachable through DOCKER_HOST: {error}")
    yield client
    client.close()


def _image(docker_client, variable):
    ref = os.environ.get(variable)
    if not ref:
        unavailable(f"{variable} is not set: run the tests through `make test`")
    try:
        docker_client.images.get(ref)
    except docker.errors.ImageNotFound:
        unavailable(f"{variable}={ref} is not built: run `make build` first")
    return ref


@pytest.fixture(scope="session")
def training_image(docker_client):
    return _image(docker_client, "TRAINING_IMAGE")


@pytest.fixture(scope="session")
def processing_image(docker_client):
    return _image(docker_client, "PROCESSING_IMAGE")


RSAGEMAKER_SOURCE = PROJECT_ROOT / "images" / "training" / "rsagemaker"


@pytest.fixture(scope="session")
def rscript(tmp_path_factory):
    """Rscript on the host, for the fast tests of the R plumbing against a temporary /opt/ml.

    The rsagemaker package is installed from images/training/rsagemaker into a library of this test
    session, and R_LIBS points every R process the tests start (and their children) at it."""
    path = shutil.which("Rscript")
    if not path:
        unavailable(
            "Rscript is not installed on this machine (apt-get install r-base-core r-cran-jsonlite r-cran-data.table)"
        )
    library = tmp_path_factory.mktemp("r-library")
    install = subprocess.run(
        [
            str(Path(path).with_name("R")),
            "CMD",
            "INSTALL",
            "--no-docs",
            "--preclean",
            "--clean",  # no objects left in the source folder
            "-l",
            str(library),
            str(RSAGEMAKER_SOURCE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, f"R CMD INSTALL rsagemaker failed:\n{install.stdout}\n{install.stderr}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R_LIBS", str(library))
        yield path
