"""Fast tests of the serving plumbing (images/training/rsagemaker/R/serving.R): one R worker on the host
(`entrypoint.R serve --port N`) against a temporary /opt/ml (SAGEMAKER_BASE_DIR). No container."""

import json
import os
import struct
import subprocess

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.serving_support import (
    SAMPLE_ROWS,
    TRAINING_DIR,
    host_worker,
    is_json_error,
    train_sample_model,
    write_model,
)

CSV = {"Content-Type": "text/csv"}

# Echoes the parsed data, so the tests see what the default input_fn made of a body.
ECHO_DEPLOY = """
model_fn <- function(model_dir) "echo"
predict_fn <- function(data, model) data
"""


@pytest.fixture(scope="module")
def sample_worker(rscript, tmp_path_factory):
    base = tmp_path_factory.mktemp("opt_ml")
    train_sample_model(rscript, base / "model")
    with host_worker(rscript, base) as url:
        yield url


@pytest.fixture(scope="module")
def echo_worker(rscript, tmp_path_factory):
    base = tmp_path_factory.mktemp("opt_ml")
    write_model(base / "model", ECHO_DEPLOY)
    with host_worker(rscript, base) as url:
        yield url


def invoke(url, body, headers=None, **kwargs):
    return requests.post(f"{url}/invocations", data=body, headers=headers or {}, timeout=30, **kwargs)


# --- the sample model (code/train.R + code/deploy.R) in each content type ---


def test_sample_model_csv_in_csv_out(sample_worker):
    response = invoke(sample_worker, SAMPLE_ROWS, CSV)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    assert response.text == "setosa\nvirginica\n"  # plain strings are not quoted


def test_sample_model_json_records_and_instances(sample_worker):
    record = {"Sepal.Length": 5.1, "Sepal.Width": 3.5, "Petal.Length": 1.4, "Petal.Width": 0.2}
    for body in ([record], {"instances": [[6.7, 3.0, 5.2, 2.3]]}, record):
        response = invoke(sample_worker, json.dumps(body), {"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["predictions"] in (["setosa"], ["virginica"])


def test_sample_model_jsonlines(sample_worker):
    body = "[5.1, 3.5, 1.4, 0.2]\n[6.7, 3.0, 5.2, 2.3]\n"
    response = invoke(sample_worker, body, {"Content-Type": "application/jsonlines"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/jsonlines"
    assert [json.loads(line) for line in response.text.splitlines()] == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/csv"),  # no Accept: the request's content type
        ("*/*", "text/csv"),
        ("application/json", "application/json"),
        ("application/jsonlines; q=0.9", "application/jsonlines"),
        ("image/png, application/json", "application/json"),  # first supported entry
    ],
)
def test_accept_negotiation(sample_worker, accept, expected):
    headers = dict(CSV, **({"Accept": accept} if accept else {}))
    response = invoke(sample_worker, SAMPLE_ROWS, headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == expected


def test_default_accept_setting(rscript, tmp_path):
    train_sample_model(rscript, tmp_path / "model")
    env = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}
    with host_worker(rscript, tmp_path, env=env) as url:
        for headers in (CSV, dict(CSV, Accept="*/*")):
            response = invoke(url, SAMPLE_ROWS, headers)
            assert response.headers["Content-Type"] == "application/json"
            assert response.json() == {"predictions": ["setosa", "virginica"]}
        assert invoke(url, SAMPLE_ROWS, dict(CSV, Accept="text/csv")).text == "setosa\nvirginica\n"


# --- every error is a JSON {"error": ...} with the right status, and the worker keeps serving ---


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (SAMPLE_ROWS, {"Content-Type": "text/plain"}, 415),
        (SAMPLE_ROWS, {"Content-Type": "image/png"}, 415),
        (SAMPLE_ROWS, dict(CSV, Accept="text/html"), 415),
        ("1,2,3\n", CSV, 400),  # the sample deploy.R: wrong number of features
        ("1,2,3,4\n1,2\n", CSV, 400),  # ragged CSV
        ("", CSV, 400),
        ("{not json", {"Content-Type": "application/json"}, 400),
        ("/etc/passwd", {"Content-Type": "application/json"}, 400),  # never read as a file name
        ("null", {"Content-Type": "application/json"}, 400),
        ("[]", {"Content-Type": "application/json"}, 400),
        ('[1,2,3,4]\n{"a": ', {"Content-Type": "application/jsonlines"}, 400),
        (b"5.1,3.5,\x00,0.2\n", CSV, 400),  # NUL byte
        (b"\xff\xfe,1,2,3\n", CSV, 400),  # not UTF-8
        ("a,b,c,d\n", CSV, 400),  # text where the input prototype has numbers (test_payloads.py)
    ],
)
def test_error_statuses(sample_worker, body, headers, status):
    response = invoke(sample_worker, body, headers)
    assert response.status_code == status, response.text
    assert is_json_error(response), response.text
    assert invoke(sample_worker, SAMPLE_ROWS, CSV).status_code == 200


