"""The local runs end to end through the command line, on a copy of this project, and the
helpers the remote jobs share: encode_hyperparameters and pack_sourcedir."""

import json
import subprocess
import sys
import tarfile

import pytest
from conftest import free_port
from rsagemaker_cli.core.engine import LABEL_PROJECT
from rsagemaker_cli.core.opt_ml import encode_hyperparameters, pack_sourcedir

from contract.common import cli, copy_project

# --- helpers shared with the remote jobs (no engine needed) -----------------------------------


def test_encode_hyperparameters_json_encodes_each_value_as_the_sdk_does():
    values = {"epochs": 10, "rate": 0.5, "name": "abc", "flag": True, "layers": [1, 2], "opts": {"a": None}}
    encoded = encode_hyperparameters(
        values, program="train.R", submit_directory="/opt/ml/input/data/code/sourcedir.tar.gz"
    )

    assert encoded["epochs"] == "10"
    assert encoded["name"] == '"abc"'
    assert encoded["flag"] == "true"
    assert encoded["layers"] == "[1, 2]"
    assert encoded["sagemaker_program"] == '"train.R"'
    assert encoded["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    assert encoded["sagemaker_container_log_level"] == "20"
    assert all(isinstance(v, str) for v in encoded.values())
    assert {k: json.loads(encoded[k]) for k in values} == values


def test_encode_hyperparameters_refuses_what_sagemaker_refuses():
    with pytest.raises(ValueError, match="sagemaker_program"):
        encode_hyperparameters({"sagemaker_program": "x.R"}, program="train.R")
    with pytest.raises(ValueError, match="at most 2500"):
        encode_hyperparameters({"long": "x" * 2500})
    with pytest.raises(ValueError, match="at most 100"):
        encode_hyperparameters({f"k{i}": i for i in range(101)})
    with pytest.raises(TypeError, match="JSON object"):
        encode_hyperparameters([1, 2])


def test_pack_sourcedir_packs_only_code_at_the_root(tmp_path):
    code = tmp_path / "code"
    for folder in ("R", "__pycache__", ".git", "renv/library/pkg"):
        (code / folder).mkdir(parents=True)
    (code / "train.R").write_text("cat('hi')\n")
    (code / "R" / "helpers.R").write_text("f <- function() 1\n")
    (code / ".Rprofile").write_text('source("renv/activate.R")\n')  # kept: renv needs it
    (code / "renv" / "activate.R").write_text("# renv\n")
    junk = (".RData", ".Rhistory", ".Renviron", ".env", "R/.Rprofile", ".git/config", "old.tar.gz")
    for name in (*junk, "__pycache__/x.pyc", "renv/library/pkg/DESCRIPTION"):
        (code / name).write_text("junk")

    dest = code / "sourcedir.tar.gz"  # inside the folder it packs: must not pack itself
    members = pack_sourcedir(code, dest)

    assert members == [".Rprofile", "R/helpers.R", "renv/activate.R", "train.R"]
    with tarfile.open(dest) as archive:
        assert archive.getnames() == members
        assert archive.extractfile("train.R").read() == b"cat('hi')\n"
    first = dest.read_bytes()
    pack_sourcedir(code, dest)
    assert dest.read_bytes() == first  # same code, same bytes


# --- end to end through the CLI (needs the images) --------------------------------------------


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path)


def project_containers(docker_client, project):
    return docker_client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project.resolve()}"})


def make(project, target, **variables):
    """A Make target of the copied project, with this interpreter and the images under test."""
    assignments = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(project),
            target,
            f"PYTHON={sys.executable}",
            *assignments,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_local_process(docker_client, processing_image, project):
    processed = make(project, "local-process", PROCESSING_IMAGE=processing_image)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    outputs = project / "build" / "processing" / "output"
    assert (outputs / "train" / "train-algo-1.csv").is_file()
    assert (outputs / "validation" / "validation-algo-1.csv").is_file()
    config_dir = project / "build" / "processing" / "hosts" / "algo-1" / "config"
    job_config = json.loads((config_dir / "processingjobconfig.json").read_text())
    entrypoint = ["Rscript", "/opt/ml/processing/input/code/preprocess.R"]
    assert job_config["AppSpecification"]["ContainerEntrypoint"] == entrypoint
    assert json.loads((config_dir / "resourceconfig.json").read_text()) == {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
    }
    assert "Next: make local-train" in processed.stdout
    assert project_containers(docker_client, project) == []


def test_local_process_failure_prints_the_message(docker_client, processing_image, project):
    (project / "empty").mkdir()
    processed = cli(project, "local-process", "--image", processing_image, "--input", "empty")
    assert processed.returncode == 1
    assert "ProcessingError: no .csv files under /opt/ml/processing/input/data" in processed.stderr
    assert project_containers(docker_client, project) == []


