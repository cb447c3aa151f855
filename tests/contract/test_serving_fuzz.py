"""Fuzzing /invocations of a running serving container (the sample model) with generated bodies and
headers. Each answer is checked against what the contract says it must be: well-formed rows get 200
with one prediction per row in the negotiated type; an unsupported Content-Type or Accept, a NUL
byte, invalid UTF-8, an empty or unparsable body get their specific 4xx with a JSON error naming the
problem; a body that does not fit the model's input prototype gets a 400 naming the column; a 500
counts only when the model's own handler raised. After every error answer the server
still answers /ping and a valid request, and no worker ever dies."""

import json
import re

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contract.serving_support import SAMPLE_ROWS, is_json_error, serving_container, train_sample_model

SUPPORTED = ("text/csv", "application/json", "application/jsonlines")
ALIASES = {
    "application/x-jsonlines": "application/jsonlines",
    "application/jsonl": "application/jsonlines",
    "text/x-csv": "text/csv",
}
SPECIES = {"setosa", "versicolor", "virginica"}
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
# The fuzzed model's predict_fn wraps the sample one: an error raised inside it (other than the
# handler's own http_error) is tagged, so a 500 without the tag came from the serving plumbing.
HANDLER_TAG = "predict_fn raised:"
WRAPPED_DEPLOY_R = """
sys.source("sample_deploy.R", envir = environment())
sample_predict_fn <- predict_fn
predict_fn <- function(data, model) {
  tryCatch(sample_predict_fn(data, model), error = function(e) {
    if (inherits(e, "http_error")) stop(e)
    stop("HANDLER_TAG ", conditionMessage(e), call. = FALSE)
  })
}
""".replace("HANDLER_TAG", HANDLER_TAG)

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
# Rows of four numbers: what the sample model expects. Tagged with the media type they are
# well-formed in and their row count, so the test knows they must be answered with predictions.
feature_rows = st.lists(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=4, max_size=4),
    min_size=1,
    max_size=5,
)


def well_formed(media, encode):
    return feature_rows.map(lambda rows: (media, len(rows), encode(rows)))


def untagged(strategy):
    return strategy.map(lambda body: (None, 0, body))


bodies = st.one_of(
    well_formed("text/csv", lambda rows: "".join(",".join(map(repr, row)) + "\n" for row in rows)),
    well_formed("application/json", json.dumps),
    well_formed("application/jsonlines", lambda rows: "".join(json.dumps(row) + "\n" for row in rows)),
    untagged(st.binary(max_size=2000)),
    untagged(st.text(max_size=500)),
    untagged(json_values.map(json.dumps)),
    untagged(st.lists(json_values, max_size=5).map(lambda rows: "\n".join(json.dumps(row) for row in rows))),
    untagged(csv_bodies),
    st.just(("text/csv", 2, SAMPLE_ROWS)),
)


# --- what the serving plumbing (serving.R) must answer ------------------------------------------


def r_trim(text):
    return text.strip(" \t\r\n")  # R's trimws()


def media_type(header):
    media = r_trim(header.split(";", 1)[0]).lower()
    return ALIASES.get(media, media)


def negotiated_accept(accept, content_type):
    """The response type serving.R picks (choose_accept), or None when it must answer 415."""
    fallback = media_type(content_type)
    if accept is None or not r_trim(accept):
        return fallback
    entries = accept.split(",")
    if entries[-1] == "":  # R's strsplit() drops one trailing empty piece
        entries.pop()
    for entry in entries:
        media = media_type(entry)
        if media in ("*/*", ""):
            return fallback
        if media in SUPPORTED:
            return media
    return None


def strict_json(text):
    """Parsed JSON, or raises ValueError where a strict parser (jsonlite's yajl) refuses the text."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def parses(text):
    try:
        strict_json(text)
    except ValueError:
        return False
    return True


def error_answers(media, text):
    """The 400 messages (regex prefixes) the default input_fn may give a body of this media type,
    beyond the handler's own answers."""
    if media == "text/csv":
        return ["empty text/csv body$"] if not r_trim(text) else ["malformed text/csv body: ."]
    if media == "application/json":
        return ["malformed application/json body: ."] if not parses(text) else ["expected records"]
    lines = [line for line in re.split(r"\r?\n", text) if r_trim(line)]
    if not lines:
        return ["empty application/jsonlines body$"]
    bad = next((i for i, line in enumerate(lines, 1) if not parses(line)), None)
    if bad is not None:  # an earlier line may fail as a record first
        return [f"malformed application/jsonlines line {bad}: .", "expected records"]
    return ["expected records", "application/jsonlines records differ in shape$"]


# The default input_fn's answers when a request does not fit the model's input prototype (prototype.R).
PROTOTYPE_ERRORS = [
    r"expected 4 columns \(Sepal.Length, Sepal.Width, Petal.Length, Petal.Width\), got \d+$",
    r"missing columns? '(Sepal|Petal).(Length|Width)'",
    r"column '(Sepal|Petal).(Length|Width)' should be number, got (text \(e.g. |boolean \(e.g. |a nested value$)",
]


def check_predictions(response, accept, rows):
    """A 200 answer in the negotiated type: one known species per row (rows=None: any count)."""
    assert response.headers["Content-Type"] == accept, response.headers
    if accept == "application/json":
        predictions = response.json()["predictions"]
    elif accept == "text/csv":
        predictions = [line.strip('"') for line in response.text.splitlines()]
    else:
        predictions = [json.loads(line) for line in response.text.splitlines()]
    assert set(predictions) <= SPECIES, response.text[:300]
    if rows is not None:
        assert len(predictions) == rows, response.text[:300]


