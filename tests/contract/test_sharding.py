"""Issue 30: a processing or training job on 3 instances, locally, as SageMaker runs it.

The default bake's built images, on a copy of the project whose data/train/ holds five CSV shards
(the sample split by rows). One run each: `make local-process INSTANCES=3` with data
ShardedByS3Key, local-train on 3 hosts with the train channel sharded (a small train.R that reports
what each host sees and resolves the others' names), and a script whose hosts write the same file.
"""

import csv
import json
import subprocess
import sys
import tarfile
from shutil import copytree, ignore_patterns

import pytest

from contract.common import PROJECT_ROOT

pytestmark = pytest.mark.slow
HOSTS = ["algo-1", "algo-2", "algo-3"]
SHARDS = [f"part-{i}.csv" for i in range(1, 6)]
# Objects in key order dealt round-robin (opt_ml.shard()): part-1, part-4 -> algo-1 ...
SHARES = {"algo-1": SHARDS[0::3], "algo-2": SHARDS[1::3], "algo-3": SHARDS[2::3]}

TRAIN_R = """#!/usr/bin/env Rscript
hosts <- jsonlite::fromJSON(Sys.getenv("SM_HOSTS"))
me <- Sys.getenv("SM_CURRENT_HOST")
# The other containers may start a moment later: wait for their names, as the training toolkit
# does before a distributed job starts (up to 15 s).
for (try in 1:30) {
  resolved <- hosts[vapply(hosts, function(h) !is.null(utils::nsl(h)), TRUE)]
  if (length(resolved) == length(hosts)) break
  Sys.sleep(0.5)
}
# ... and stay up a little, so that a host that starts later still finds this one (a name goes
# with its container).
Sys.sleep(5)
files <- sort(list.files(Sys.getenv("SM_CHANNEL_TRAIN")))
cat(sprintf("host=%s rank=%s hosts=%s resolved=%s files=%s\\n", me, Sys.getenv("SM_HOST_RANK"),
  paste(hosts, collapse = ","), paste(resolved, collapse = ","), paste(files, collapse = ",")))
writeLines(me, file.path(Sys.getenv("SM_MODEL_DIR"), "host.txt"))
"""
CLASH_R = 'writeLines("x", "/opt/ml/processing/output/train/same.csv")\n'


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the default bake with data/train/ in five shards (rows of the sample, header each)."""
    copy = tmp_path_factory.mktemp("sharding") / "project"
    copytree(PROJECT_ROOT, copy, ignore=ignore_patterns("build", ".venv", ".git", "__pycache__", ".*_cache"))
    sample = copy / "data" / "train" / "iris.csv"
    header, *rows = sample.read_text().splitlines()
    sample.unlink()
    for index, name in enumerate(SHARDS):
        (copy / "data" / "train" / name).write_text("\n".join([header, *rows[index::5]]) + "\n")
    config = copy / "config" / "aws.json"
    document = json.loads(config.read_text())
    document["processing"] = {"data_distribution": "ShardedByS3Key", "instance_count": 3}
    document["training"] = {"channel_distribution": {"train": "ShardedByS3Key"}}
    config.write_text(json.dumps(document, indent=2))
    return copy


def run(project, *command):
    return subprocess.run(
        list(command), cwd=project, check=False, capture_output=True, text=True, timeout=300
    )


def rows_of(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as handle:
            rows += [tuple(row) for row in list(csv.reader(handle))[1:]]
    return rows


def test_local_process_on_3_instances_processes_each_file_once(project, processing_image):
    # INSTANCES=3 as `make local-process INSTANCES=3` passes it (config/aws.json also says 3).
    result = run(
        project,
        "make",
        "--no-print-directory",
        "local-process",
        f"PYTHON={sys.executable}",
        f"PROCESSING_IMAGE={processing_image}",
        "INSTANCES=3",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    hosts_dir = project / "build" / "processing" / "hosts"
    for rank, host in enumerate(HOSTS, start=1):
        share = SHARES[host]
        # What the container was told: its host and all hosts, the cluster, the data sharded.
        config = hosts_dir / host / "config"
        assert json.loads((config / "resourceconfig.json").read_text()) == {
            "current_host": host,
            "hosts": HOSTS,
        }
        job = json.loads((config / "processingjobconfig.json").read_text())
        assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
        kinds = {
            item["InputName"]: item["S3Input"]["S3DataDistributionType"] for item in job["ProcessingInputs"]
        }
        assert kinds == {"code": "FullyReplicated", "data": "ShardedByS3Key"}
        assert f"    {host}: {len(share)} file(s) of data: {', '.join(share)}" in result.stdout
        # preprocess.R takes every file of its share (it is sharded), by its rank among the hosts.
        assert (
            f"{host} | Host {host} ({rank} of 3) takes {len(share)} of {len(share)} file(s)" in result.stdout
        )
        assert f"{host} | ==> exit code 0" in result.stdout

    outputs = project / "build" / "processing" / "output"
    names = sorted(path.relative_to(outputs).as_posix() for path in outputs.rglob("*") if path.is_file())
    assert names == sorted(
        f"{split}/{split}-{host}.csv" for split in ("train", "validation") for host in HOSTS
    )
    # Every input row exactly once across the hosts' train and validation outputs.
    inputs = rows_of(project / "data" / "train" / name for name in SHARDS)
    assert sorted(rows_of(outputs.rglob("*.csv"))) == sorted(inputs)
    for host in HOSTS:  # each host's outputs are its own share's rows
        mine = rows_of(outputs / split / f"{split}-{host}.csv" for split in ("train", "validation"))
        assert sorted(mine) == sorted(rows_of(project / "data" / "train" / name for name in SHARES[host]))


def test_hosts_writing_the_same_file_fail_the_job_naming_it(project, processing_image):
    (project / "clash").mkdir()
    (project / "clash" / "clash.R").write_text(CLASH_R)
    result = run(
        project,
        sys.executable,
        "-m",
        "rsagemaker_cli",
        "local-process",
        "--image",
        processing_image,
        "--code",
        "clash",
        "--script",
        "clash.R",
        "--instance-count",
        "2",
    )
    assert result.returncode == 1
    assert "FAILED: train/same.csv written by both algo-1 and algo-2" in result.stderr


def test_local_train_on_3_instances(project, training_image, docker_client):
    code = project / "sharded-code"
    code.mkdir()
    (code / "train.R").write_text(TRAIN_R)
    (code / "train.R").chmod(0o755)
    result = run(
        project,
        sys.executable,
        "-m",
        "rsagemaker_cli",
        "local-train",
        "--image",
        training_image,
        "--code",
        "sharded-code",
        "--instance-count",
        "3",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for rank, host in enumerate(HOSTS):
        # Hosts and ranks as SageMaker sets them; the other hosts resolve by name; its share only.
        expected = f"host={host} rank={rank} hosts=algo-1,algo-2,algo-3 resolved=algo-1,algo-2,algo-3"
        assert f"{expected} files={','.join(SHARES[host])}" in result.stdout
        tree = project / "build" / "training" / ("opt_ml" if host == "algo-1" else f"hosts/{host}/opt_ml")
        resources = json.loads((tree / "input" / "config" / "resourceconfig.json").read_text())
        assert (resources["current_host"], resources["hosts"]) == (host, HOSTS)
        channels = json.loads((tree / "input" / "config" / "inputdataconfig.json").read_text())
        assert channels["train"]["S3DistributionType"] == "ShardedByS3Key"
        assert channels["code"]["S3DistributionType"] == "FullyReplicated"
    with tarfile.open(project / "build" / "model.tar.gz") as archive:
        assert archive.extractfile("host.txt").read() == b"algo-1\n"  # algo-1's model, as SageMaker keeps
    job = result.stdout.split("==> Training job ", 1)[1].split(":", 1)[0]
    assert not docker_client.networks.list(names=[job])  # the job's network is gone with it
