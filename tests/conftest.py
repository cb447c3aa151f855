"""Fixtures of the template's suite: baking the template, the container engine, the base image.

Images are built on a stand-in base (Debian bookworm + r-base-core, made by scripts/standin-base.sh)
because no registry outside is reachable here; set R_SAGEMAKER_TEST_BASE to test on another base
(the GitHub workflow uses the real default base image).
"""

import atexit
import functools
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
STANDIN_BASE = "localhost/r-sagemaker-standin:bookworm"
STANDIN_BASE_ARM64 = "localhost/r-sagemaker-standin:bookworm-arm64"
# The default bake's training image's apt packages (its Dockerfile and images/training/packages.txt).
ARM64_STANDIN_PACKAGES = [
    "nginx",
    "python3-boto3",
    "python3-pip",
    "r-cran-jsonlite",
    "r-cran-data.table",
    "r-cran-rpart",
]
# Image tag of the suite's builds; set R_SAGEMAKER_TEST_TAG to keep concurrent runs on one engine apart.
TEST_TAG = os.environ.get("R_SAGEMAKER_TEST_TAG", "test")
DOCKER_REGISTRY = Path("/usr/bin/docker-registry")
# What a copy of the template leaves out: environments (.venv, .venv-sdk: gigabytes), engine state,
# builds and caches. The tests that copy the template copy it with this.
NOT_TEMPLATE_FILES = shutil.ignore_patterns(
    ".venv*", ".engine", ".git", "build", "dist", "site", "__pycache__", ".*_cache", ".hypothesis"
)
REGISTRY = "127.0.0.1:5000"  # the address the engine trusts as insecure (scripts/engine.sh)


def unavailable(reason):
    """Skip on a laptop; fail in CI, where every test must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (the suite's one helper for it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@functools.cache
def dist():
    """The checkout's packages, built once per session (scripts/dist.sh) into dist/: every bake of
    the suite is made from this checkout, so its post-gen hook vendors these builds into the bake."""
    # scripts/test.sh builds them once for its two pytest processes (they would write dist/ at once).
    if os.environ.get("R_SAGEMAKER_DIST_BUILT") != "1":
        subprocess.run(["bash", str(TEMPLATE / "scripts" / "dist.sh")], check=True)
    return TEMPLATE / "dist"


def bake(output_dir, **extra_context):
    """Generate a project from the template without prompts; returns its folder."""
    dist()
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=extra_context)
    )


@functools.cache
def default_bake():
    """The default bake of this session (made at first use, removed at exit): the default_project
    fixture and the contract tests (tests/contract) read, build and run this one project."""
    folder = Path(tempfile.mkdtemp(prefix="r-sagemaker-default-"))
    atexit.register(shutil.rmtree, folder, True)
    return bake(folder)


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
    # The training image's Debian packages go into the stand-in's rootfs (debootstrap's emulated
    # second stage configures them once), so its build under qemu finds them installed.
    env = {**os.environ, "STANDIN_INCLUDE": ",".join(ARM64_STANDIN_PACKAGES)}
    subprocess.run(
        ["bash", str(TEMPLATE / "scripts" / "standin-base.sh"), STANDIN_BASE_ARM64, "arm64"],
        check=True,
        env=env,
    )
    return STANDIN_BASE_ARM64


@pytest.fixture(scope="session")
def default_project():
    """The default bake, shared by the tests that only read or run it."""
    return default_bake()


@pytest.fixture(scope="session")
def built_project(default_project, base_image):
    """The default bake with its images built on base_image; yields (project, {image: ref})."""
    make(default_project, "build", BASE_IMAGE=base_image)
    listing = make(default_project, "images").stdout.split()
    images = dict(line.split("=", 1) for line in listing)
    return default_project, images


@contextmanager
def serving(command, ready_url, log_path, env=None):
    """Start a loopback server, wait until ready_url answers 200, stop it at the end."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(ready_url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command[0]} did not come up on {ready_url}:\n{Path(log_path).read_text()}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def registry(tmp_path_factory, engine):
    """Debian's docker-registry on 127.0.0.1:5000, storage in a temporary folder, no auth.

    At the end the engine's tags for it (made by the pushes) are removed; the images stay."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5000)) == 0:
            pytest.fail("127.0.0.1:5000 is taken: the push tests need it for their registry")
    folder = tmp_path_factory.mktemp("registry")
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    with serving(
        [str(DOCKER_REGISTRY), "serve", str(config)], f"http://{REGISTRY}/v2/", folder / "registry.log"
    ):
        yield REGISTRY
    for image in engine.images.list():
        for tag in image.tags:
            if tag.startswith(f"{REGISTRY}/"):
                engine.images.remove(tag)
