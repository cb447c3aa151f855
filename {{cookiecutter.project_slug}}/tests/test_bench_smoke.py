"""Smoke test of `make bench`: the whole benchmark on a tiny budget (--quick, no build times).

It checks the machinery, not the figures: the report has every row and column, every figure parses
as a number, and each target row says PASS or MISS. Timings are not asserted: they depend on the
machine and on what else runs on it.
"""

import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, unavailable

from sagemaker_tools.bench import COLUMNS, NOT_APPLICABLE, SKIPPED, row_names

QUICK_BUSY_SECONDS = 3
QUICK_COLD_STARTS = 1
TARGET_ROWS = {
    "Sample model, 1 keep-alive connection: p50 latency (ms)",
    "50 ms model, 4 connections: throughput relative to the single plumber (x)",
    f"/ping p99 while a {QUICK_BUSY_SECONDS} s invocation runs (ms)",
    f"Cold start, container start to first 200 on /ping, median of {QUICK_COLD_STARTS} (s)",
    "Leftovers over the base: apt lists, caches, compilers (count)",
}
BUILD_ROWS = {"Build time, cold (--no-cache) (s)", "Build time after a code-only change (s)"}


def table_rows(markdown):
    """The markdown table as lists of cells, the header first (the separator line dropped)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [rows[0]] + rows[2:]


def is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory, docker_client, training_image):
    if not shutil.which("wrk"):
        unavailable("wrk is not installed (apt-get install wrk)")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        unavailable("aiohttp is not installed (pip install aiohttp)")
    output = tmp_path_factory.mktemp("bench") / "results.md"
    finished = subprocess.run(
        [sys.executable, "-m", "sagemaker_tools", "bench", "--image", training_image, "--quick"]
        + ["--skip-build-times", "--output", str(output)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout, output.read_text()


def test_report_names_the_machine(quick_report):
    _, report = quick_report
    machine = next(line for line in report.splitlines() if line.startswith("Machine:"))
    for key in ("nproc", "CPU", "memory", "engine", "date"):
        assert f"{key} " in machine


def test_table_has_every_row_and_column(quick_report):
    _, report = quick_report
    header, *rows = table_rows(report)
    assert tuple(header) == COLUMNS
    assert all(len(row) == len(COLUMNS) for row in rows)
    assert [row[0] for row in rows] == row_names(QUICK_BUSY_SECONDS, QUICK_COLD_STARTS)


def test_every_figure_parses(quick_report):
    _, report = quick_report
    _, *rows = table_rows(report)
    for name, seed, server, _target, _result in rows:
        if name in BUILD_ROWS:
            assert (seed, server) == (NOT_APPLICABLE, SKIPPED), name
            continue
        assert is_number(server), f"{name}: {server!r}"
        # The seed design has no leftovers figure of its own (it is the image under test plus plumber).
        assert is_number(seed) or (name.startswith("Leftovers") and seed == NOT_APPLICABLE), (
            f"{name}: {seed!r}"
        )


def test_each_target_row_is_judged(quick_report):
    _, report = quick_report
    _, *rows = table_rows(report)
    for name, _seed, _server, target, result in rows:
        if name in TARGET_ROWS:
            assert target != NOT_APPLICABLE and result in ("PASS", "MISS"), name
        elif name not in BUILD_ROWS:
            assert result == NOT_APPLICABLE, name


def test_table_is_printed_too(quick_report):
    stdout, report = quick_report
    assert table_rows(stdout) == table_rows(report)
