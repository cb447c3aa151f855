"""Container tests of `docker run TRAINING_IMAGE train`: what needs the real image (baked code, the
signal path through run.sh, S3 from inside the container). The R logic is covered on the host in
test_training_units.py."""

import json
import os
import re
import shutil
import time

import pytest

from contract.training_support import (
    PROJECT_ROOT,
    S3_CREDENTIALS,
    OptMl,
    encode_script_mode,
    make_tarball,
    run_s3_server,
    symlink_chain,
    upload,
)

# A long training loop that saves a partial model when interrupted (SIGTERM reaches R as an
# interrupt) and a checkpoint from on.exit.
LONG_PROGRAM = """
train_loop <- function() {
  on.exit(writeLines(sprintf("epoch %d", epoch), file.path(Sys.getenv("SM_CHECKPOINT_DIR"), "checkpoint.txt")))
  epoch <- 0
  cat("training started\\n")
  tryCatch(
    repeat {
      epoch <- epoch + 1
      Sys.sleep(0.2)
    },
    interrupt = function(e) {
      cat("interrupted: saving the partial model\\n")
      Sys.sleep(1) # saving takes a moment; the container must wait for it
      writeLines(sprintf("partial after %d epochs", epoch), file.path(Sys.getenv("SM_MODEL_DIR"), "partial.txt"))
    }
  )
}
train_loop()
"""


def opt_ml_mounts(opt_ml, parts=("input", "model", "output", "checkpoints")):
    """Mount /opt/ml/<part> one by one, as SageMaker does: /opt/ml/code stays the image's."""
    mounts = {}
    for part in parts:
        opt_ml.path(part).mkdir(parents=True, exist_ok=True)
        mounts[str(opt_ml.path(part))] = {"bind": f"/opt/ml/{part}", "mode": "rw"}
    return mounts


def run_container(docker_client, image, opt_ml, **options):
    """`docker run IMAGE train`, detached, with the job's /opt/ml mounted."""
    return docker_client.containers.run(
        image, ["train"], detach=True, volumes=opt_ml_mounts(opt_ml), **options
    )


def finish(container, timeout=300):
    try:
        status = container.wait(timeout=timeout)["StatusCode"]
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    return status, logs


def test_no_argument_prints_usage_and_exits_2(docker_client, training_image):
    container = docker_client.containers.run(training_image, [], detach=True)
    status, logs = finish(container, timeout=60)
    assert status == 2
    assert "usage: run.sh train | serve" in logs


def test_no_argument_trains_when_a_training_job_is_configured(docker_client, training_image, tmp_path):
    """The SageMaker SDK v3's local mode starts the container with no argument: it still trains."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    shutil.copytree(PROJECT_ROOT / "data" / "train", opt_ml.path("input", "data", "train"))
    opt_ml.channels({"train": {"TrainingInputMode": "File"}}, create=False)
    opt_ml.hosts("algo-1", ["algo-1"])
    container = docker_client.containers.run(training_image, [], detach=True, volumes=opt_ml_mounts(opt_ml))
    status, logs = finish(container)
    assert status == 0, logs
    assert opt_ml.path("model", "model.rds").exists()
    assert opt_ml.path("model", "code", "deploy.R").exists()


def test_the_code_channel_folder_is_the_training_code(docker_client, training_image, tmp_path):
    """SDK v3's SourceCode(source_dir=...) arrives as the folder /opt/ml/input/data/code: it is the code."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    code = opt_ml.path("input", "data", "code")
    code.mkdir(parents=True)
    (code / "train.R").write_text(
        'writeLines("from the code channel", file.path(Sys.getenv("SM_MODEL_DIR"), "x.txt"))\n'
    )
    (code / "deploy.R").write_text((PROJECT_ROOT / "code" / "deploy.R").read_text())
    opt_ml.channels({"code": {"TrainingInputMode": "File"}}, create=False)
    status, logs = finish(run_container(docker_client, training_image, opt_ml))
    assert status == 0, logs
    assert opt_ml.path("model", "x.txt").read_text().strip() == "from the code channel"
    assert sorted(os.listdir(opt_ml.path("model", "code"))) == ["deploy.R", "train.R"]


