"""Fixtures of the template's suite: baking the template, the container engine, the base image.

Images are built on a stand-in base (Debian bookworm + r-base-core, made by scripts/standin-base.sh)
because no registry outside is reachable here; set R_SAGEMAKER_TEST_BASE to test on another base
(the GitHub workflow uses the real default base image).
"""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
STANDIN_BASE = "localhost/r-sagemaker-standin:bookworm"
STANDIN_BASE_ARM64 = "localhost/r-sagemaker-standin:bookworm-arm64"
# Image tag of the suite's builds; set R_SAGEMAKER_TEST_TAG to keep concurrent runs on one engine apart.
TEST_TAG = os.environ.get("R_SAGEMAKER_TEST_TAG", "test")


def unavailable(reason):
    """Skip on a laptop; fail in CI, where every test must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


def bake(output_dir, **extra_context):
    """Generate a project from the template without prompts; returns its folder."""
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=extra_context)
    )


def make(project, *targets, check=True, **variables):
    """Run make targets in a baked project with this suite's Python (no per-project venv)."""
    env = {**os.environ, "PYTHON": sys.executable, "TAG": TEST_TAG}
    command = ["make", "--no-print-directory", "-C", str(project), *targets]
    command += [f"{key}={value}" for key, value in variables.items()]
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def engine():
    """The Docker API (a real Docker engine, or podman's service started by scripts/engine.sh)."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure means "no engine"
        unavailable(f"no container engine reachable (run the suite through `make test`): {error}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(engine):
    """The base image the baked Dockerfiles are built on."""
    configured = os.environ.get("R_SAGEMAKER_TEST_BASE")
    if configured:
        return configured
    subprocess.run(["bash", str(TEMPLATE / "scripts" / "standin-base.sh"), STANDIN_BASE], check=True)
    return STANDIN_BASE


@pytest.fixture(scope="session")
def arm64_base_image(engine):
    """The base image of the arm64 (Graviton) builds, run under qemu on other machines. A configured
    R_SAGEMAKER_TEST_BASE is used as it is (the default bases are multi-architecture images)."""
    configured = os.environ.get("R_SAGEMAKER_TEST_BASE")
    if configured:
        return configured
    if platform.machine() not in ("aarch64", "arm64") and not shutil.which("qemu-aarch64-static"):
        unavailable(
            "arm64 images cannot run here without qemu "
            "(bash scripts/host-packages.sh installs qemu-user-static and binfmt-support)"
        )
    subprocess.run(
        ["bash", str(TEMPLATE / "scripts" / "standin-base.sh"), STANDIN_BASE_ARM64, "arm64"], check=True
    )
    return STANDIN_BASE_ARM64


@pytest.fixture(scope="session")
def default_project(tmp_path_factory):
    """The default bake, shared by the tests that only read or run it."""
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="session")
def built_project(default_project, base_image):
    """The default bake with its images built on base_image; yields (project, {image: ref})."""
    make(default_project, "build", BASE_IMAGE=base_image)
    listing = make(default_project, "images").stdout.split()
    images = dict(line.split("=", 1) for line in listing)
    return default_project, images
