"""Batch transform on this machine (`make local-transform`) end to end on the sample model, and how
records are packed into requests as SageMaker packs them (SplitType, BatchStrategy, MaxPayloadInMB)."""

import csv
import os
import subprocess
import sys
from shutil import copytree, ignore_patterns

import pytest
from rsagemaker_cli.core.engine import LABEL_PROJECT
from rsagemaker_cli.core.errors import SetupError
from rsagemaker_cli.local.transform import MB, assemble, batches, records_of

from contract.common import PROJECT_ROOT

SPECIES = {"setosa", "versicolor", "virginica"}


def test_multi_record_fills_requests_up_to_the_payload_limit():
    record = b"x" * (MB // 4 - 1) + b"\n"  # four records make exactly 1 MB
    requests = batches([record] * 10, "MultiRecord", 1, "f.csv")
    assert [len(body) // len(record) for body in requests] == [4, 4, 2]
    assert all(len(body) <= MB for body in requests)
    assert batches([record] * 10, "SingleRecord", 1, "f.csv") == [record] * 10
    assert batches([record] * 10, "MultiRecord", 0, "f.csv") == [record * 10]  # 0: no limit
    with pytest.raises(SetupError, match="over MaxPayloadInMB=1"):
        batches([b"y" * (MB + 1)], "SingleRecord", 1, "big.csv")


def test_split_types_and_assembly():
    assert records_of(b"1,2\n3,4\n\n5,6", "Line") == [b"1,2\n", b"3,4\n", b"5,6"]
    assert records_of(b"1,2\n3,4\n", "None") == [b"1,2\n3,4\n"]
    # AssembleWith Line: a newline after each response; the container leaves out its last one.
    assert assemble([b"a\nb", b"c\n"], "Line") == b"a\nb\nc\n"
    assert assemble([b"a", b"b"], "None") == b"ab"


@pytest.fixture(scope="module")
def trained_project(docker_client, training_image, tmp_path_factory):
    copy = tmp_path_factory.mktemp("transform") / "project"
    copytree(PROJECT_ROOT, copy, ignore=ignore_patterns("build", ".venv", ".git", "__pycache__", ".*_cache"))
    trained = make(copy, "local-train", TRAINING_IMAGE=training_image)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return copy


def make(project, target, env=None, **variables):
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(project), target, f"PYTHON={sys.executable}"]
        + [f"{name}={value}" for name, value in variables.items()],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def labels_of(project):
    with open(project / "data" / "train" / "iris.csv", newline="") as handle:
        return [row["Species"] for row in csv.DictReader(handle)]


def project_containers(docker_client, project):
    return docker_client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project.resolve()}"})


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {
            "SAGEMAKER_TRANSFORM_BATCH_STRATEGY": "SingleRecord",
            "SAGEMAKER_TRANSFORM_MAX_CONCURRENT_TRANSFORMS": "4",
        },
        {"SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB": "0"},  # no limit: each file in one chunked request
    ],
    ids=["multi-record", "single-record", "max-payload-0"],
)
def test_make_local_transform_writes_one_answer_per_record(
    docker_client, training_image, trained_project, settings
):
    result = make(trained_project, "local-transform", env=settings, TRAINING_IMAGE=training_image)
    assert result.returncode == 0, result.stdout + result.stderr
    output = trained_project / "build" / "transform" / "output" / "train" / "iris.csv.out"
    assert "Output in build/transform/output:\n    build/transform/output/train/iris.csv.out" in result.stdout
    answers = output.read_text().splitlines()
    labels = labels_of(trained_project)
    assert len(answers) == len(labels)
    assert set(answers) <= SPECIES
    # The sample model on its own training rows: the answers line up with the labels, row for row.
    assert sum(a == b for a, b in zip(answers, labels)) / len(labels) >= 0.9
    if "SAGEMAKER_TRANSFORM_BATCH_STRATEGY" in settings:
        assert f"train/iris.csv: {len(labels)} request(s)" in result.stdout
        assert "SingleRecord" in result.stdout
    if settings.get("SAGEMAKER_TRANSFORM_MAX_PAYLOAD_MB") == "0":
        assert "MaxPayloadInMB 0 (no limit: chunked)" in result.stdout
    assert project_containers(docker_client, trained_project) == []


def test_local_transform_of_files_that_fail_the_model_says_why(
    docker_client, training_image, trained_project
):
    inputs = trained_project / "bad-input"
    inputs.mkdir(exist_ok=True)
    (inputs / "rows.csv").write_text("5.1,3.5,1.4\n")  # a column short of the model's input prototype
    result = make(trained_project, "local-transform", TRAINING_IMAGE=training_image, INPUT="bad-input")
    assert result.returncode != 0
    assert "FAILED on rows.csv: 400" in result.stderr
    assert "expected 4 columns" in result.stderr
    assert project_containers(docker_client, trained_project) == []


def test_a_bad_transform_setting_is_one_clear_error(trained_project, training_image):
    result = make(
        trained_project,
        "local-transform",
        env={"SAGEMAKER_TRANSFORM_SPLIT_TYPE": "Lines"},
        TRAINING_IMAGE=training_image,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    expected = (
        "error: transform.split_type = 'Lines' (from $SAGEMAKER_TRANSFORM_SPLIT_TYPE) is invalid: "
        "expected None or Line or RecordIO or TFRecord"
    )
    assert errors == [expected], result.stderr
