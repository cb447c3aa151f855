"""Smoke test of `make bench`: the benchmark of this project's model, run for real on a tiny budget.

It checks the machinery, not the speed: every row is there, in order, and every figure is a number
of the right shape (a count is whole, the rest decimals). Timings are not asserted: they depend on
the machine and on what else runs on it.
"""

import re
import shutil
import subprocess
import sys

import pytest
from conftest import unavailable
from rsagemaker_cli.local.bench import Settings, row_names

from contract.common import PROJECT_ROOT

WORKERS = 2
TARGET_RPS = 250
DECIMAL = re.compile(r"^\d+\.\d+$")
WHOLE = re.compile(r"^\d+$")


def table(markdown):
    """{measurement: value} of the report's table, in order."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    return dict(tuple(cell.strip() for cell in line.strip().strip("|").split("|")) for line in lines)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, docker_client, training_image):
    if not shutil.which("wrk"):
        unavailable("wrk is not installed (apt-get install wrk)")
    output = tmp_path_factory.mktemp("bench") / "results.md"
    command = [sys.executable, "-m", "rsagemaker_cli", "bench", "--image", training_image, "--quick"]
    command += ["--workers", str(WORKERS), "--target-rps", str(TARGET_RPS), "--output", str(output)]
    finished = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout, output.read_text()


def test_every_row_is_there_in_order(quick_run):
    _, report = quick_run
    settings = Settings(
        workers=WORKERS,
        duration_s=3,
        warmup_s=1,
        cold_starts=1,
        large_body_mb=5,
        round_trips=2,
        target_rps=TARGET_RPS,
    )
    assert list(table(report)) == row_names(settings)


def test_every_figure_is_a_number_of_the_right_shape(quick_run):
    _, report = quick_run
    figures = table(report)
    for name, value in figures.items():
        shape = WHOLE if name.endswith("(count)") or name.startswith("Training image size") else DECIMAL
        assert shape.match(value), f"{name}: {value!r}"
    assert int(figures[f"Instances like this machine for {TARGET_RPS} requests/s (count)"]) >= 1
    assert float(figures["1 keep-alive connection: requests/s"]) > 0
    assert float(figures[f"Container memory, {WORKERS} workers, model loaded, before any request (MB)"]) > 0


def test_the_report_names_the_machine_and_is_printed_too(quick_run):
    stdout, report = quick_run
    machine = next(line for line in report.splitlines() if line.startswith("Machine:"))
    for key in ("nproc", "CPU", "memory", "engine", "date"):
        assert f"{key} " in machine
    assert table(stdout) == table(report)
