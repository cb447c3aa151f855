"""The processing image run as SageMaker runs it: ScriptProcessor's entrypoint, inputs and outputs
under /opt/ml/processing, the job's config files, several hosts, and the failure message file."""

import csv
import shutil
import signal
import subprocess
import sys
import time

import pytest
from rsagemaker_cli.core import opt_ml
from rsagemaker_cli.core.engine import bind

from contract.common import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "train" / "iris.csv"
PROCESSING = "/opt/ml/processing"
ENTRYPOINT = ["Rscript", f"{PROCESSING}/input/code/preprocess.R"]
JOB_NAME = "preprocess-test-job"


def read_rows(paths):
    """Data rows (header dropped) of CSV files, as comparable tuples: numbers as floats."""
    rows = []
    for path in paths:
        with open(path, newline="") as handle:
            header, *records = list(csv.reader(handle))
        rows += [tuple(float(v) for v in r[:-1]) + (r[-1],) for r in records]
    return header, rows


def split_sample(folder, parts):
    """Write the sample CSV as `parts` files of consecutive rows; return their rows in order."""
    with open(SAMPLE, newline="") as handle:
        header, *records = list(csv.reader(handle))
    folder.mkdir(parents=True)
    size = -(-len(records) // parts)
    for i in range(parts):
        with open(folder / f"part-{i + 1}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(records[i * size : (i + 1) * size])
    return [read_rows([folder / f"part-{i + 1}.csv"])[1] for i in range(parts)]


def run_processing(docker_client, image, work, input_dir, host="algo-1", hosts=("algo-1",)):
    """One processing container of a job, mounted as SageMaker mounts it. Returns (exit code, log,
    the host's output folder, the host's /opt/ml/output folder)."""
    host_dir = work / host
    output_dir = host_dir / "processing-output"
    job = opt_ml.processing_job_config(
        job_name=JOB_NAME,
        image=image,
        entrypoint=ENTRYPOINT,
        inputs={
            "code": ("s3://bucket/code", f"{PROCESSING}/input/code"),
            "data": ("s3://bucket/data", f"{PROCESSING}/input/data"),
        },
        outputs={
            name: (f"s3://bucket/{name}", f"{PROCESSING}/output/{name}") for name in ("train", "validation")
        },
        instance_count=len(hosts),
    )
    opt_ml.write_json(host_dir / "config" / "processingjobconfig.json", job)
    opt_ml.write_json(
        host_dir / "config" / "resourceconfig.json", opt_ml.processing_resource_config(hosts, host)
    )
    (host_dir / "output").mkdir()
    for name in ("train", "validation"):
        (output_dir / name).mkdir(parents=True)
    mounts = [
        bind(host_dir / "config", "/opt/ml/config", read_only=True),
        bind(host_dir / "output", "/opt/ml/output"),
        bind(PROJECT_ROOT / "code", f"{PROCESSING}/input/code", read_only=True),
        bind(input_dir, f"{PROCESSING}/input/data", read_only=True),
        bind(output_dir / "train", f"{PROCESSING}/output/train"),
        bind(output_dir / "validation", f"{PROCESSING}/output/validation"),
    ]
    container = docker_client.containers.run(
        image, entrypoint=ENTRYPOINT, command=[], hostname=host, mounts=mounts, detach=True
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
        log = container.logs().decode()
    finally:
        container.remove(force=True)
    return code, log, output_dir, host_dir / "output"


def test_entrypoint_is_exec_form_rscript(docker_client, processing_image):
    image = docker_client.images.get(processing_image)
    assert image.attrs["Config"]["Entrypoint"] == ["Rscript"]
    # Exec form: arguments go to Rscript itself, no shell in between.
    out = docker_client.containers.run(processing_image, command=["-e", "cat(6 * 7)"], remove=True)
    assert out.decode().strip() == "42"


def test_script_processor_run(docker_client, processing_image, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    shutil.copy(SAMPLE, input_dir / "iris.csv")
    with open(input_dir / "iris.csv", "a") as handle:
        handle.write('5.0,,1.4,0.2,"setosa"\n')  # an incomplete row: dropped

    code, log, output_dir, opt_output = run_processing(docker_client, processing_image, tmp_path, input_dir)

    assert code == 0, log
    assert f"Processing job {JOB_NAME}" in log  # read from processingjobconfig.json
    assert "Host algo-1 (1 of 1) takes 1 of 1 file(s)" in log  # from resourceconfig.json
    assert "Dropped 1 incomplete row(s)" in log
    train_header, train = read_rows([output_dir / "train" / "train-algo-1.csv"])
    _, validation = read_rows([output_dir / "validation" / "validation-algo-1.csv"])
    sample_header, sample = read_rows([SAMPLE])
    assert train_header == sample_header
    assert (len(train), len(validation)) == (120, 30)
    assert sorted(train + validation) == sorted(sample)
    assert not (opt_output / "message").exists()


def test_two_hosts_share_the_files(docker_client, processing_image, tmp_path):
    input_dir = tmp_path / "input"
    parts = split_sample(input_dir, 3)
    hosts = ("algo-1", "algo-2")
    results = {
        host: run_processing(docker_client, processing_image, tmp_path, input_dir, host, hosts)
        for host in hosts
    }

    for host, (code, log, _, _) in results.items():
        assert code == 0, log
    assert "Host algo-1 (1 of 2) takes 2 of 3 file(s)" in results["algo-1"][1]
    assert "Host algo-2 (2 of 2) takes 1 of 3 file(s)" in results["algo-2"][1]
    expected = {"algo-1": parts[0] + parts[2], "algo-2": parts[1]}
    for host in hosts:
        output_dir = results[host][2]
        _, rows = read_rows(
            [output_dir / "train" / f"train-{host}.csv", output_dir / "validation" / f"validation-{host}.csv"]
        )
        assert sorted(rows) == sorted(expected[host]), host


def test_failure_writes_message_and_exits_non_zero(docker_client, processing_image, tmp_path):
    empty = tmp_path / "empty-input"
    empty.mkdir()

    code, log, output_dir, opt_output = run_processing(docker_client, processing_image, tmp_path, empty)

    assert code != 0
    message = (opt_output / "message").read_text()
    assert message.startswith(f"ProcessingError: no .csv files under {PROCESSING}/input/data"), message
    assert len(message.encode()) <= 1024  # SageMaker keeps the first 1 KB as ExitMessage
    assert "Processing failed" in log
    assert not any((output_dir / "train").iterdir())


# --- Rscript as the job's main process: the wrapper (images/rscript.sh, first on PATH) -------------

# Runs until stopped; its on.exit saves a checkpoint, as a real job would save partial work.
LONG_SCRIPT = r"""
out <- "/opt/ml/processing/output/train"
main <- function() {
  on.exit(writeLines("saved by on.exit", file.path(out, "checkpoint.txt")))
  cat("job started\n")
  Sys.sleep(300)
}
main()
"""
STOP_BOUND_SECONDS = 10  # the grace period is 30 s: a stop that is not handled ends in SIGKILL (137)
SIGNAL_NUMBERS = {"SIGTERM": 15, "SIGINT": 2}
# (image fixture, path): the processing image's ENTRYPOINT and ScriptProcessor's ContainerEntrypoint.
JOB_PATHS = [("processing_image", "entrypoint"), ("processing_image", "script_processor")]
JOB_IMAGES = ["processing_image"]
# ScriptProcessor may run the job in the training image too (whose ENTRYPOINT is run.sh): same wrapper.
JOB_PATHS.append(("training_image", "script_processor"))
JOB_IMAGES.append("training_image")


def start_job(docker_client, image, work, script, path):
    """A processing container running `script` (R code) as code/job.R, detached, on one of the two
    paths SageMaker uses: the image's ENTRYPOINT ("entrypoint") or ScriptProcessor's
    ContainerEntrypoint ["Rscript", <script>] ("script_processor"). Returns (container, the host
    folders of /opt/ml/output and of the `train` output)."""
    code, output, train = work / "code", work / "output", work / "train"
    for folder in (code, output, train):
        folder.mkdir(parents=True)
    (code / "job.R").write_text(script)
    script_path = f"{PROCESSING}/input/code/job.R"
    command = {
        "entrypoint": {"command": [script_path]},
        "script_processor": {"entrypoint": ["Rscript", script_path], "command": []},
    }[path]
    mounts = [
        bind(code, f"{PROCESSING}/input/code", read_only=True),
        bind(output, "/opt/ml/output"),
        bind(train, f"{PROCESSING}/output/train"),
    ]
    container = docker_client.containers.run(image, mounts=mounts, detach=True, **command)
    return container, output, train


def wait_for_log(container, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in container.logs().decode(errors="replace"):
        container.reload()
        assert container.status == "running", container.logs().decode(errors="replace")
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout} s"
        time.sleep(0.1)


@pytest.mark.parametrize(("image_fixture", "path"), JOB_PATHS)
@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGINT"])
def test_a_stopped_job_ends_within_seconds_and_says_why(
    request, docker_client, tmp_path, image_fixture, path, stop_signal
):
    """`docker stop` sends SIGTERM; StopProcessingJob sends SIGINT. Either ends the job at once:
    R is interrupted (on.exit runs), the exit status is 128 + the signal, the reason is in the
    message file."""
    image = request.getfixturevalue(image_fixture)
    container, output, train = start_job(docker_client, image, tmp_path, LONG_SCRIPT, path)
    try:
        wait_for_log(container, "job started")
        started = time.monotonic()
        if stop_signal == "SIGTERM":
            container.stop(timeout=30)  # docker stop: SIGTERM, SIGKILL after 30 s
            code = container.wait(timeout=60)["StatusCode"]
        else:
            container.kill(signal="SIGINT")
            code = container.wait(timeout=60)["StatusCode"]
        elapsed = time.monotonic() - started
        log = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)

    assert elapsed < STOP_BOUND_SECONDS, f"stopping took {elapsed:.1f} s\n{log}"
    assert code == 128 + SIGNAL_NUMBERS[stop_signal], log
    message = (output / "message").read_text()
    assert message.startswith(f"Stopped: {stop_signal} received; Rscript {PROCESSING}/input/code/job.R"), (
        message
    )
    assert message.count("\n") == 1 and len(message.encode()) <= 1024
    assert (train / "checkpoint.txt").read_text() == "saved by on.exit\n", log
    assert f"Rscript wrapper: {stop_signal}: interrupting R" in log


def run_container(docker_client, image, **options):
    """Run a container to its end; returns (exit code, stdout, stderr)."""
    return finish(docker_client.containers.run(image, detach=True, **options))


def finish(container):
    """Wait for a started container to end and remove it; returns (exit code, stdout, stderr)."""
    try:
        code = container.wait(timeout=120)["StatusCode"]
        stdout = container.logs(stdout=True, stderr=False).decode()
        stderr = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    return code, stdout, stderr


@pytest.mark.parametrize("image_fixture", JOB_IMAGES)
def test_the_wrapper_changes_nothing_else(request, docker_client, tmp_path, image_fixture):
    image = request.getfixturevalue(image_fixture)
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "echo.R").write_text(
        'cat("args:", commandArgs(trailingOnly = TRUE), sep = "|")\n'
        'message("to stderr")\n'
        'quit(save = "no", status = 3)\n'
    )
    mounts = [bind(code_dir, f"{PROCESSING}/input/code", read_only=True)]
    _, found, _ = run_container(docker_client, image, entrypoint=["bash", "-c", "type -ap Rscript"])
    wrapper, real = found.split()[:2]
    assert wrapper == "/opt/sagemaker/bin/Rscript", found  # first on PATH; the base's own is untouched
    script = [f"{PROCESSING}/input/code/echo.R", "a b", "--c", ""]

    through_wrapper = run_container(docker_client, image, entrypoint=["Rscript", *script], mounts=mounts)
    direct = run_container(docker_client, image, entrypoint=[real, *script], mounts=mounts)

    assert through_wrapper == direct == (3, "args:|a b|--c|", "to stderr\n")
    # Rscript -e, and stdin passed through (the here-string is the wrapper's stdin: exec keeps PID 1).
    expression = 'cat(toupper(readLines(file("stdin"))), sep = "\\n")'
    stdin_run = run_container(
        docker_client, image, entrypoint=["bash", "-c", f"exec Rscript -e '{expression}' <<<$'one\\ntwo'"]
    )
    assert stdin_run == (0, "ONE\nTWO\n", "")
    code, version, _ = run_container(docker_client, image, entrypoint=["Rscript", "--version"])
    assert code == 0 and version.startswith("Rscript (R) version"), version


FAILING_SCRIPT = r"""
out <- "/opt/ml/processing/output/train"
recovered <- tryCatch(stop("a handled error"), error = function(e) "recovered")
cat(recovered, "\n")
summarise <- function() {
  on.exit(writeLines("cleaned up", file.path(out, "cleanup.txt")))
  stop("the input has no rows")
}
summarise()
"""


def test_an_r_error_that_nothing_catches_goes_to_the_message_file(docker_client, processing_image, tmp_path):
    """A script that writes no message of its own still leaves its R error as ExitMessage; an error
    the script caught leaves none, and R's own handling (stderr, on.exit, status 1) is unchanged."""
    container, output, train = start_job(
        docker_client, processing_image, tmp_path, FAILING_SCRIPT, "script_processor"
    )
    code, stdout, stderr = finish(container)

    assert code == 1
    assert stdout == "recovered \n"
    assert "Error in summarise() : the input has no rows" in stderr and "Execution halted" in stderr
    assert (output / "message").read_text() == "Error in summarise(): the input has no rows\n"
    assert (train / "cleanup.txt").read_text() == "cleaned up\n"


def test_a_failure_without_an_r_error_still_leaves_a_message(docker_client, processing_image, tmp_path):
    container, output, _ = start_job(
        docker_client, processing_image, tmp_path, "quit(save = 'no', status = 4)\n", "entrypoint"
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
    finally:
        container.remove(force=True)
    assert code == 4
    assert (output / "message").read_text() == (
        f"Rscript {PROCESSING}/input/code/job.R failed with exit status 4 (see the job's log)\n"
    )


def test_ctrl_c_of_local_process_stops_the_job_as_docker_stop_would(processing_image, tmp_path):
    """local-process stops its container with SIGTERM (what `docker stop` sends), not SIGINT, so a
    local run shows what a stopped job does."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("build", ".venv", ".git", "__pycache__", ".*_cache")
    shutil.copytree(PROJECT_ROOT, project, ignore=ignore)
    (project / "slow-code").mkdir()
    (project / "slow-code" / "slow.R").write_text(LONG_SCRIPT)
    command = ["local-process", "--image", processing_image, "--code", "slow-code", "--script", "slow.R"]
    process = subprocess.Popen(
        [sys.executable, "-m", "rsagemaker_cli", *command],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:  # wait until the R code runs
            if "job started" in line:
                break
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert elapsed < STOP_BOUND_SECONDS, f"took {elapsed:.1f} s\n{output}"
    assert "stopping 1 container(s) with SIGTERM" in output
    message = project / "build" / "processing" / "hosts" / "algo-1" / "output" / "message"
    assert message.read_text().startswith("Stopped: SIGTERM received; Rscript"), output
    # The R code's on.exit ran: it wrote into the host's own output folder (a stopped job's outputs
    # are not gathered under build/processing/output, as a failed job's are not).
    checkpoint = (
        project / "build" / "processing" / "hosts" / "algo-1" / "outputs" / "train" / "checkpoint.txt"
    )
    assert checkpoint.read_text() == "saved by on.exit\n", output
