"""make local-tune on the default bake's built training image: three trials of the sample train.R
(seconds each), the table best first, and the best model served by local-serve. The request of
make tune and config/tuning.json's checks are tested against moto in cli/tests/test_tuning.py."""

import json
import re
import sys
from shutil import copytree, ignore_patterns

import pytest
from conftest import free_port, make

pytestmark = pytest.mark.slow


def test_local_tune_keeps_the_best_model_for_local_serve(built_project, tmp_path):
    default, images = built_project
    project = tmp_path / "project"
    copytree(default, project, ignore=ignore_patterns("build", ".venv"))
    image = images["training"]

    outcome = tmp_path / "outcome.json"  # --json: what R's project_local_tune() reads
    cli = f"{sys.executable} -m rsagemaker_cli --json {outcome}"
    tuned = make(project, "local-tune", TRIALS=3, SEED=1, TRAINING_IMAGE=image, CLI=cli)
    out = tuned.stdout
    assert "3 of 3 trial(s) completed" in out, out + tuned.stderr
    # Three draws of config/tuning.json's ranges, then the table best first.
    draws = re.findall(r"==> Trial \d of 3: maxdepth=(\d+), cp=([0-9.e-]+)", out)
    assert len(draws) == 3 and all(1 <= int(depth) <= 6 and 0.001 <= float(cp) <= 0.2 for depth, cp in draws)
    rows = [line.split() for line in out.splitlines() if re.match(r"\d+ +trial-\d", line)]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    objectives = [float(row[3]) for row in rows]
    assert objectives == sorted(objectives, reverse=True) and all(0 < value <= 1 for value in objectives)
    results = json.loads((project / "build" / "tuning" / "results.json").read_text())
    best = results["trials"][0]
    assert best["name"] == rows[0][1] and best["objective"] == objectives[0]
    assert f"==> Best: {best['name']}" in out and "Next: make local-serve" in out
    reported = json.loads(outcome.read_text())["result"]
    assert reported["training_jobs"] == results["trials"]
    assert (reported["metric"], reported["type"]) == (
        results["objective"]["metric"],
        results["objective"]["type"],
    )
    kept = project / "build" / "model.tar.gz"
    assert kept.read_bytes() == (project / "build" / "tuning" / best["name"] / "model.tar.gz").read_bytes()

    port = free_port()
    try:
        make(project, "local-serve", PORT=port, TRAINING_IMAGE=image)
        predicted = make(project, "predict")
        answer = predicted.stdout.split("==> 200 text/csv:\n")[1].splitlines()[:5]
        assert {line.strip('"') for line in answer} <= {"setosa", "versicolor", "virginica"}, predicted.stdout
    finally:
        make(project, "local-stop")
