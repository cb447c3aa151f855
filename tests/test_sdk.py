"""The images driven by the SageMaker Python SDK's local modes, v3 and v2, each in its own venv.

The examples of the documentation's SDK page (docs/sdk.md) are the files of docs/examples/; each runs
once, whole and as it is written, in the default bake's folder, with the venv's python (the R one with
Rscript through reticulate), under tests/sdk_guard.py: every name
lookup or connection that would leave loopback is refused and reported, and each test asserts
there was none. AWS is a moto server on loopback (AWS_ENDPOINT_URL), credentials are dummies.
docker-compose 1.29 over podman can report a failed container as success, so the exit status of
every container the SDK started is read from the engine.
"""

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import requests
from conftest import TEMPLATE

pytestmark = pytest.mark.slow

GUARD = Path(__file__).with_name("sdk_guard.py")
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
BUCKET = "sdk-test-bucket"
EXAMPLES = TEMPLATE / "docs" / "examples"
# What the docs show for each SDK: v3 and v2 from Python, and v3 from R through reticulate.
EXAMPLE_FILES = {"v3": "sdk_v3.py", "v2": "sdk_v2.py", "r": "sdk_v3.R"}
# The largest the training image may grow over its base (python3-pip included).
TRAINING_IMAGE_BUDGET_MB = 190


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def example(kind):
    """The text of the docs' example file for kind (v3, v2 or r), as docs/sdk.md includes it."""
    return (EXAMPLES / EXAMPLE_FILES[kind]).read_text()


