"""The serving contract of the training image (`docker run IMAGE serve`), through nginx: the model
mounted read-only at /opt/ml/model, the port, /ping, /invocations status codes and content types,
custom attributes, /execution-parameters and payload limits."""

import json
import socket
import time

import pytest
import requests

from contract.serving_support import (
    SAMPLE_ROWS,
    is_json_error,
    serving_container,
    train_sample_model,
    write_model,
)

CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def sample_model(rscript, tmp_path_factory):
    return train_sample_model(rscript, tmp_path_factory.mktemp("sample") / "model")


@pytest.fixture(scope="module")
def server(docker_client, training_image, sample_model):
    with serving_container(docker_client, training_image, sample_model) as served:
        yield served


def invoke(url, body, headers=None):
    return requests.post(f"{url}/invocations", data=body, headers=headers or {}, timeout=60)


def test_image_accepts_bind_to_port(docker_client, training_image):
    labels = docker_client.images.get(training_image).labels
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"


def test_serves_the_sample_model_from_a_read_only_mount(server):
    code, _ = server.exec("touch", "/opt/ml/model/written")
    assert code != 0, "/opt/ml/model should be mounted read-only in this test"
    response = invoke(server.url, SAMPLE_ROWS, CSV)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    assert response.text == "setosa\nvirginica\n"
    response = invoke(server.url, json.dumps([[5.1, 3.5, 1.4, 0.2]]), {"Content-Type": "application/json"})
    assert response.json() == {"predictions": ["setosa"]}
    response = invoke(server.url, SAMPLE_ROWS, dict(CSV, Accept="application/jsonlines"))
    assert response.text == '"setosa"\n"virginica"\n'


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (SAMPLE_ROWS, {"Content-Type": "text/plain"}, 415),
        (SAMPLE_ROWS, dict(CSV, Accept="application/xml"), 415),
        ("1,2\n", CSV, 400),
        ("{", {"Content-Type": "application/json"}, 400),
        ("a,b,c,d\n", CSV, 400),  # the input prototype wants numbers (test_payloads.py)
        ("1\n" * (3 * 1024 * 1024 + 1), CSV, 413),  # over 6 MB: refused by nginx
    ],
)
def test_error_statuses_are_json(server, body, headers, status):
    response = invoke(server.url, body, headers)
    assert response.status_code == status, response.text
    assert is_json_error(response), response.text
    assert invoke(server.url, SAMPLE_ROWS, CSV).status_code == 200


def test_nginx_and_the_r_workers_agree_on_the_6_mb_limit(server):
    """The real-time limit is set twice, in run.sh (nginx) and in the R worker (serving.R): a body of
    exactly 6 MB gets past both (the model then refuses one-column rows), one byte more is refused.
    test_serving_units.test_payload_limits holds the R worker alone to the same bound."""
    exactly = "1\n" * (3 * 1024 * 1024)
    assert invoke(server.url, exactly, CSV).status_code != 413
    assert invoke(server.url, exactly + "1", CSV).status_code == 413


def test_unknown_route_and_malformed_http_are_json(server):
    response = requests.get(f"{server.url}/nowhere", timeout=10)
    assert response.status_code == 404
    assert is_json_error(response)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        answer = raw.recv(65536).decode(errors="replace")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400"), answer
    assert "application/json" in head
    assert "error" in json.loads(body)


def test_custom_attributes_pass_both_ways(docker_client, training_image, tmp_path):
    model = write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) NULL
        predict_fn <- function(data, model, context) {
          context$response_custom_attributes <- paste0("echo:", context$custom_attributes)
          "ok"
        }
        """,
    )
    with serving_container(docker_client, training_image, model) as served:
        response = invoke(served.url, "1\n", dict(CSV, **{"X-Amzn-SageMaker-Custom-Attributes": "a=1,b=2"}))
        assert response.status_code == 200, response.text
        assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "echo:a=1,b=2"


def test_bind_to_port(docker_client, training_image, sample_model):
    env = {"SAGEMAKER_BIND_TO_PORT": "9137"}
    with serving_container(docker_client, training_image, sample_model, env=env, port=9137) as served:
        assert invoke(served.url, SAMPLE_ROWS, CSV).text == "setosa\nvirginica\n"
        assert "on port 9137" in served.logs()


def test_batch_execution_parameters_and_payload_limit(docker_client, training_image, sample_model):
    env = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "8",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    with serving_container(docker_client, training_image, sample_model, env=env) as served:
        response = requests.get(f"{served.url}/execution-parameters", timeout=10)
        assert response.json() == {
            "MaxConcurrentTransforms": 2,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 8,
        }
        seven_mb = SAMPLE_ROWS * (7 * 1024 * 1024 // len(SAMPLE_ROWS))
        response = invoke(served.url, seven_mb, CSV)  # over the real-time limit, within the batch one
        assert response.status_code == 200, response.text[:500]
        assert len(response.text.splitlines()) == len(seven_mb.splitlines())
        response = invoke(served.url, seven_mb + seven_mb, CSV)
        assert response.status_code == 413
        assert is_json_error(response)


def test_ping_is_503_until_the_model_is_loaded(docker_client, training_image, tmp_path):
    model = write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) { Sys.sleep(5); "slow" }
        predict_fn <- function(data, model) model
        """,
    )
    with serving_container(docker_client, training_image, model, wait=False) as served:
        answers = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"{served.url}/ping", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.1)
                continue
            answers.append(response)
            if response.status_code == 200:
                break
            time.sleep(0.2)
        statuses = [answer.status_code for answer in answers]
        assert statuses[-1] == 200, served.logs()
        assert statuses.count(503) >= 5, statuses  # about 5 s of "not loaded yet"
        assert set(statuses) == {503, 200}
        assert is_json_error(answers[0])
        assert invoke(served.url, "1\n", CSV).text == "slow\n"


def test_model_that_fails_to_load_stops_the_container(docker_client, training_image, tmp_path):
    model = write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) stop("the weights file is truncated")
        predict_fn <- function(data, model) 1
        """,
    )
    with serving_container(docker_client, training_image, model, wait=False) as served:
        result = served.container.wait(timeout=60)
        logs = served.logs()
        assert result["StatusCode"] != 0, logs
        assert "Model failed to load: the weights file is truncated" in logs


def test_deploy_r_from_the_image_when_the_model_has_no_code(
    docker_client, training_image, sample_model, tmp_path
):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.rds").write_bytes((sample_model / "model.rds").read_bytes())
    with serving_container(docker_client, training_image, model) as served:
        assert invoke(served.url, SAMPLE_ROWS, CSV).text == "setosa\nvirginica\n"
        assert "/opt/ml/code/deploy.R" in served.logs()
