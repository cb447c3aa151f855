"""Helpers shared by the serving tests: a trained sample model, model folders with a test deploy.R,
an R worker on the host, and a serving container on a free loopback port."""

import contextlib
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import requests
from conftest import free_port

from contract.common import PROJECT_ROOT

TRAINING_DIR = PROJECT_ROOT / "images" / "training"
SAMPLE_ROWS = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"  # a setosa and a virginica


def train_sample_model(rscript, model_dir):
    """Train code/train.R on data/train as SageMaker would (SM_* variables) into model_dir, and put
    the project's deploy.R into model_dir/code, as a training job does."""
    model_dir = Path(model_dir)
    (model_dir / "code").mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        SM_HPS="{}",
        SM_CHANNEL_TRAIN=str(PROJECT_ROOT / "data" / "train"),
        SM_MODEL_DIR=str(model_dir),
    )
    trained = subprocess.run(
        [rscript, "train.R"],
        cwd=PROJECT_ROOT / "code",  # where SageMaker's training runs the program: the code folder
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    assert trained.returncode == 0, f"code/train.R failed:\n{trained.stdout}\n{trained.stderr}"
    shutil.copy(PROJECT_ROOT / "code" / "deploy.R", model_dir / "code" / "deploy.R")
    return model_dir


def write_model(model_dir, deploy_source, with_code=True):
    """A model folder whose code/deploy.R is deploy_source (R code); with_code=False leaves out code/."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if with_code:
        (model_dir / "code").mkdir(exist_ok=True)
        (model_dir / "code" / "deploy.R").write_text(textwrap.dedent(deploy_source))
    return model_dir


def wait_for_ping(url, timeout=30, alive=lambda: True):
    """Poll GET /ping until it answers 200; fail if alive() turns false or the time runs out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server exited before /ping answered 200 (last answer: {last})")
        try:
            last = requests.get(f"{url}/ping", timeout=2)
            if last.status_code == 200:
                return
        except requests.ConnectionError as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"/ping did not answer 200 within {timeout} s (last answer: {last})")


@contextlib.contextmanager
def host_worker(rscript, base_dir, env=None):
    """One R serving worker on the host (`entrypoint.R serve --port N`), with SAGEMAKER_BASE_DIR as
    /opt/ml; yields its base URL. Its stderr is printed if it fails to come up."""
    port = free_port()
    full_env = dict(
        os.environ,
        SAGEMAKER_BASE_DIR=str(base_dir),
        **(env or {}),
    )
    process = subprocess.Popen(
        [rscript, str(TRAINING_DIR / "entrypoint.R"), "serve", "--port", str(port)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_ping(url, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError):
            process.kill()
            print(process.communicate()[0])
            raise
        yield url
    finally:
        process.kill()
        process.wait()


class Served:
    """A running serving container: its docker SDK object and base URL."""

    def __init__(self, container, url):
        self.container = container
        self.url = url

    def logs(self):
        return self.container.logs().decode(errors="replace")

    def exec(self, *command):
        result = self.container.exec_run(list(command))
        return result.exit_code, result.output.decode(errors="replace")

    def r_serving_processes(self):
        """{pid: parent pid} of the R serving processes (`.../exec/R ... entrypoint.R serve ...`), from
        /proc; the pattern's [R] keeps this shell itself out."""
        script = (
            "for f in /proc/[0-9]*/cmdline; do"
            " tr '\\0' ' ' <\"$f\" 2>/dev/null | grep -q '^[^ ]*exec/[R] .*entrypoint.R.* serve' &&"
            ' d=${f%/cmdline} && echo "${d#/proc/} $(awk \'/^PPid:/ {print $2}\' "$d/status")";'
            " done"
        )
        _, out = self.exec("sh", "-c", script)
        pairs = [line.split() for line in out.splitlines() if len(line.split()) == 2]
        return {int(pid): int(parent) for pid, parent in pairs}

    def master_pid(self):
        """The R master: the serving process that loaded the model and forks the workers."""
        processes = self.r_serving_processes()
        masters = [pid for pid, parent in processes.items() if parent not in processes]
        assert len(masters) == 1, processes
        return masters[0]

    def forks(self):
        """{pid: parent pid} of the R workers: the forks of the master (they share its command line)."""
        processes = self.r_serving_processes()
        return {pid: parent for pid, parent in processes.items() if parent in processes}

    def worker_pids(self):
        return set(self.forks())

    def wait_for_ready_workers(self, count, timeout=60):
        """/ping answers 200 once one worker has loaded the model; wait until `count` have (each
        writes worker-<i>.ready in run.sh's run directory), so that all of them take requests."""
        deadline = time.monotonic() + timeout
        while True:
            _, out = self.exec("sh", "-c", "ls /tmp/sagemaker-serve/worker-*.ready 2>/dev/null")
            if len(out.split()) >= count:
                return
            assert time.monotonic() < deadline, f"fewer than {count} workers ready: {out!r}"
            time.sleep(0.1)


@contextlib.contextmanager
def serving_container(
    docker_client, image, model_dir, env=None, port=8080, wait=True, mount_at="/opt/ml/model", **run_options
):
    """`docker run IMAGE serve` with model_dir mounted read-only at mount_at (a multi-model endpoint's
    models go to /opt/ml/models) and the port published on a free loopback port; waits for /ping 200
    unless wait=False."""
    host_port = free_port()
    container = docker_client.containers.run(
        image,
        ["serve"],
        detach=True,
        environment=env or {},
        volumes={str(model_dir): {"bind": mount_at, "mode": "ro"}},
        ports={f"{port}/tcp": ("127.0.0.1", host_port)},
        **run_options,
    )
    served = Served(container, f"http://127.0.0.1:{host_port}")
    try:
        if wait:

            def alive():
                container.reload()
                return container.status in ("created", "running")

            try:
                wait_for_ping(served.url, timeout=60, alive=alive)
            except (RuntimeError, TimeoutError):
                print(served.logs())
                raise
        yield served
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def is_json_error(response):
    """A 4xx/5xx answer with a JSON body {"error": "..."}."""
    if response.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"] != ""