@pytest.fixture(scope="module")
def sdk_python():
    """The python of each SDK's venv (scripts/sdk-venv.sh; SDK_VENV_DIR reuses built ones)."""

    def python(major):
        result = subprocess.run(
            ["bash", str(TEMPLATE / "scripts/sdk-venv.sh"), major],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    return {"v2": python("v2"), "v3": python("v3")}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = free_port()
    with open(tmp_path_factory.mktemp("sdk-moto") / "moto.log", "w") as log:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/moto-api/data.json", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "moto_server did not start"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def sdk_env(moto, tmp_path, built_project):
    """The environment of an example: dummy credentials, moto for every AWS endpoint, telemetry off."""
    _, images = built_project
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    keep = ("PATH", "DOCKER_HOST", "DOCKER_BUILDKIT", "CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "LANG")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        HOME=str(home),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto,
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(config),
        SAGEMAKER_BUCKET=BUCKET,
        TRAINING_IMAGE=images["training"],
        PROCESSING_IMAGE=images["processing"],
        PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    requests.post(f"{moto}/moto-api/reset", timeout=10).raise_for_status()
    return env


def compose_containers(engine, images):
    """The containers the SDK's local modes started from these images (docker-compose labels them)."""
    image_ids = {engine.images.get(image).id for image in images}
    # By label, then image ID: podman's Docker API ignores the "ancestor" filter here.
    return {
        container.id: container
        for container in engine.containers.list(all=True, filters={"label": "com.docker.compose.project"})
        if container.attrs["Image"] in image_ids
    }


def run_guarded(python, script_text, workdir, env, tmp_path, engine, images, name="example", timeout=900):
    """Run script_text under sdk_guard.py; returns (report, process result, {id: container} it started)."""
    script = tmp_path / f"{name}.py"
    script.write_text(script_text)
    report_path = tmp_path / f"{name}-report.json"
    before = set(compose_containers(engine, images))
    result = subprocess.run(
        [python, str(GUARD), str(report_path), str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    started = {cid: c for cid, c in compose_containers(engine, images).items() if cid not in before}
    report = json.loads(report_path.read_text())
    (tmp_path / f"{name}.log").write_text(result.stdout + result.stderr)
    return report, result, started


def assert_stayed_on_loopback(report):
    assert report["refused"] == [], f"the SDK tried to leave loopback: {report['refused']}"


def exit_codes(containers):
    codes = {}
    for container in containers.values():
        container.reload()
        codes[container.name] = container.attrs["State"]["ExitCode"]
    return codes


def remove(containers):
    import docker.errors

    for container in containers.values():
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def batch_rows(batch_file):
    """The rows the example wrote for batch transform (features only, no header)."""
    rows = batch_file.read_text().splitlines()
    assert len(rows) >= 10 and all(row.count(",") == 3 for row in rows), rows[:3]
    return rows


def served_predictions(engine, image, model_tar, rows, tmp_path):
    """The endpoint's answers for rows: the image's `serve` on the unpacked model, one CSV request."""
    model_dir = tmp_path / "served-model"
    model_dir.mkdir()
    with tarfile.open(model_tar) as archive:
        archive.extractall(model_dir, filter="data")
    container = engine.containers.run(
        image,
        ["serve"],
        detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
        volumes={str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.2)
        answer = requests.post(
            f"{url}/invocations",
            data="\n".join(rows) + "\n",
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return answer.text.splitlines()
    finally:
        container.remove(force=True)


def assert_transform_output(path, expected):
    """One output line per input line, in order, the endpoint's answers (AssembleWith=Line)."""
    text = path.read_text()
    assert text.endswith("\n")
    assert text[:-1].split("\n") == expected


def assert_processing_outputs(project, output_dir):
    """Every CSV preprocess.R wrote has the input's header and only rows of the input."""
    with open(project / "data/train/iris.csv") as source:
        reader = csv.reader(source)
        header = next(reader)
        input_rows = {tuple(normalise(row)) for row in reader}
    files = sorted(output_dir.rglob("*.csv"))
    assert files, f"preprocess.R wrote no CSV under {output_dir}"
    total = 0
    for path in files:
        rows = list(csv.reader(io.StringIO(path.read_text())))
        assert rows[0] == header, path
        assert rows[1:], f"{path} holds no row"
        for row in rows[1:]:
            assert tuple(normalise(row)) in input_rows, f"{path}: {row} is not a row of the input"
        total += len(rows) - 1
    assert total <= len(input_rows) * 1.01 + 1


def normalise(row):
    values = []
    for value in row:
        try:
            values.append(float(value))
        except ValueError:
            values.append(value)
    return values


def image_sizes_over_base(engine, base_image, image):
    return (engine.images.get(image).attrs["Size"] - engine.images.get(base_image).attrs["Size"]) / 1e6


GUARD_CHECK = """
import socket, urllib.request
try:
    socket.getaddrinfo("sts.us-east-1.amazonaws.com", 443)
    leaked = True
except OSError:
    leaked = False
status = urllib.request.urlopen(MOTO + "/moto-api/data.json").status
"""


def test_the_guard_records_loopback_and_refuses_the_rest(
    engine, built_project, sdk_python, sdk_env, tmp_path
):
    """The check the SDK tests rely on: an AWS host is refused, loopback goes through."""
    project, _ = built_project
    script = f"MOTO = {sdk_env['AWS_ENDPOINT_URL']!r}\n" + GUARD_CHECK
    report, result, _ = run_guarded(sdk_python["v3"], script, project, sdk_env, tmp_path, engine, [], "guard")
    assert result.returncode == 0, result.stderr
    assert report["outputs"]["leaked"] is False
    assert report["outputs"]["status"] == 200
    assert report["refused"] == [{"lookup": "sts.us-east-1.amazonaws.com"}]
    port = sdk_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]
    assert {"connect": f"127.0.0.1:{port}"} in report["accesses"]


# --- the docs' examples (docs/examples/) -----------------------------------------------------------


def test_v3_example_trains_deploys_predicts_transforms_processes(
    built_project, engine, sdk_python, sdk_env, tmp_path
):
    project, images = built_project
    shutil.rmtree(project / "build/sdk-v3", ignore_errors=True)
    script = example("v3")
    started_at = time.monotonic()
    report, result, containers = run_guarded(
        sdk_python["v3"], script, project, sdk_env, tmp_path, engine, images.values(), "v3"
    )
    try:
        print(f"v3 example: {time.monotonic() - started_at:.0f} s")
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
        assert_stayed_on_loopback(report)
        # ScriptProcessor's upload went to moto: the guard saw it.
        assert any(access.get("connect", "").startswith("127.0.0.1") for access in report["accesses"])
        codes = exit_codes(containers)
        assert len(codes) >= 4, codes  # training, endpoint, transform, processing
        assert set(codes.values()) == {0}, codes

        model_tar = project / "build/sdk-v3/compressed_artifacts/model.tar.gz"
        with tarfile.open(model_tar) as archive:
            names = set(archive.getnames())
        assert {"model.rds", "code/deploy.R", "code/train.R"} <= names, names
        assert report["outputs"]["predictions"] == ["setosa", "virginica"]

        rows = batch_rows(project / "build/sdk-v3/batch/rows.csv")
        expected = served_predictions(engine, images["training"], model_tar, rows, tmp_path)
        assert len(expected) == len(rows) and len(set(expected)) == 3, expected
        assert_transform_output(project / "build/sdk-v3/transform/rows.csv.out", expected)
        batch_logs = [
            c.logs().decode(errors="replace")
            for c in containers.values()
            if "SAGEMAKER_BATCH=True" in c.attrs["Config"]["Env"]
        ]
        assert batch_logs and all("GET /execution-parameters" in logs for logs in batch_logs)

        assert_processing_outputs(project, project / "build/sdk-v3/processing")
    finally:
        remove(containers)


def test_v2_example_trains_deploys_predicts_transforms_processes(
    built_project, engine, sdk_python, sdk_env, tmp_path
):
    project, images = built_project
    shutil.rmtree(project / "build/sdk-v2", ignore_errors=True)
    script = example("v2")
    started_at = time.monotonic()
    report, result, containers = run_guarded(
        sdk_python["v2"], script, project, sdk_env, tmp_path, engine, images.values(), "v2"
    )
    try:
        print(f"v2 example: {time.monotonic() - started_at:.0f} s")
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
        assert_stayed_on_loopback(report)
        codes = exit_codes(containers)
        assert len(codes) >= 5, codes  # training, endpoint, 2 transforms, processing
        assert set(codes.values()) == {0}, codes

        # v2 local mode runs `docker run IMAGE train`: the image's own path, model and code together.
        model_tar = project / "build/sdk-v2/model.tar.gz"
        with tarfile.open(model_tar) as archive:
            assert {"model.rds", "code/deploy.R"} <= set(archive.getnames())
        assert report["outputs"]["predictions"] == [["setosa"], ["virginica"]]

        rows = batch_rows(project / "build/sdk-v2/batch/rows.csv")
        expected = served_predictions(engine, images["training"], model_tar, rows, tmp_path)
        assert len(expected) == len(rows) and len(set(expected)) == 3, expected
        for strategy in ("MultiRecord", "SingleRecord"):
            assert_transform_output(project / f"build/sdk-v2/transform-{strategy}/rows.csv.out", expected)
        batch = [c for c in containers.values() if "SAGEMAKER_BATCH=True" in c.attrs["Config"]["Env"]]
        strategies = set()
        for container in batch:
            env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
            strategies.add(env.get("SAGEMAKER_BATCH_STRATEGY"))
            assert "GET /execution-parameters" in container.logs().decode(errors="replace")
        assert strategies == {"MULTI_RECORD", "SINGLE_RECORD"}, strategies

        assert_processing_outputs(project, project / "build/sdk-v2/processing")
    finally:
        remove(containers)


def test_r_example_parses_and_makes_the_tested_v3_calls():
    """The reticulate example: valid R, and every SDK call and argument it makes is one the v3 example makes."""
    r_code = example("r")
    python = example("v3")
    parsed = subprocess.run(
        ["Rscript", "-e", "invisible(parse(text = readLines(file('stdin'))))"],
        input=r_code,
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    calls = set(re.findall(r"\$(\w+)\(", r_code))
    assert {
        "ModelTrainer",
        "SourceCode",
        "train",
        "create_model",
        "create_endpoint",
        "invoke_endpoint",
    } <= calls
    for call in calls - {"read", "decode"}:
        assert re.search(rf"\b{call}\(", python), f"R calls {call}() but the v3 example does not"
    # The arguments of the SDK calls (not of R's own dir.create() and the like).
    base_r = ("#", "library(", "use_virtualenv(", "dir.create(")
    sdk_lines = "\n".join(line for line in r_code.splitlines() if not line.lstrip().startswith(base_r))
    for argument in set(re.findall(r"\b([a-z_]+|[A-Z][A-Za-z]+) = ", sdk_lines)) - {"local"}:
        assert re.search(rf"\b{argument}\b", python), f"R passes {argument} = but the v3 example does not"
    for literal in (
        "exec /opt/sagemaker/run.sh train",
        "local_cpu",
        "build/sdk-v3",
        "r-endpoint",
        "text/csv",
    ):
        assert literal in r_code and literal in python


def test_r_example_runs_through_reticulate(built_project, engine, sdk_python, sdk_env, tmp_path):
    """The reticulate example as written (only its use_virtualenv() path swapped), the guard in its Python."""
    project, images = built_project
    r_code = example("r")
    venv = str(Path(sdk_python["v3"]).parent.parent)
    placeholder = 'use_virtualenv("~/.venvs/sagemaker")'
    assert placeholder in r_code
    script = tmp_path / "example.R"
    script.write_text(r_code.replace(placeholder, f"use_virtualenv({venv!r}, required = TRUE)") + "\n")
    script.write_text(script.read_text() + 'writeLines(predictions, "predictions.txt")\n')
    site = tmp_path / "site"
    site.mkdir()
    report_path = tmp_path / "r-report.json"
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(GUARD.parent)!r})\n"
        f"import sdk_guard\nsdk_guard.install_for_embedded({str(report_path)!r})\n"
    )
    workdir = tmp_path / "project"
    shutil.copytree(project, workdir, ignore=shutil.ignore_patterns("build", ".venv"))
    before = set(compose_containers(engine, [images["training"]]))
    result = subprocess.run(
        ["Rscript", str(script)],
        cwd=workdir,
        env=dict(sdk_env, PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    containers = {
        k: v for k, v in compose_containers(engine, [images["training"]]).items() if k not in before
    }
    try:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        report = json.loads(report_path.read_text())
        assert_stayed_on_loopback(report)
        assert report["accesses"], "the guard was not installed in reticulate's Python"
        assert (workdir / "predictions.txt").read_text().split() == ["setosa", "virginica"]
        assert len(containers) == 2 and set(exit_codes(containers).values()) == {0}  # training, endpoint
    finally:
        remove(containers)


# --- v3 training paths beyond the examples --------------------------------------------------------

TRAINER_SCRIPT = """
import os
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode
from sagemaker.train.model_trainer import Mode

options = {}
if os.environ.get("SOURCE_DIR"):
    options["source_code"] = SourceCode(source_dir=os.environ["SOURCE_DIR"], command=os.environ["COMMAND"])
trainer = ModelTrainer(
    training_image=os.environ["TRAINING_IMAGE"],
    training_mode=Mode.LOCAL_CONTAINER,
    compute=Compute(instance_type="local_cpu", instance_count=1),
    hyperparameters={"maxdepth": 3},
    local_container_root=os.environ["ROOT"],
    **options,
)
trainer.train(input_data_config=[InputData(channel_name="train", data_source=os.environ["DATA"])])
"""

FAILING_TRAIN = 'stop("the R error the failure file must hold")\n'
# Writes a marker, then waits; an interrupt (run.sh turns SIGTERM into SIGINT) saves a partial model.
STOPPABLE_TRAIN = """
model_dir <- Sys.getenv("SM_MODEL_DIR")
tryCatch({
  cat("waiting for SIGTERM\\n")
  for (i in 1:600) Sys.sleep(0.1)
}, interrupt = function(e) {
  writeLines("interrupted", file.path(model_dir, "partial.txt"))
  cat("saved a partial model\\n")
})
"""


def v3_training(project, tmp_path, sdk_env, train_r=None, command=None):
    """A ModelTrainer in LOCAL_CONTAINER: with SourceCode(source_dir, command) when train_r is given."""
    (tmp_path / "v3root").mkdir()
    env = dict(sdk_env, ROOT=str(tmp_path / "v3root"), DATA=str(project / "data/train"))
    if train_r is not None:
        code = tmp_path / "code"
        code.mkdir()
        (code / "train.R").write_text(train_r)
        (code / "deploy.R").write_text((project / "code/deploy.R").read_text())
        env.update(SOURCE_DIR=str(code), COMMAND=command)
    return env


def test_v3_handover_command_keeps_the_failure_reason(built_project, engine, sdk_python, sdk_env, tmp_path):
    project, images = built_project
    env = v3_training(project, tmp_path, sdk_env, FAILING_TRAIN, "exec /opt/sagemaker/run.sh train")
    report, _, containers = run_guarded(
        sdk_python["v3"], TRAINER_SCRIPT, project, env, tmp_path, engine, [images["training"]], "fail"
    )
    try:
        assert_stayed_on_loopback(report)
        codes = exit_codes(containers)
        assert list(codes.values()) == [1], codes  # what the SDK itself does not check
        failure = (tmp_path / "v3root/artifacts/output/failure").read_text()
        assert failure.startswith("ExecuteUserScriptError: train.R exited with status 1")
        assert "the R error the failure file must hold" in failure
    finally:
        remove(containers)


def test_v3_plain_rscript_command_loses_the_failure_reason(
    built_project, engine, sdk_python, sdk_env, tmp_path
):
    """What docs/sdk.md says of command="Rscript train.R": the driver's generic failure text, no R error."""
    project, images = built_project
    env = v3_training(project, tmp_path, sdk_env, FAILING_TRAIN, "Rscript train.R")
    report, _, containers = run_guarded(
        sdk_python["v3"], TRAINER_SCRIPT, project, env, tmp_path, engine, [images["training"]], "plain"
    )
    try:
        assert_stayed_on_loopback(report)
        codes = exit_codes(containers)
        assert len(codes) == 1 and 0 not in codes.values(), codes
        failure = (tmp_path / "v3root/artifacts/output/failure").read_text()
        assert failure.startswith("Training Execution failed")
        assert "the R error the failure file must hold" not in failure
    finally:
        remove(containers)


@contextlib.contextmanager
def training_waiting_for_sigterm(project, engine, images, sdk_python, sdk_env, tmp_path, command):
    """A v3 ModelTrainer job running STOPPABLE_TRAIN with command; yields (SDK process, its container)."""
    env = v3_training(project, tmp_path, sdk_env, STOPPABLE_TRAIN, command)
    script = tmp_path / "stop.py"
    script.write_text(TRAINER_SCRIPT)
    before = set(compose_containers(engine, [images["training"]]))
    process = subprocess.Popen(
        [sdk_python["v3"], str(GUARD), str(tmp_path / "stop-report.json"), str(script)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    containers = {}
    try:
        deadline = time.monotonic() + 180
        container = None
        while container is None or "waiting for SIGTERM" not in container.logs().decode(errors="replace"):
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()[0][-4000:]
            time.sleep(0.5)
            if container is None:
                current = compose_containers(engine, [images["training"]])
                containers.update({k: v for k, v in current.items() if k not in before})
                container = next(iter(containers.values()), None)
        yield process, container
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        remove(containers)


def test_v3_handover_command_turns_sigterm_into_an_r_interrupt(
    built_project, engine, sdk_python, sdk_env, tmp_path
):
    project, images = built_project
    command = "exec /opt/sagemaker/run.sh train"
    with training_waiting_for_sigterm(project, engine, images, sdk_python, sdk_env, tmp_path, command) as (
        process,
        container,
    ):
        stopped_at = time.monotonic()
        container.kill(signal="SIGTERM")  # what StopTrainingJob sends to the container's first process
        process.wait(timeout=120)
        assert time.monotonic() - stopped_at < 30
        report = json.loads((tmp_path / "stop-report.json").read_text())
        assert_stayed_on_loopback(report)
        assert exit_codes({container.id: container}) == {container.name: 143}
        artifacts = tmp_path / "v3root/artifacts"
        assert (artifacts / "model/partial.txt").read_text().strip() == "interrupted"
        assert (artifacts / "model/code/train.R").is_file()
        assert (artifacts / "output/failure").read_text().startswith("Stopped: SIGTERM received")


def test_v3_plain_rscript_command_does_not_stop_on_sigterm(
    built_project, engine, sdk_python, sdk_env, tmp_path
):
    """What docs/sdk.md says of command="Rscript train.R": the driver (first process) ignores SIGTERM."""
    project, images = built_project
    with training_waiting_for_sigterm(
        project, engine, images, sdk_python, sdk_env, tmp_path, "Rscript train.R"
    ) as (process, container):
        container.kill(signal="SIGTERM")
        time.sleep(10)
        container.reload()
        assert container.attrs["State"]["Running"], "the plain command stopped on SIGTERM: update docs/sdk.md"
        assert "saved a partial model" not in container.logs().decode(errors="replace")
        container.kill()  # SIGKILL, as SageMaker does 120 s later
        process.wait(timeout=120)


def test_v3_without_source_code_trains_with_no_argument(built_project, engine, sdk_python, sdk_env, tmp_path):
    """v3 local mode passes no `train`: the image trains because a job is configured under /opt/ml/input."""
    project, images = built_project
    env = v3_training(project, tmp_path, sdk_env)
    report, result, containers = run_guarded(
        sdk_python["v3"], TRAINER_SCRIPT, project, env, tmp_path, engine, [images["training"]], "noarg"
    )
    try:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        assert_stayed_on_loopback(report)
        (container,) = containers.values()
        assert container.attrs["Config"]["Cmd"] in (None, [])
        assert exit_codes(containers) == {container.name: 0}
        assert (tmp_path / "v3root/artifacts/model/model.rds").is_file()
        assert (tmp_path / "v3root/artifacts/model/code/deploy.R").is_file()
    finally:
        remove(containers)


def test_no_argument_and_no_job_prints_the_usage(built_project, engine):
    _, images = built_project
    container = engine.containers.run(images["training"], detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 2
        assert "usage: run.sh train | serve" in container.logs().decode()
    finally:
        container.remove(force=True)


MODEL_BUILDER_SCRIPT = """
import os
import boto3
from sagemaker.core.helper.session_helper import Session
from sagemaker.serve.mode.function_pointers import Mode
from sagemaker.serve.model_builder import ModelBuilder

outcomes = []
arguments = dict(image_uri=os.environ["TRAINING_IMAGE"], model_path=os.environ["MODEL_DIR"],
                 mode=Mode.LOCAL_CONTAINER, role_arn="arn:aws:iam::111111111111:role/local")
try:
    ModelBuilder(**arguments).build()
    outcomes.append("build: ok")
except Exception as error:
    outcomes.append(f"build: {type(error).__name__}: {error}")
# The nearest it gets: a default bucket given (no STS) and no IAM role check; then deploy().
os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
builder = ModelBuilder(**arguments, sagemaker_session=Session(boto_session=boto3.Session(), default_bucket="b-local"))
builder.build()
try:
    builder.deploy()
    outcomes.append("deploy: ok")
except Exception as error:
    outcomes.append(f"deploy: {type(error).__name__}: {error}")
"""


def test_v3_model_builder_pass_through_cannot_serve_a_byo_image_locally(
    built_project, engine, sdk_python, sdk_env, tmp_path
):
    """Documents SageMaker SDK 3.27: ModelBuilder(image_uri, model_path, LOCAL_CONTAINER) for this image.

    build() dials the public STS host (not AWS_ENDPOINT_URL; the guard refuses it), and even with a
    bucket given and the role check off, deploy() starts no container for an image whose model
    server it does not know. docs/sdk.md points to the sagemaker.core local session instead."""
    project, images = built_project
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copytree(project / "code", model_dir / "code")
    env = dict(sdk_env, MODEL_DIR=str(model_dir))
    report, result, containers = run_guarded(
        sdk_python["v3"],
        MODEL_BUILDER_SCRIPT,
        project,
        env,
        tmp_path,
        engine,
        [images["training"]],
        "builder",
    )
    try:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        assert report["refused"] == [{"lookup": "sts.us-east-1.amazonaws.com"}] * len(report["refused"])
        assert report["refused"], "build() no longer dials the public STS host: update docs/sdk.md"
        build, deploy = report["outputs"]["outcomes"]
        assert build.startswith("build: ") and "sts.us-east-1.amazonaws.com" in build, build
        assert deploy == "deploy: AttributeError: 'NoneType' object has no attribute 'logs'", deploy
    finally:
        remove(containers)


def test_training_image_stays_within_its_size_budget(built_project, base_image, engine):
    """pip (for the v3 driver) adds what it must: the training image stays <= 190 MB over its base."""
    _, images = built_project
    over = image_sizes_over_base(engine, base_image, images["training"])
    print(f"training image: {over:.1f} MB over {base_image}")
    assert over <= TRAINING_IMAGE_BUDGET_MB
    pip = engine.containers.run(images["training"], ["-c", "pip3 --version"], entrypoint="bash", remove=True)
    assert pip.decode().startswith("pip ")