def test_unknown_route_and_method(sample_worker):
    assert requests.get(f"{sample_worker}/nothing", timeout=10).status_code == 404
    response = requests.get(f"{sample_worker}/invocations", timeout=10)
    assert response.status_code == 405
    assert is_json_error(response)


def test_payload_limits(rscript, tmp_path):
    write_model(tmp_path / "model", ECHO_DEPLOY)
    too_big_realtime = "1\n" * (3 * 1024 * 1024 + 1)  # 6 MB + 2 bytes
    with host_worker(rscript, tmp_path) as url:
        # Exactly 6 MB passes, as it passes nginx (test_serving.py): the two limits agree.
        assert invoke(url, "1\n" * (3 * 1024 * 1024), CSV).status_code == 200
        response = invoke(url, too_big_realtime, CSV)
        assert response.status_code == 413
        assert is_json_error(response)
        assert requests.get(f"{url}/execution-parameters", timeout=10).json()["MaxPayloadInMB"] == 6
    batch = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
    }
    with host_worker(rscript, tmp_path, env=batch) as url:
        response = invoke(url, "1\n" * (600 * 1024), CSV)  # 1.2 MB
        assert response.status_code == 413
        assert is_json_error(response)
        assert invoke(url, "1\n" * 1000, CSV).status_code == 200
        parameters = requests.get(f"{url}/execution-parameters", timeout=10).json()
        assert parameters == {
            "MaxConcurrentTransforms": 1,
            "BatchStrategy": "SINGLE_RECORD",
            "MaxPayloadInMB": 1,
        }


# --- default input/output functions ---


def test_echo_csv_quotes_only_when_needed(echo_worker):
    body = 'a,1.5,x y\n"b,c",2,"say ""hi"""\n'
    response = invoke(echo_worker, body, CSV)
    assert response.status_code == 200, response.text
    assert response.text == 'a,1.5,x y\n"b,c",2,"say ""hi"""\n'


def test_echo_json_shapes(echo_worker):
    response = invoke(
        echo_worker, '[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]', {"Content-Type": "application/json"}
    )
    assert response.json() == {"predictions": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}
    response = invoke(
        echo_worker,
        "[1, 2]\n[3, 4]\n",
        {"Content-Type": "application/jsonlines", "Accept": "application/json"},
    )
    assert response.json() == {"predictions": [{"V1": 1, "V2": 2}, {"V1": 3, "V2": 4}]}
    response = invoke(echo_worker, '{"a": 1}\n{"a": 2}\n', {"Content-Type": "application/x-jsonlines"})
    assert response.headers["Content-Type"] == "application/jsonlines"
    assert [json.loads(line) for line in response.text.splitlines()] == [{"a": 1}, {"a": 2}]


# --- user handlers: context and custom attributes, transform_fn, http_error, failures ---


def test_custom_attributes_round_trip(rscript, tmp_path):
    write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) NULL
        predict_fn <- function(data, model, context) {
          seen <- if (is.null(context$custom_attributes)) "none" else context$custom_attributes
          context$response_custom_attributes <- paste0("seen=", seen)
          nrow(data)
        }
        """,
    )
    with host_worker(rscript, tmp_path) as url:
        response = invoke(url, "1\n2\n", dict(CSV, **{"X-Amzn-SageMaker-Custom-Attributes": "trace=abc"}))
        assert response.status_code == 200, response.text
        assert response.text == "2\n"
        assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "seen=trace=abc"
        assert invoke(url, "1\n", CSV).headers["X-Amzn-SageMaker-Custom-Attributes"] == "seen=none"


def test_transform_fn_takes_any_type(rscript, tmp_path):
    write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) NULL
        transform_fn <- function(model, body, content_type, accept) {
          paste(content_type, accept, toupper(body))
        }
        """,
    )
    with host_worker(rscript, tmp_path) as url:
        response = invoke(url, "hello", {"Content-Type": "text/plain", "Accept": "text/x-shout"})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "text/x-shout"
        assert response.text == "text/plain text/x-shout HELLO"


def test_user_errors(rscript, tmp_path):
    write_model(
        tmp_path / "model",
        """
        predict_fn <- function(data, model) {
          if (data[[1]][1] < 0) http_error(422, "the value must not be negative")
          if (data[[1]][1] == 0) stop("boom in predict_fn")
          data[[1]] * 2
        }
        model_fn <- function(model_dir) NULL
        """,
    )
    with host_worker(rscript, tmp_path) as url:
        response = invoke(url, "-1\n", CSV)
        assert response.status_code == 422
        assert response.json() == {"error": "the value must not be negative"}
        response = invoke(url, "0\n", CSV)
        assert response.status_code == 500
        assert "boom in predict_fn" in response.json()["error"]
        assert invoke(url, "21\n", CSV).text == "42\n"