def test_training_with_the_baked_code(docker_client, training_image, tmp_path):
    """The default job: the image's code/train.R on the project's iris data, as SageMaker runs it."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    shutil.copytree(PROJECT_ROOT / "data" / "train", opt_ml.path("input", "data", "train"))
    opt_ml.channels({"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}}, create=False)
    opt_ml.hyperparameters(encode_script_mode({"maxdepth": 4, "cp": 0.02}))
    opt_ml.hosts("algo-1", ["algo-1"])
    status, logs = finish(run_container(docker_client, training_image, opt_ml))
    assert status == 0, logs
    assert "train_accuracy=" in logs and "Training complete" in logs
    assert sorted(os.listdir(opt_ml.path("model"))) == [
        "baseline.json",
        "code",
        "input-prototype.json",
        "model.rds",
        "rsagemaker-versions.json",
    ]
    # The monitoring baseline (code/baseline.R, sourced from the code folder SageMaker runs train.R in).
    baseline = json.loads(opt_ml.path("model", "baseline.json").read_text())
    assert set(baseline["features"]) == {"Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"}
    assert "Monitoring baseline saved to" in logs
    # The versions kept with the model: this image's R and packages, and the base it was built on.
    kept = json.loads(opt_ml.path("model", "rsagemaker-versions.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", kept["r"]) and "Versions kept with the model" in logs
    assert {"jsonlite", "data.table", "rpart"} <= set(kept["packages"]) and kept["base_image"]
    code = set(os.listdir(opt_ml.path("model", "code")))
    assert {"baseline.R", "deploy.R", "train.R"} <= code and not any(
        n.endswith((".tar.gz", ".csv")) for n in code
    )
    assert opt_ml.path("checkpoints", "checkpoint.rds").exists()
    assert not opt_ml.path("output", "failure").exists()


def test_sigterm_stops_training_within_seconds_keeping_the_partial_model(
    docker_client, training_image, tmp_path
):
    opt_ml = OptMl(tmp_path / "opt_ml")
    source = tmp_path / "src"
    source.mkdir()
    (source / "long.R").write_text(LONG_PROGRAM)
    opt_ml.hyperparameters(
        encode_script_mode({"sagemaker_program": "long.R", "sagemaker_submit_directory": "/opt/ml/code"})
    )
    volumes = opt_ml_mounts(opt_ml)
    volumes[str(source)] = {"bind": "/opt/ml/code", "mode": "rw"}  # SDK local mode: the code mounted in place
    container = docker_client.containers.run(training_image, ["train"], detach=True, volumes=volumes)
    try:
        deadline = time.monotonic() + 60
        while "training started" not in container.logs().decode(errors="replace"):
            assert time.monotonic() < deadline, container.logs().decode(errors="replace")
            time.sleep(0.2)
        time.sleep(1)
        started = time.monotonic()
        container.stop(timeout=30)  # SIGTERM, SIGKILL after 30 s
        elapsed = time.monotonic() - started
        container.reload()
        status = container.attrs["State"]["ExitCode"]
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert elapsed < 10, f"stopping took {elapsed:.1f} s: SIGTERM did not reach R\n{logs}"
    assert "interrupted: saving the partial model" in logs, logs
    assert opt_ml.path("model", "partial.txt").read_text().startswith("partial after")
    assert opt_ml.path("checkpoints", "checkpoint.txt").read_text().startswith("epoch")
    assert status == 143, logs
    assert opt_ml.path("output", "failure").read_text().startswith("Stopped: SIGTERM received")
    assert (opt_ml.path("model", "code") / "long.R").exists(), "the partial model keeps its code"


@pytest.fixture(scope="module")
def s3_server():
    yield from run_s3_server()


def test_code_from_s3_inside_the_container(docker_client, training_image, tmp_path, s3_server):
    """The image's boto3 fetches sourcedir.tar.gz from the loopback S3 server (host networking)."""
    program = (
        'writeLines(Sys.getenv("SM_HP_GREETING"), file.path(Sys.getenv("SM_MODEL_DIR"), "greeting.txt"))\n'
    )
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", {"fit.R": program, "deploy.R": "# serving\n"})
    upload(s3_server, "container-bucket", "code/sourcedir.tar.gz", tarball)
    opt_ml = OptMl(tmp_path / "opt_ml")
    opt_ml.hyperparameters(
        encode_script_mode(
            {
                "sagemaker_program": "fit.R",
                "sagemaker_submit_directory": "s3://container-bucket/code/sourcedir.tar.gz",
                "greeting": "hello from s3",
            }
        )
    )
    environment = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": s3_server}
    container = run_container(
        docker_client, training_image, opt_ml, network_mode="host", environment=environment
    )
    status, logs = finish(container)
    assert status == 0, logs
    assert opt_ml.path("model", "greeting.txt").read_text().strip() == "hello from s3"
    assert sorted(os.listdir(opt_ml.path("model", "code"))) == ["deploy.R", "fit.R"]

    # A missing object: the failure file names it.
    opt_ml = OptMl(tmp_path / "opt_ml_missing")
    opt_ml.hyperparameters(
        encode_script_mode(
            {
                "sagemaker_program": "fit.R",
                "sagemaker_submit_directory": "s3://container-bucket/nope/sourcedir.tar.gz",
            }
        )
    )
    status, logs = finish(
        run_container(docker_client, training_image, opt_ml, network_mode="host", environment=environment)
    )
    assert status != 0
    failure = opt_ml.path("output", "failure").read_text()
    assert (
        failure.startswith("CodeFetchError:")
        and "s3://container-bucket/nope/sourcedir.tar.gz does not exist" in failure
    )


