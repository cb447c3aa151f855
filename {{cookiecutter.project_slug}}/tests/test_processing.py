"""The processing image run as SageMaker runs it: ScriptProcessor's entrypoint, inputs and outputs
under /opt/ml/processing, the job's config files, several hosts, and the failure message file."""

import csv
import shutil
from pathlib import Path

from sagemaker_tools import opt_ml
from sagemaker_tools.engine import bind

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