def test_make_local_train_serve_predict_stop(docker_client, training_image, project):
    trained = make(project, "local-train", TRAINING_IMAGE=training_image)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    config = project / "build" / "training" / "opt_ml" / "input" / "config"
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"code", "train"}
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    assert hyperparameters["target"] == '"Species"'
    assert hyperparameters["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    with tarfile.open(project / "build" / "model.tar.gz") as archive:
        names = set(archive.getnames())
        kept = json.load(archive.extractfile("rsagemaker-versions.json"))
    assert {"model.rds", "code/deploy.R", "code/train.R"} <= names
    assert not any(name.endswith((".tar.gz", ".csv")) for name in names)  # no tarball, no training data
    # The image that trained the model is kept with it: its ref and its local image ID.
    assert kept["image"] == f"{training_image} (image ID {docker_client.images.get(training_image).id})"
    assert "Next: make local-serve" in trained.stdout

    port = free_port()  # `make local-serve` takes 8080, which another run may hold
    try:
        served = cli(project, "local-serve", "--image", training_image, "--port", str(port))
        assert served.returncode == 0, served.stdout + served.stderr
        assert f"http://127.0.0.1:{port}" in served.stdout
        [endpoint] = project_containers(docker_client, project)
        mount = next(m for m in endpoint.attrs["Mounts"] if m["Destination"] == "/opt/ml/model")
        assert mount["RW"] is False

        predicted = make(project, "predict")
        assert predicted.returncode == 0, predicted.stdout + predicted.stderr
        # Five rows spread over the sample: one answer per row, a species each, not all the same.
        answer = predicted.stdout.split("==> 200 text/csv:\n")[1].splitlines()[:5]
        answer = [line.strip('"') for line in answer]
        assert set(answer) <= {"setosa", "versicolor", "virginica"}, predicted.stdout
        assert len(answer) == 5 and len(set(answer)) >= 2, predicted.stdout
    finally:
        stopped = make(project, "local-stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert project_containers(docker_client, project) == []
    assert "no local endpoint" in cli(project, "predict").stderr


def test_local_train_failure_prints_the_reason(docker_client, training_image, project, monkeypatch):
    (project / "config" / "hyperparameters.json").write_text('{"target": "Nope"}')
    # The local runs read only the region of config/aws.json: other AWS settings may be unset or wrong.
    aws = json.loads((project / "config" / "aws.json").read_text())
    aws.update(region="eu-west-1", bucket="Not A Bucket", role_arn="nope")
    (project / "config" / "aws.json").write_text(json.dumps(aws))
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    trained = cli(project, "local-train", "--image", training_image)
    config = project / "build" / "training" / "opt_ml" / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text())["sagemaker_region"] == '"eu-west-1"'

    assert trained.returncode == 1
    assert "Training FAILED" in trained.stderr
    assert "target column 'Nope' is not in the training data" in trained.stderr
    assert not (project / "build" / "model.tar.gz").exists()
    assert project_containers(docker_client, project) == []


def test_train_on_the_processed_split(docker_client, processing_image, training_image, project):
    processed = cli(project, "local-process", "--image", processing_image)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    trained = cli(project, "local-train", "--image", training_image, "--channels", "build/processing/output")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    config = project / "build" / "training" / "opt_ml" / "input" / "config"
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"code", "train", "validation"}
    assert (
        "train <- build/processing/output/train (FullyReplicated), "
        "validation <- build/processing/output/validation (FullyReplicated)"
    ) in trained.stdout
    assert (project / "build" / "model.tar.gz").is_file()


def test_ctrl_c_stops_and_removes_the_training_container(docker_client, training_image, project):
    import signal
    import time

    slow = project / "slow-code"
    slow.mkdir()
    (slow / "train.R").write_text('cat("training started\\n"); Sys.sleep(300)\n')
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rsagemaker_cli",
            "local-train",
            "--image",
            training_image,
            "--code",
            "slow-code",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:  # wait until the user code runs
            if "training started" in line:
                break
        assert [c.status for c in project_containers(docker_client, project)] == ["running"]
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert elapsed < 20, f"took {elapsed:.0f}s: the stop signal did not reach the R process"
    assert project_containers(docker_client, project) == []
    failure = project / "build" / "training" / "opt_ml" / "output" / "failure"
    assert failure.read_text().strip(), "a stopped job leaves its reason in /opt/ml/output/failure"
    assert (project / "build" / "training" / "checkpoints").is_dir()  # kept for the next run