def test_error_in_user_code_in_the_container(docker_client, training_image, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    # A network-isolated job: the code arrives as the `code` channel.
    opt_ml.channels({"code": {"TrainingInputMode": "File"}})
    make_tarball(
        opt_ml.path("input", "data", "code", "sourcedir.tar.gz"), {"bad.R": 'stop("the data has no rows")\n'}
    )
    opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "bad.R"}))
    status, logs = finish(run_container(docker_client, training_image, opt_ml))
    assert status == 1, logs
    failure = opt_ml.path("output", "failure").read_text()
    assert (
        failure.startswith("ExecuteUserScriptError: bad.R exited with status 1")
        and "the data has no rows" in failure
    )


def test_the_project_rprofile_runs_and_dotfiles_stay_out_of_the_model(
    docker_client, training_image, tmp_path
):
    """In the image, as SageMaker runs it: the code folder's .Rprofile (renv's activation) runs
    before the program, the program's error still reaches the failure file, and the model's code
    leaves out .Renviron and .env but keeps .Rprofile and renv/."""
    program = (
        'model_dir <- Sys.getenv("SM_MODEL_DIR")\n'
        'writeLines(getOption("project.setting", "unset"), file.path(model_dir, "setting.txt"))\n'
        'if (!nzchar(Sys.getenv("FAIL"))) quit(status = 0)\n'
        'stop("failed after the profile ran")\n'
    )
    files = {
        "fit.R": program,
        "deploy.R": "predict_fn <- function(data, model) data\n",
        ".Rprofile": 'options(project.setting = "from .Rprofile")\nsource("renv/activate.R")\n',
        "renv/activate.R": 'file.create(file.path(Sys.getenv("SM_MODEL_DIR"), "renv-activated"))\n',
        ".Renviron": "DB_PASSWORD=secret\n",
        ".env": "TOKEN=secret\n",
    }
    for fail in ("", "1"):
        opt_ml = OptMl(tmp_path / f"opt_ml{fail}")
        opt_ml.channels({"code": {"TrainingInputMode": "File"}})
        make_tarball(opt_ml.path("input", "data", "code", "sourcedir.tar.gz"), files)
        opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "fit.R"}))
        status, logs = finish(
            run_container(docker_client, training_image, opt_ml, environment={"FAIL": fail})
        )
        assert opt_ml.path("model", "renv-activated").exists(), logs
        assert opt_ml.path("model", "setting.txt").read_text().strip() == "from .Rprofile"
        if fail:
            assert status == 1, logs
            failure = opt_ml.path("output", "failure").read_text()
            assert failure.startswith("ExecuteUserScriptError: fit.R exited with status 1"), failure
            assert "failed after the profile ran" in failure
        else:
            assert status == 0, logs
            code = opt_ml.path("model", "code")
            assert sorted(os.listdir(code)) == [".Rprofile", "deploy.R", "fit.R", "renv"]


def test_symlink_chain_cannot_write_outside_the_code_folder(docker_client, training_image, tmp_path):
    """The attack reproduced on the bookworm base (Python 3.11.2, no tarfile filters): links whose
    targets each stay inside as text climb out of the code folder when created through each other.
    Here they aim at /opt/ml/output, mounted from the host so that a write would show."""
    chain, refused = symlink_chain(2, "output/evil.R")
    opt_ml = OptMl(tmp_path / "opt_ml")
    opt_ml.channels({"code": {"TrainingInputMode": "File"}})
    make_tarball(opt_ml.path("input", "data", "code", "sourcedir.tar.gz"), {"fit.R": 'cat("ran")\n'}, chain)
    opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "fit.R"}))
    status, logs = finish(run_container(docker_client, training_image, opt_ml))
    assert status == 1, logs
    failure = opt_ml.path("output", "failure").read_text()
    assert failure.startswith("CodeFetchError:") and f"unsafe member {refused!r}" in failure, failure
    assert not opt_ml.path("output", "evil.R").exists()
