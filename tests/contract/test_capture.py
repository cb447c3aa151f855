"""Data capture and monitoring on the default bake's images (slow: it trains, serves and runs the
processing image): `local-serve --capture` writes SageMaker's capture records field for field, and
`local-monitor` reports no drift on the training data and drift on shifted rows."""

import csv
import json
import re

import pytest
import requests
from conftest import free_port

from contract.common import PROJECT_ROOT, cli, copy_project

pytestmark = pytest.mark.slow

# SageMaker's data capture record (Model Monitor's documented format), its fields and nothing else.
RECORD_FIELDS = {"captureData", "eventMetadata", "eventVersion"}
PAYLOAD_FIELDS = {"observedContentType", "mode", "data", "encoding"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HOUR_PATH = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}/[^/]+\.jsonl$")


def records_of(capture):
    """Each captured record, with its file's path under <endpoint>/<variant>/."""
    found = []
    for path in sorted(capture.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            found.append((path.relative_to(capture), json.loads(line)))
    return found


def test_local_capture_is_sagemakers_format_and_monitor_finds_drift(
    docker_client, training_image, processing_image, tmp_path
):
    project = copy_project(tmp_path)
    trained = cli(project, "local-train", "--image", training_image)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    with open(project / "data" / "train" / "iris.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    shifted = project / "shifted"
    shifted.mkdir()
    with open(shifted / "shifted.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        column = header.index("Petal.Length")
        writer.writerows([*row[:column], f"{float(row[column]) + 3:g}", *row[column + 1 :]] for row in rows)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        served = cli(project, "local-serve", "--image", training_image, "--port", str(port), "--capture")
        assert served.returncode == 0, served.stdout + served.stderr
        assert "Data capture on: build/capture/" in served.stdout
        predicted = cli(project, "predict", "--rows", "150")  # every training row, one request
        assert predicted.returncode == 0, predicted.stdout + predicted.stderr
        answer = requests.post(
            f"{url}/invocations",
            data=json.dumps(
                [{"Sepal.Length": 5.1, "Sepal.Width": 3.5, "Petal.Length": 1.4, "Petal.Width": 0.2}]
            ),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        bad = requests.post(
            f"{url}/invocations", data="1,2\n", headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert bad.status_code == 400  # not captured: SageMaker captures answered requests
    finally:
        cli(project, "local-stop")

    capture = project / "build" / "capture"
    records = records_of(capture)
    assert len(records) == 2, records
    endpoint = (
        PROJECT_ROOT.name
    )  # endpoint.name: the project's name (the bake's folder) as SageMaker spells it
    for path, record in records:
        assert path.parts[:2] == (endpoint, "AllTraffic"), path
        assert HOUR_PATH.match("/".join(path.parts[2:])), path
        assert set(record) == RECORD_FIELDS
        assert set(record["captureData"]) == {"endpointInput", "endpointOutput"}
        for mode, payload in (
            ("INPUT", record["captureData"]["endpointInput"]),
            ("OUTPUT", record["captureData"]["endpointOutput"]),
        ):
            assert set(payload) == PAYLOAD_FIELDS
            assert payload["mode"] == mode
        assert set(record["eventMetadata"]) == {"eventId", "inferenceTime"}
        assert UUID.match(record["eventMetadata"]["eventId"])
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", record["eventMetadata"]["inferenceTime"])
        assert record["eventVersion"] == "0"
    (_, csv_record), (_, json_record) = records
    sent = csv_record["captureData"]["endpointInput"]
    assert (sent["observedContentType"], sent["encoding"]) == ("text/csv", "CSV")
    assert len(sent["data"].splitlines()) == 150
    answered = csv_record["captureData"]["endpointOutput"]
    assert answered["encoding"] == "CSV" and len(answered["data"].splitlines()) == 150
    assert json_record["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert json.loads(json_record["captureData"]["endpointOutput"]["data"]) == json.loads(answer.text)

    # The training rows themselves: no drift.
    same = cli(project, "local-monitor", "--image", processing_image)
    assert same.returncode == 0, same.stdout + same.stderr
    report = project / "build" / "monitor" / "output" / "report"
    assert json.loads((report / "violations.json").read_text())["status"] == "ok"

    # Shifted rows captured too: Petal.Length drifts, the run fails with its report.
    try:
        served = cli(project, "local-serve", "--image", training_image, "--port", str(port), "--capture")
        assert served.returncode == 0, served.stdout + served.stderr
        for _ in range(2):
            sent = cli(project, "predict", "--rows", "150", "--data", "shifted")
            assert sent.returncode == 0, sent.stdout + sent.stderr
    finally:
        cli(project, "local-stop")
    drifted = cli(project, "local-monitor", "--image", processing_image)
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    violations = json.loads((report / "violations.json").read_text())
    assert violations["status"] == "violations"
    assert ("Petal.Length", "psi") in {(v["feature"], v["check"]) for v in violations["violations"]}
    assert "data:image/png;base64," in (report / "report.html").read_text()  # the image draws PNG
    assert "Petal.Length" in drifted.stdout + drifted.stderr
