"""Fuzzing /invocations of a running serving container (the sample model) with generated bodies and
headers: every answer is a 2xx or a 4xx/5xx JSON error, no worker ever dies, and /ping stays 200."""

import json

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from serving_support import SAMPLE_ROWS, is_json_error, serving_container, train_sample_model

TYPES = [
    "text/csv",
    "application/json",
    "application/jsonlines",
    "application/x-jsonlines",
    "text/csv; charset=utf-8",
    "application/json;q=0.5",
    "*/*",
    "text/plain",
    "application/octet-stream",
    "",
]
# Header values requests can send: printable ASCII, no line breaks, no leading space.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200).map(str.lstrip)
header_type = st.one_of(st.sampled_from(TYPES), st.sampled_from(TYPES), header_text)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=30,
)
csv_cells = st.one_of(st.floats(allow_nan=True).map(repr), st.integers().map(str), st.text(max_size=10))
csv_bodies = st.lists(st.lists(csv_cells, min_size=1, max_size=6), max_size=8).map(
    lambda rows: "".join(",".join(row) + "\n" for row in rows)
)
# Rows of four numbers: what the sample model expects, so many requests reach predict_fn.
feature_rows = st.lists(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=4, max_size=4),
    min_size=1,
    max_size=5,
)
bodies = st.one_of(
    feature_rows.map(lambda rows: "".join(",".join(map(repr, row)) + "\n" for row in rows)),
    feature_rows.map(json.dumps),
    feature_rows.map(lambda rows: "".join(json.dumps(row) + "\n" for row in rows)),
    st.binary(max_size=2000),
    st.text(max_size=500),
    json_values.map(json.dumps),
    st.lists(json_values, max_size=5).map(lambda rows: "\n".join(json.dumps(row) for row in rows)),
    csv_bodies,
    st.just(SAMPLE_ROWS),
)


@pytest.fixture(scope="module")
def server(docker_client, training_image, rscript, tmp_path_factory):
    model = train_sample_model(rscript, tmp_path_factory.mktemp("fuzz") / "model")
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with serving_container(docker_client, training_image, model, env=env) as served:
        workers = served.worker_pids()
        assert len(workers) == 2
        yield served
        assert served.worker_pids() == workers, "a worker died during the fuzzing"
        assert "died" not in served.logs()
        assert requests.get(f"{served.url}/ping", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def session():
    with requests.Session() as keep_alive:
        yield keep_alive


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    content_type=st.none() | header_type,
    accept=st.none() | header_type,
    custom_attributes=st.none() | header_text,
)
def test_invocations_always_answer_2xx_or_a_json_error(
    server, session, body, content_type, accept, custom_attributes
):
    headers = {}
    for name, value in [
        ("Content-Type", content_type),
        ("Accept", accept),
        ("X-Amzn-SageMaker-Custom-Attributes", custom_attributes),
    ]:
        if value is not None:
            headers[name] = value
    response = session.post(f"{server.url}/invocations", data=body, headers=headers, timeout=30)
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics shows the mix of answers
    if 200 <= response.status_code < 300:
        return
    assert 400 <= response.status_code < 600, response.status_code
    assert response.status_code not in (502, 503), f"a worker failed: {response.text}"
    assert is_json_error(response), (response.status_code, response.headers, response.text[:300])
