"""`rsagemaker --json FILE COMMAND`: the outcome as JSON (exit status, the error line, the result),
which the rsagemaker R package's project_*() functions read. Against moto, as the other tests."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cli_support import SLUG, TAG
from test_endpoints import canned_answer
from test_registry import registered  # noqa: F401 (a fixture)
from test_tuning import TRAIN, TUNE, sagemaker_answers  # noqa: F401 (a fixture)


@pytest.fixture
def outcome(tmp_path):
    """outcome(run): the JSON a command wrote to --json FILE; returns (FILE, reader)."""
    path = tmp_path / "outcome.json"
    return path, lambda: json.loads(path.read_text())


def test_remote_train_deploy_invoke_report_what_they_made(project, in_ecr, moto_url, cli, outcome):
    path, read = outcome
    assert cli("--json", path, *TRAIN).code == 0
    trained = read()
    assert (trained["command"], trained["exit_status"], trained["error"]) == ("remote-train", 0, None)
    job = trained["result"]
    described = in_ecr.client("sagemaker").describe_training_job(TrainingJobName=job["job_name"])
    assert job["job_arn"] == described["TrainingJobArn"]
    assert job["status"] == "Completed"
    assert job["model_data"] == described["ModelArtifacts"]["S3ModelArtifacts"]
    assert isinstance(job["metrics"], list)

    assert cli("--json", path, "deploy").code == 0
    deployed = read()["result"]
    assert (deployed["endpoint"], deployed["status"]) == (SLUG, "InService")
    assert deployed["endpoint_arn"].endswith(f"endpoint/{SLUG}")

    canned_answer(moto_url, "setosa\nvirginica\n")
    assert cli("--json", path, "invoke").code == 0
    invoked = read()["result"]
    assert invoked["body"] == "setosa\nvirginica\n"
    assert invoked["content_type"] == "text/csv; charset=utf-8"
    assert len(invoked["request"]["body"].splitlines()) == 5


def test_models_and_approve_report_rows_and_the_arn(registered, cli, outcome):  # noqa: F811
    path, read = outcome
    assert cli("--json", path, "models").code == 0
    versions = read()["result"]["versions"]
    assert [(v["version"], v["status"], v["accuracy"]) for v in versions] == [
        (2, "PendingManualApproval", 0.9667),
        (1, "PendingManualApproval", 0.9333),
    ]
    assert [v["arn"] for v in versions] == registered[::-1]
    assert all(v["created"][:2] == "20" for v in versions)
    assert cli("--json", path, "approve", "--version", "1").code == 0
    assert read()["result"] == {"group": SLUG, "version": 1, "status": "Approved", "arn": registered[0]}


def test_tune_results_reports_the_jobs_best_first(project, in_ecr, sagemaker_answers, cli, outcome):  # noqa: F811
    path, read = outcome
    name = cli("--json", path, *TUNE, "--no-wait").request("CreateHyperParameterTuningJob")[
        "HyperParameterTuningJobName"
    ]
    assert read()["result"] == {"tuning_job_name": name, "status": None}  # R's project_tune(no_wait = TRUE)
    assert cli("--json", path, "tune-results", "--tuning-job", name).code == 0
    result = read()["result"]
    assert (result["tuning_job_name"], result["metric"], result["type"]) == (
        name,
        "train:accuracy",
        "Maximize",
    )
    assert [(j["name"], j["objective"]) for j in result["training_jobs"]] == [
        ("job-a", 0.97),
        ("job-b", 0.93),
        ("job-d", 0.67),
        ("job-c", None),
    ]
    assert result["training_jobs"][0]["hyperparameters"] == {"maxdepth": "5", "cp": "0.002"}


def test_predict_reports_the_answer(project, cli, outcome):
    path, read = outcome

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            self.wfile.write(b"setosa\nsetosa\n")

        def log_message(self, *_):
            pass

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert cli("--json", path, "predict", "--url", url, "--rows", "2").code == 0
    finally:
        server.shutdown()
    result = read()["result"]
    assert (result["url"], result["status"], result["content_type"], result["body"]) == (
        url,
        200,
        "text/csv",
        "setosa\nsetosa\n",
    )
    assert len(result["request"]["body"].splitlines()) == 2


def test_a_failure_writes_its_one_line(project, aws, cli, outcome):
    path, read = outcome
    result = cli(
        "--json", path, "remote-train", "--image", f"{SLUG}-training:{TAG}-dirty", "--tag", f"{TAG}-dirty"
    )
    assert result.code != 0
    failed = read()
    assert failed["exit_status"] == result.code and failed["result"] is None
    assert f"error: {failed['error']}" == result.err.strip().splitlines()[-1]
    assert "\n" not in failed["error"]