def check_answer(response, well_formed_media, rows, body, content_type, accept):
    status, text = response.status_code, response.text
    assert status not in (502, 503, 504), f"a worker failed or hung: {status} {text[:300]}"
    sent_type = "application/json" if content_type is None else content_type
    media = media_type(sent_type)
    if media not in SUPPORTED:
        assert status == 415, (status, text[:300])
        assert is_json_error(response) and response.json()["error"].startswith(
            f"Content-Type '{r_trim(sent_type)}"
        ), text[:300]
        return
    answer_type = negotiated_accept(accept, sent_type)
    if answer_type is None:
        assert status == 415, (status, text[:300])
        error = response.json()["error"]
        assert error.startswith("Accept '") and r_trim(accept) in error, error
        return
    raw = body if isinstance(body, bytes) else body.encode()
    if b"\0" in raw:
        assert (status, response.json()) == (400, {"error": "the body contains NUL bytes"}), text[:300]
        return
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert (status, response.json()) == (400, {"error": "the body is not valid UTF-8"}), text[:300]
        return
    if well_formed_media == media:
        assert status == 200, (status, text[:300])
        check_predictions(response, answer_type, rows)
        return
    if status == 200:
        check_predictions(response, answer_type, None)
        return
    assert is_json_error(response), (status, response.headers, text[:300])
    error = response.json()["error"]
    if status == 500:
        assert error.startswith(f"error in the model code: {HANDLER_TAG}"), error
        return
    assert status == 400, (status, error)
    allowed = [*error_answers(media, decoded), *PROTOTYPE_ERRORS]
    assert any(re.match(pattern, error) for pattern in allowed), (error, allowed)


# --- the server under test ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(docker_client, training_image, rscript, tmp_path_factory):
    model = train_sample_model(rscript, tmp_path_factory.mktemp("fuzz") / "model")
    code = model / "code"
    (code / "deploy.R").rename(code / "sample_deploy.R")
    (code / "deploy.R").write_text(WRAPPED_DEPLOY_R)
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


NESTED = {"Sepal.Length": 1, "Sepal.Width": [1, 2], "Petal.Length": 1, "Petal.Width": 1}


def test_the_oracle_knows_the_contract(server, session):
    """The expectations above, pinned on hand-written cases (so a wrong oracle cannot pass quietly)."""
    cases = [
        (None, 0, "1,2\n", "text/csv", None, 400, "expected 4 columns (Sepal.Length"),
        (None, 0, "{", "application/json", None, 400, "malformed application/json body: "),
        (None, 0, "[[[null]]]", "application/json", None, 400, "expected records"),  # a 3-d array
        # yajl's message quotes the body cut at a byte count, here inside a 4-byte character.
        (None, 0, ":0" + "\x80" * 5 + "\U00010000" * 5, None, None, 400, "malformed application/json body: "),
        (None, 0, "", "application/jsonlines", None, 400, "empty application/jsonlines body"),
        (None, 0, b"5.1,3.5\xff,1.4,0.2\n", "text/csv", None, 400, "the body is not valid UTF-8"),
        (None, 0, SAMPLE_ROWS, "text/plain", None, 415, "Content-Type 'text/plain' is not supported"),
        (None, 0, SAMPLE_ROWS, "text/csv", "application/xml", 415, "Accept 'application/xml' is not"),
        # Text where the model's input prototype has numbers: refused before the model runs.
        (None, 0, "a,b,c,d\n", "text/csv", None, 400, "column 'Sepal.Length' should be number, got text"),
        (None, 0, '[{"Sepal.Length": 1}]', "application/json", None, 400, "missing columns 'Sepal.Width'"),
        (
            None,
            0,
            json.dumps([dict(NESTED)]),
            "application/json",
            None,
            400,
            "column 'Sepal.Width' should be number",
        ),
        ("text/csv", 2, SAMPLE_ROWS, "text/csv", "application/jsonlines", 200, None),
    ]
    for media, rows, body, content_type, accept, status, error in cases:
        headers = {
            **({"Content-Type": content_type} if content_type else {}),
            **({"Accept": accept} if accept else {}),
        }
        wire = body if isinstance(body, bytes) else body.encode()
        response = session.post(f"{server.url}/invocations", data=wire, headers=headers, timeout=30)
        assert response.status_code == status, (body, response.text)
        if error:
            assert response.json()["error"].startswith(error), response.text
        check_answer(response, media, rows, body, content_type, accept)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    content_type=st.none() | header_type,
    accept=st.none() | header_type,
    custom_attributes=st.none() | header_text,
)
def test_invocations_answer_as_the_contract_says(
    server, session, body, content_type, accept, custom_attributes
):
    well_formed_media, rows, payload = body
    headers = {}
    for name, value in [
        ("Content-Type", content_type),
        ("Accept", accept),
        ("X-Amzn-SageMaker-Custom-Attributes", custom_attributes),
    ]:
        if value is not None:
            headers[name] = value
    wire = payload if isinstance(payload, bytes) else payload.encode()  # text goes out as UTF-8
    response = session.post(f"{server.url}/invocations", data=wire, headers=headers, timeout=30)
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics shows the mix of answers
    check_answer(response, well_formed_media, rows, payload, content_type, accept)
    if response.status_code != 200:  # an error answer leaves the server as it was
        assert session.get(f"{server.url}/ping", timeout=5).status_code == 200
        valid = session.post(
            f"{server.url}/invocations", data=SAMPLE_ROWS, headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert (valid.status_code, valid.text) == (200, "setosa\nvirginica\n")
