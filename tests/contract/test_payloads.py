"""Payloads across SageMaker's hosting options, in the serving container through nginx: binary bodies
(byte for byte, NUL bytes and invalid UTF-8 included), batch transform's MaxPayloadInMB=0 (no limit,
chunked bodies), an asynchronous endpoint's large bodies, and the input prototype check."""

import hashlib
import http.client
import json

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
MB = 1024 * 1024


@pytest.fixture(scope="module")
def sample_model(rscript, tmp_path_factory):
    return train_sample_model(rscript, tmp_path_factory.mktemp("sample") / "model")


def invoke(url, body, headers=None):
    return requests.post(f"{url}/invocations", data=body, headers=headers or {}, timeout=120)


# Answers the size and SHA-256 of the bytes input_fn received (as text), so a test can tell that a
# large body reached the handlers whole.
DIGEST_DEPLOY = """
model_fn <- function(model_dir) NULL
input_fn <- function(body, content_type) {
  if (is.character(body)) body <- charToRaw(body)
  body
}
predict_fn <- function(data, model) {
  file <- tempfile()
  writeBin(data, file)
  digest <- system2("sha256sum", file, stdout = TRUE)
  unlink(file)
  paste(length(data), sub(" .*$", "", digest))
}
output_fn <- function(prediction, accept) prediction
"""


def digest_of(body):
    return f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def chunked(body, chunk_size=MB):
    for start in range(0, len(body), chunk_size):
        yield body[start : start + chunk_size]


def test_binary_bodies_reach_input_fn_byte_for_byte_and_come_back(docker_client, training_image, tmp_path):
    model = write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) NULL
        input_fn <- function(body, content_type) {
          if (!is.raw(body)) http_error(400, paste("expected raw bytes, got", class(body)[[1]]))
          body
        }
        predict_fn <- function(data, model) rev(data)
        output_fn <- function(prediction, accept) prediction
        """,
    )
    body = bytes(range(256)) * 64 + b"\x00\x00\xff\xfe\xc3(" + b"\x00"  # NUL bytes, invalid UTF-8
    with serving_container(docker_client, training_image, model) as served:
        for content_type in ("application/octet-stream", "image/png", "application/x-protobuf"):
            response = invoke(served.url, body, {"Content-Type": content_type, "Accept": content_type})
            assert response.status_code == 200, response.text[:300]
            assert response.headers["Content-Type"] == content_type
            assert response.content == body[::-1]
        # A text type keeps its checks: the same bytes are refused before the handlers.
        response = invoke(served.url, body, {"Content-Type": "text/plain"})
        assert response.status_code == 400 and is_json_error(response), response.text


def test_the_default_input_fn_refuses_binary_types_with_415(docker_client, training_image, sample_model):
    with serving_container(docker_client, training_image, sample_model) as served:
        response = invoke(served.url, b"\x89PNG\x00\x01", {"Content-Type": "image/png"})
        assert response.status_code == 415, response.text
        assert is_json_error(response)
        assert invoke(served.url, SAMPLE_ROWS, CSV).text == "setosa\nvirginica\n"


def test_batch_with_max_payload_0_takes_a_chunked_body_over_6_mb(docker_client, training_image, tmp_path):
    """MaxPayloadInMB=0: the container starts, reports 0, and takes a Transfer-Encoding: chunked body
    larger than any fixed limit (here 20 MB, over the real-time 6 MB and the batch default)."""
    model = write_model(tmp_path / "model", DIGEST_DEPLOY)
    env = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0",
        "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
    }
    body = (SAMPLE_ROWS.encode() * (20 * MB // len(SAMPLE_ROWS)))[: 20 * MB]
    with serving_container(docker_client, training_image, model, env=env) as served:
        parameters = requests.get(f"{served.url}/execution-parameters", timeout=10).json()
        assert parameters["MaxPayloadInMB"] == 0
        assert "no payload limit" in served.logs()
        host, port = served.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        connection.request(
            "POST",
            "/invocations",
            body=chunked(body),
            headers={"Content-Type": "text/csv"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        answer = response.read().decode()
        assert response.status == 200, answer[:300]
        assert answer == digest_of(body)


def test_an_async_endpoint_takes_a_50_mb_body(docker_client, training_image, tmp_path):
    """SAGEMAKER_ASYNC_INFERENCE=true (what `make deploy ASYNC=1` sets): the limit is 1 GB, so 50 MB
    reach the handlers whole; the same body is refused (JSON 413) by a real-time endpoint."""
    model = write_model(tmp_path / "model", DIGEST_DEPLOY)
    body = bytes(range(256)) * (50 * MB // 256)
    binary = {"Content-Type": "application/octet-stream"}
    with serving_container(
        docker_client, training_image, model, env={"SAGEMAKER_ASYNC_INFERENCE": "true"}
    ) as served:
        response = invoke(served.url, body, binary)
        assert response.status_code == 200, response.text[:300]
        assert response.text == digest_of(body)
        assert "max payload 1024 MB" in served.logs()
    with serving_container(docker_client, training_image, model) as served:
        response = invoke(served.url, body, binary)
        assert response.status_code == 413 and is_json_error(response), response.text[:300]


def test_requests_are_checked_against_the_trained_input_prototype(
    docker_client, training_image, sample_model
):
    prototype = json.loads((sample_model / "input-prototype.json").read_text())
    assert [column["name"] for column in prototype["columns"]] == [
        "Sepal.Length",
        "Sepal.Width",
        "Petal.Length",
        "Petal.Width",
    ]
    assert {column["type"] for column in prototype["columns"]} == {"number"}
    json_type = {"Content-Type": "application/json"}
    with serving_container(docker_client, training_image, sample_model) as served:
        record = {"Sepal.Length": 5.1, "Sepal.Width": 3.5, "Petal.Length": 1.4, "Petal.Width": 0.2}
        assert invoke(served.url, json.dumps([record]), json_type).json() == {"predictions": ["setosa"]}
        for body, headers, message in (
            (
                "5.1,3.5,1.4\n",
                CSV,
                "expected 4 columns (Sepal.Length, Sepal.Width, Petal.Length, Petal.Width), got 3",
            ),
            ("5.1,3.5,abc,0.2\n", CSV, "column 'Petal.Length' should be number, got text (e.g. 'abc')"),
            (
                json.dumps([{k: v for k, v in record.items() if k != "Petal.Width"}]),
                json_type,
                "missing column 'Petal.Width'",
            ),
            (
                json.dumps([dict(record, **{"Sepal.Width": "wide"})]),
                json_type,
                "column 'Sepal.Width' should be number",
            ),
        ):
            response = invoke(served.url, body, headers)
            assert response.status_code == 400, response.text
            assert is_json_error(response)
            assert message in response.json()["error"], response.json()
        assert invoke(served.url, SAMPLE_ROWS, CSV).text == "setosa\nvirginica\n"


def test_a_deploy_r_turns_the_prototype_check_off(docker_client, training_image, sample_model, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.rds", "input-prototype.json"):
        (model / name).write_bytes((sample_model / name).read_bytes())
    write_model(model, "check_input_prototype <- FALSE\npredict_fn <- function(data, model) ncol(data)\n")
    with serving_container(docker_client, training_image, model) as served:
        response = invoke(served.url, "1,2\n", CSV)
        assert response.status_code == 200, response.text
        assert response.text == "2\n"