def test_timeout_answers_504_and_frees_the_worker(rscript, tmp_path):
    write_model(
        tmp_path / "model",
        """
        model_fn <- function(model_dir) NULL
        predict_fn <- function(data, model) { Sys.sleep(data[[1]][1]); "done" }
        """,
    )
    with host_worker(rscript, tmp_path, env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"}) as url:
        response = invoke(url, "5\n", CSV)
        assert response.status_code == 504
        assert response.elapsed.total_seconds() < 3
        assert is_json_error(response)
        assert invoke(url, "0\n", CSV).text == "done\n"


def test_deploy_from_model_code_else_image_code(rscript, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "deploy.R").write_text(
        'model_fn <- function(d) NULL\npredict_fn <- function(x, m) "image"\n'
    )
    write_model(tmp_path / "model", 'model_fn <- function(d) NULL\npredict_fn <- function(x, m) "model"\n')
    with host_worker(rscript, tmp_path) as url:
        assert invoke(url, "1\n", CSV).text == "model\n"
    (tmp_path / "model" / "code" / "deploy.R").unlink()
    with host_worker(rscript, tmp_path) as url:
        assert invoke(url, "1\n", CSV).text == "image\n"


@pytest.mark.parametrize(
    ("deploy", "reason"),
    [
        (
            'model_fn <- function(model_dir) stop("weights are corrupt")\npredict_fn <- function(d, m) 1\n',
            "corrupt",
        ),
        ("predict_fn <- function(d, m) 1\n", "no model.rds"),  # default model_fn, nothing to read
        ("model_fn <- function(model_dir) 1\n", "neither predict_fn nor transform_fn"),
    ],
)
def test_model_that_fails_to_load_exits_non_zero(rscript, tmp_path, deploy, reason):
    write_model(tmp_path / "model", deploy)
    env = {
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "R_LIBS": os.environ["R_LIBS"],  # the package under test (the rscript fixture)
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [rscript, str(TRAINING_DIR / "entrypoint.R"), "serve", "--port", "1"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Model failed to load" in result.stderr
    assert reason in result.stderr


# --- CSV exactness: a double sent and answered back is the same double, bit for bit ---

finite_doubles = st.floats(allow_nan=False, allow_infinity=False)
# The texts clients send: Python's shortest repr, C's %.17g, fixed decimals, a leading + or dot.
double_texts = st.one_of(
    finite_doubles.map(repr),
    finite_doubles.map(lambda x: f"{x:.17g}"),
    st.tuples(st.integers(-(10**12), 10**12), st.integers(0, 9)).map(
        lambda t: f"{t[0] / 10 ** t[1]:.{t[1]}f}"
    ),
    st.floats(0, 1e6, allow_nan=False).map(lambda x: f"+{x!r}"),
    st.floats(0, 1, allow_nan=False, exclude_max=True).map(
        lambda x: repr(x)[1:] if repr(x).startswith("0.") else repr(x)
    ),
)


def bits(x):
    return struct.pack(">d", x).hex()


def significant_digits(text):
    mantissa = text.lower().lstrip("+-").split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0").rstrip("0")) or 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(double_texts, min_size=3, max_size=3), min_size=1, max_size=40))
def test_csv_doubles_come_back_bit_for_bit(echo_worker, rows):
    """The echo model returns what the default input_fn read; the default output_fn writes it back.
    Each field must come back as the shortest text of the double nearest to what was sent (Python's
    float() rounds correctly, its repr is the shortest round trip)."""
    body = "".join(",".join(row) + "\n" for row in rows)
    response = invoke(echo_worker, body, CSV)
    assert response.status_code == 200, response.text
    answered = [line.split(",") for line in response.text.splitlines()]
    for sent, got in zip(rows, answered, strict=True):
        for text, back in zip(sent, got, strict=True):
            assert bits(float(back)) == bits(float(text)), (text, back)
            # no more significant digits than the shortest round trip
            assert significant_digits(back) <= significant_digits(repr(float(text))), (text, back)


def test_csv_doubles_that_r_itself_reads_one_unit_off(echo_worker):
    """Decimals that R's as.numeric and data.table's fread read one unit in the last place off."""
    texts = ["0.00000491", "-6.793921531704187", "1.953134219866258e-220", "0.273660422968", "0.530264605"]
    response = invoke(echo_worker, "\n".join(texts) + "\n", CSV)
    assert response.status_code == 200, response.text
    assert [bits(float(line)) for line in response.text.splitlines()] == [bits(float(t)) for t in texts]
    assert response.text.splitlines() == [repr(float(t)) for t in texts]
