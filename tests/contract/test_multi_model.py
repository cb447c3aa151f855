"""Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true): SageMaker's /models API in real containers,
several models with their own handlers, coherent across the workers, under a memory limit; and the
local front end of `make local-serve MULTI_MODEL=1` / `make predict TARGET_MODEL=...`."""

import concurrent.futures
import contextlib
import http.server
import json
import os
import re
import shutil
import struct
import tarfile
import threading
import time
from typing import ClassVar

import pytest
import requests
from conftest import free_port
from rsagemaker_cli.core.errors import SetupError
from rsagemaker_cli.core.project import model_tarballs
from rsagemaker_cli.local import multi_model

from contract.common import copy_project
from contract.serving_support import is_json_error, serving_container, train_sample_model, write_model
from contract.test_local import cli, make, project_containers

CSV = {"Content-Type": "text/csv", "Accept": "text/csv"}
MODELS = "/opt/ml/models"
MB = 1024 * 1024

# Handlers that tell the models apart: each answers with its own marker, and the worker's PID.
MARKED_DEPLOY = """
model_fn <- function(model_dir) readLines(file.path(model_dir, "marker.txt"))
predict_fn <- function(data, model) data.frame(model = model, rows = nrow(data), pid = Sys.getpid())
"""
# The size of the model (a vector of doubles in model.rds, read by the default model_fn).
LENGTH_DEPLOY = """
predict_fn <- function(data, model) length(model)
"""
BROKEN_DEPLOY = """
model_fn <- function(model_dir) stop("model.rds is corrupt")
predict_fn <- function(data, model) 1
"""


def marked_model(folder, marker):
    model = write_model(folder, MARKED_DEPLOY)
    (model / "marker.txt").write_text(f"{marker}\n")
    return model


def write_rds_doubles(path, megabytes):
    """model.rds holding `megabytes` MB of doubles (random bytes: no compression shrinks them),
    written without R: R's uncompressed serialization format 2 (XDR), which readRDS reads."""
    count = megabytes * MB // 8
    with open(path, "wb") as rds:
        rds.write(b"X\n" + struct.pack(">iii", 2, 0x040202, 0x020300) + struct.pack(">ii", 14, count))
        rds.writelines(os.urandom(MB) for _ in range(megabytes))


@contextlib.contextmanager
def multi_model_container(docker_client, image, models_dir, workers=1, env=None, **run_options):
    """`IMAGE serve` as a multi-model endpoint: models_dir at /opt/ml/models (read-only), no model."""
    environment = {
        "SAGEMAKER_MULTI_MODEL": "true",
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        **(env or {}),
    }
    with serving_container(
        docker_client, image, models_dir, env=environment, mount_at=MODELS, **run_options
    ) as served:
        served.wait_for_ready_workers(workers)
        yield served


def load(url, name, folder=None):
    body = {"model_name": name, "url": f"{MODELS}/{folder or name}"}
    return requests.post(f"{url}/models", json=body, timeout=120)


def invoke(url, name, body="1\n"):
    return requests.post(f"{url}/models/{name}/invoke", data=body, headers=CSV, timeout=60)


def marked_answer(response):
    """(marker, rows, pid) of a MARKED_DEPLOY answer."""
    assert response.status_code == 200, response.text
    model, rows, pid = response.text.strip().split(",")
    return model.strip('"'), int(rows), int(pid)


# Sends one request to one worker's unix socket from inside the container, past nginx.
WORKER_REQUEST = """
import http.client, socket, sys
class Worker(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
worker = Worker("localhost")
worker.request(sys.argv[2], sys.argv[3], body=sys.argv[4].encode(), headers={"Content-Type": "text/csv"})
answer = worker.getresponse()
print(answer.status, answer.read().decode().strip())
"""


def worker_sockets(served):
    _, out = served.exec("sh", "-c", "ls /tmp/sagemaker-serve/*.sock")
    return out.split()


def ask_worker(served, socket_path, method, path, body=""):
    code, out = served.exec("python3", "-c", WORKER_REQUEST, socket_path, method, path, body)
    assert code == 0, out
    status, _, text = out.strip().partition(" ")
    return int(status), text


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    marked_model(models / "alpha", "alpha")
    marked_model(models / "beta", "beta")
    write_model(models / "broken", BROKEN_DEPLOY)
    return models


@pytest.fixture(scope="module")
def endpoint(docker_client, training_image, two_models):
    with multi_model_container(docker_client, training_image, two_models, workers=2) as served:
        yield served


def test_the_image_says_it_serves_multi_model_endpoints(docker_client, training_image):
    labels = docker_client.images.get(training_image).labels
    assert labels.get("com.amazonaws.sagemaker.capabilities.multi-models") == "true"


def test_ping_is_200_before_any_model_is_loaded(docker_client, training_image, tmp_path):
    with multi_model_container(docker_client, training_image, tmp_path) as served:
        assert requests.get(f"{served.url}/ping", timeout=5).status_code == 200
        assert requests.get(f"{served.url}/models", timeout=5).json() == {"models": []}
        single = requests.post(f"{served.url}/invocations", data="1\n", headers=CSV, timeout=5)
        assert single.status_code == 404 and is_json_error(single)
        assert "/models/<name>/invoke" in single.json()["error"]


def test_two_models_with_their_own_handlers_answer_side_by_side(endpoint):
    for name in ("alpha", "beta"):
        loaded = load(endpoint.url, name)
        assert loaded.status_code == 200, loaded.text
    calls = [("alpha", "1\n2\n"), ("beta", "1\n"), ("alpha", "5\n"), ("beta", "1\n2\n3\n")] * 5
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda call: marked_answer(invoke(endpoint.url, *call)), calls))
    for (name, body), (marker, rows, _) in zip(calls, answers):
        assert (marker, rows) == (name, len(body.splitlines()))
    listed = requests.get(f"{endpoint.url}/models", timeout=5).json()["models"]
    assert {"modelName": "alpha", "modelUrl": f"{MODELS}/alpha"} in listed
    assert requests.get(f"{endpoint.url}/models/beta", timeout=5).json() == {
        "modelName": "beta",
        "modelUrl": f"{MODELS}/beta",
    }


def test_a_second_load_is_409_and_unknown_models_are_404(endpoint):
    assert load(endpoint.url, "alpha").status_code in (200, 409)  # loaded by the test before, or now
    again = load(endpoint.url, "alpha", folder="beta")
    assert again.status_code == 409 and is_json_error(again)
    assert marked_answer(invoke(endpoint.url, "alpha"))[0] == "alpha"  # the first load still serves
    for method, path in (
        ("GET", "/models/nope"),
        ("DELETE", "/models/nope"),
        ("POST", "/models/nope/invoke"),
    ):
        response = requests.request(method, f"{endpoint.url}{path}", data="1\n", headers=CSV, timeout=5)
        assert response.status_code == 404, (method, path, response.text)
        assert is_json_error(response) and "model nope is not loaded" in response.json()["error"]
    missing = load(endpoint.url, "ghost")
    assert missing.status_code == 404 and is_json_error(missing)


def test_unload_then_load_again(endpoint):
    assert load(endpoint.url, "gamma", folder="alpha").status_code == 200
    assert marked_answer(invoke(endpoint.url, "gamma"))[0] == "alpha"
    assert requests.delete(f"{endpoint.url}/models/gamma", timeout=5).status_code == 200
    assert invoke(endpoint.url, "gamma").status_code == 404
    assert requests.delete(f"{endpoint.url}/models/gamma", timeout=5).status_code == 404
    # the name again, from another directory: the new model answers, on every worker
    assert load(endpoint.url, "gamma", folder="beta").status_code == 200
    assert marked_answer(invoke(endpoint.url, "gamma"))[0] == "beta"
    for socket_path in worker_sockets(endpoint):
        status, text = ask_worker(endpoint, socket_path, "POST", "/models/gamma/invoke", "1\n")
        assert status == 200 and text.startswith("beta,"), (socket_path, text)


def test_a_model_that_fails_to_load_answers_json_and_the_others_keep_serving(endpoint):
    load(endpoint.url, "alpha")
    failed = load(endpoint.url, "broken")
    assert failed.status_code == 500 and is_json_error(failed)
    assert "model broken failed to load: model.rds is corrupt" in failed.json()["error"]
    assert requests.get(f"{endpoint.url}/models/broken", timeout=5).status_code == 404
    assert marked_answer(invoke(endpoint.url, "alpha"))[0] == "alpha"
    assert requests.get(f"{endpoint.url}/ping", timeout=5).status_code == 200
    assert "model.rds is corrupt" in endpoint.logs()
    endpoint.container.reload()
    assert endpoint.container.status == "running"


def test_every_worker_sees_a_load_and_an_unload_at_once(endpoint):
    sockets = worker_sockets(endpoint)
    assert len(sockets) == 2
    assert load(endpoint.url, "shared", folder="alpha").status_code == 200
    pids = set()
    for socket_path in sockets:  # past nginx: each worker, whether or not it loaded the model
        status, text = ask_worker(endpoint, socket_path, "POST", "/models/shared/invoke", "1\n")
        assert status == 200, text
        pids.add(int(text.split(",")[-1]))
        status, _ = ask_worker(
            endpoint,
            socket_path,
            "POST",
            "/models",
            json.dumps({"model_name": "shared", "url": f"{MODELS}/beta"}),
        )
        assert status == 409
    assert pids == endpoint.worker_pids()  # two processes answered, both with the model
    assert requests.delete(f"{endpoint.url}/models/shared", timeout=5).status_code == 200
    for socket_path in sockets:
        assert ask_worker(endpoint, socket_path, "POST", "/models/shared/invoke", "1\n")[0] == 404
        assert ask_worker(endpoint, socket_path, "GET", "/models/shared")[0] == 404


def test_one_load_wins_when_workers_race(endpoint):
    body = {"model_name": "raced", "url": f"{MODELS}/alpha"}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda _: requests.post(f"{endpoint.url}/models", json=body, timeout=60).status_code, range(8)
            )
        )
    assert sorted(statuses) == [200] + [409] * 7, statuses


def test_a_model_lives_in_one_worker_and_models_spread_over_workers(
    docker_client, training_image, two_models
):
    with multi_model_container(docker_client, training_image, two_models, workers=3) as served:
        names = [f"spread-{i}" for i in range(8)]
        for name in names:
            assert load(served.url, name, folder="alpha").status_code == 200
        owners = {}
        for name in names * 4:
            owners.setdefault(name, set()).add(marked_answer(invoke(served.url, name))[2])
        assert all(len(pids) == 1 for pids in owners.values()), owners  # one copy of each model
        assert len(set().union(*owners.values())) >= 2, owners  # spread over the workers
        for name in names:  # loaded once: by the worker the load went to, which is its owner
            assert len(re.findall(rf"loaded model {name} from", served.logs())) == 1, served.logs()


def test_get_models_pages_with_max_results_and_next_page_token(docker_client, training_image, two_models):
    with multi_model_container(docker_client, training_image, two_models) as served:
        names = [f"page-{i}" for i in range(7)]
        for name in reversed(names):
            assert load(served.url, name, folder="beta").status_code == 200
        seen, token, pages = [], None, 0
        while True:
            params = {"max_results": 3, **({"next_page_token": token} if token else {})}
            page = requests.get(f"{served.url}/models", params=params, timeout=5).json()
            seen += [model["modelName"] for model in page["models"]]
            pages += 1
            token = page.get("nextPageToken")
            if not token:
                break
        assert (seen, pages) == (names, 3)
        assert requests.get(f"{served.url}/models", params={"max_results": "x"}, timeout=5).status_code == 400


def container_memory_used(served):
    """The container's memory in use, page cache left out (cgroup v2 or v1), in bytes."""
    script = (
        "if [ -f /sys/fs/cgroup/memory.current ]; then"
        " echo $(cat /sys/fs/cgroup/memory.current) $(sed -n 's/^file //p' /sys/fs/cgroup/memory.stat);"
        " else echo $(cat /sys/fs/cgroup/memory/memory.usage_in_bytes)"
        " $(sed -n 's/^total_cache //p' /sys/fs/cgroup/memory/memory.stat); fi"
    )
    _, out = served.exec("sh", "-c", script)
    used, cache = (int(value) for value in out.split())
    return used - cache


def test_under_a_memory_limit_the_least_recently_used_go_and_a_model_too_big_is_507(
    docker_client, training_image, tmp_path
):
    limit_mb, model_mb = 400, 80  # budget: 400 MB - 64 MB margin; ~60 MB for nginx and the worker
    for name in ("m1", "m2", "m3", "m4"):
        write_model(tmp_path / name, LENGTH_DEPLOY)
        write_rds_doubles(tmp_path / name / "model.rds", model_mb)
    write_model(tmp_path / "huge", LENGTH_DEPLOY)
    write_rds_doubles(tmp_path / "huge" / "model.rds", 500)
    length = model_mb * MB // 8
    budget = (limit_mb - 64) * MB
    with multi_model_container(docker_client, training_image, tmp_path, mem_limit=f"{limit_mb}m") as served:
        for name in ("m1", "m2", "m3", "m4"):  # 320 MB of models: the fourth does not fit beside the others
            loaded = load(served.url, name)
            assert loaded.status_code == 200, loaded.text
            assert container_memory_used(served) <= budget
        assert "freed model m1 (80 MB, least recently used" in served.logs()
        listed = requests.get(f"{served.url}/models", timeout=5).json()["models"]
        assert [model["modelName"] for model in listed] == ["m1", "m2", "m3", "m4"]  # all still loaded
        for name in ("m1", "m4", "m2"):  # a freed one is read again on its next invoke
            answer = invoke(served.url, name)
            assert (answer.status_code, answer.text.strip()) == (200, str(length)), answer.text
            assert container_memory_used(served) <= budget
        too_big = load(served.url, "huge")
        assert too_big.status_code == 507 and is_json_error(too_big)
        assert "not enough memory for model huge" in too_big.json()["error"]
        assert requests.get(f"{served.url}/models/huge", timeout=5).status_code == 404
        assert invoke(served.url, "m2").text.strip() == str(length)  # the others keep serving
        served.container.reload()
        assert served.container.attrs["State"]["OOMKilled"] is False
        assert served.container.status == "running"


def owners_of(served, names, models_dir):
    """The worker PID each model id is routed to (nginx's hash), found by loading a marked model
    under each id and asking it; the probes are unloaded again."""
    owners = {}
    for name in names:
        marked_model(models_dir / name / "model", name)
        assert load(served.url, name, folder=f"{name}/model").status_code == 200
        owners[name] = marked_answer(invoke(served.url, name))[2]
        assert requests.delete(f"{served.url}/models/{name}", timeout=5).status_code == 200
        shutil.rmtree(models_dir / name)
    return owners


def test_a_507_from_one_worker_is_resolved_by_unloading_on_another_as_sagemaker_does(
    docker_client, training_image, tmp_path, capsys
):
    """Two workers: the models of one fill the memory, a load on the other answers 507; the front end
    (as SageMaker) unloads the least recently used model, whose worker frees it, and loads again."""
    local_models = tmp_path / multi_model.LOCAL_MODELS_DIR
    local_models.mkdir(parents=True)
    limit_mb, model_mb = 450, 110  # budget 386 MB; ~100 MB for nginx and two workers
    with multi_model_container(
        docker_client, training_image, local_models, workers=2, mem_limit=f"{limit_mb}m"
    ) as served:
        names = [f"model-{i}.tar.gz" for i in range(16)]
        owners = owners_of(served, [multi_model.model_id(name) for name in names], local_models)
        by_worker = {}
        for name in names:
            by_worker.setdefault(owners[multi_model.model_id(name)], []).append(name)
        assert len(by_worker) == 2, by_worker  # 16 names spread over both workers
        crowded, other = sorted(by_worker.values(), key=len, reverse=True)
        first, second, third = crowded[0], crowded[1], other[0]  # first and second share a worker
        (tmp_path / multi_model.MODELS_DIR).mkdir(parents=True)
        for name in (first, second, third):
            content = tmp_path / "content" / name
            write_model(content, LENGTH_DEPLOY)
            write_rds_doubles(content / "model.rds", model_mb)
            # an uncompressed tar (gzip cannot shrink random doubles), read as SageMaker reads any tarball
            with tarfile.open(tmp_path / multi_model.MODELS_DIR / name, "w") as archive:
                for path in sorted(content.iterdir()):
                    archive.add(path, arcname=path.name)
            shutil.rmtree(content)
        length = str(model_mb * MB // 8)
        for name in (first, second):  # 220 MB in one worker: the third does not fit beside them
            answer = multi_model.predict(tmp_path, served.url, name, b"1\n", "text/csv", "text/csv")
            assert (answer.status_code, answer.text.strip()) == (200, length), answer.text
        capsys.readouterr()
        answer = multi_model.predict(tmp_path, served.url, third, b"1\n", "text/csv", "text/csv")
        assert (answer.status_code, answer.text.strip()) == (200, length), answer.text
        out = capsys.readouterr().out
        first_id = multi_model.model_id(first)
        assert f"507 (out of memory): unloaded model {first_id}, the least recently used" in out
        assert out.count("507") == 1, out  # the unload freed the memory at once: one retry was enough
        loaded = multi_model.loaded_ids(served.url)
        assert sorted(loaded) == sorted(multi_model.model_id(name) for name in (second, third))
        assert container_memory_used(served) <= (limit_mb - 64) * MB
        assert f"freed model {first_id} ({model_mb} MB, unloaded)" in served.logs()
        served.container.reload()
        assert served.container.attrs["State"]["OOMKilled"] is False


# --- the local front end (rsagemaker_cli.local.multi_model), as SageMaker's -------------------------------


class FakeMultiModelServer(http.server.BaseHTTPRequestHandler):
    """A container whose memory holds one model: a load beside another answers 507."""

    loaded: ClassVar[list] = []
    requests_seen: ClassVar[list] = []

    def answer(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.requests_seen.append(("GET", self.path))
        if self.path.startswith("/models?") or self.path == "/models":
            self.answer(200, {"models": [{"modelName": name, "modelUrl": "u"} for name in self.loaded]})
        else:
            name = self.path.split("/")[2]
            self.answer(200 if name in self.loaded else 404, {"modelName": name})

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests_seen.append(("POST", self.path, self.headers.get("X-Amzn-SageMaker-Target-Model")))
        if self.path == "/models":
            name = json.loads(body)["model_name"]
            if self.loaded:
                return self.answer(507, {"error": "no memory"})
            self.loaded.append(name)
            return self.answer(200, {"status": "loaded"})
        self.answer(200, {"served": self.path.split("/")[2]})

    def do_DELETE(self):
        self.requests_seen.append(("DELETE", self.path))
        self.loaded.remove(self.path.split("/")[2])
        self.answer(200, {})

    def log_message(self, *args):
        pass


def test_the_local_front_end_unpacks_loads_unloads_on_507_and_invokes(tmp_path):
    for name in ("a.tar.gz", "b.tar.gz"):
        (tmp_path / "content").mkdir(exist_ok=True)
        (tmp_path / "content" / "model.rds").write_text(name)
        (tmp_path / multi_model.MODELS_DIR).mkdir(parents=True, exist_ok=True)
        with tarfile.open(tmp_path / multi_model.MODELS_DIR / name, "w:gz") as archive:
            archive.add(tmp_path / "content" / "model.rds", arcname="model.rds")
    (tmp_path / multi_model.LOCAL_MODELS_DIR).mkdir(parents=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMultiModelServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        first = multi_model.predict(tmp_path, url, "a.tar.gz", b"1\n", "text/csv", "text/csv")
        a_id, b_id = multi_model.model_id("a.tar.gz"), multi_model.model_id("b.tar.gz")
        assert first.json() == {"served": a_id}
        unpacked = tmp_path / multi_model.LOCAL_MODELS_DIR / a_id / "model" / "model.rds"
        assert unpacked.read_text() == "a.tar.gz"
        time.sleep(0.01)
        FakeMultiModelServer.requests_seen.clear()
        second = multi_model.predict(tmp_path, url, "b.tar.gz", b"1\n", "text/csv", "text/csv")
        assert second.json() == {"served": b_id}
        seen = FakeMultiModelServer.requests_seen
        assert ("DELETE", f"/models/{a_id}") in seen  # the 507 made room, as SageMaker does
        assert [r for r in seen if r[0] == "POST"] == [
            ("POST", "/models", None),
            ("POST", "/models", None),
            ("POST", f"/models/{b_id}/invoke", "b.tar.gz"),
        ]
        assert FakeMultiModelServer.loaded == [b_id]
    finally:
        server.shutdown()
    with pytest.raises(SetupError, match="no model c.tar.gz in build/models/"):
        multi_model.check_target(tmp_path, "c.tar.gz")


def test_the_models_are_the_tarballs_of_build_models(tmp_path, capsys):
    with pytest.raises(SetupError, match="no model in build/models/: put model.tar.gz files there"):
        model_tarballs(tmp_path)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "model.tar.gz").write_bytes(b"trained")  # what make local-train leaves
    assert model_tarballs(tmp_path) == [tmp_path / multi_model.MODELS_DIR / "model.tar.gz"]
    assert "Copied build/model.tar.gz to build/models/model.tar.gz" in capsys.readouterr().out
    (tmp_path / multi_model.MODELS_DIR / "b.tar.gz").write_bytes(b"b")
    assert [path.name for path in model_tarballs(tmp_path)] == ["b.tar.gz", "model.tar.gz"]


@pytest.fixture(scope="module")
def iris_tarball(rscript, tmp_path_factory):
    """model.tar.gz of the project's own model (code/train.R on data/train, with code/deploy.R)."""
    model = train_sample_model(rscript, tmp_path_factory.mktemp("iris") / "model")
    tarball = model.parent / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(model.iterdir()):
            archive.add(path, arcname=path.name)
    return tarball


# The second model of the local test: the same rpart fit, with handlers of its own.
PROBABILITY_DEPLOY = """
library(rpart)
predict_fn <- function(data, model) {
  names(data) <- model$features
  round(predict(model$fit, newdata = data, type = "prob")[, "setosa"], 2)
}
"""


def test_make_local_serve_multi_model_and_predict_target_model(
    docker_client, training_image, iris_tarball, tmp_path
):
    project = copy_project(tmp_path)
    models = project / multi_model.MODELS_DIR
    models.mkdir(parents=True)
    shutil.copy(iris_tarball, models / "iris.tar.gz")
    unpacked = tmp_path / "iris-prob"
    with tarfile.open(iris_tarball) as archive:
        archive.extractall(unpacked, filter="data")
    (unpacked / "code" / "deploy.R").write_text(PROBABILITY_DEPLOY)
    with tarfile.open(models / "iris-prob.tar.gz", "w:gz") as archive:
        for path in sorted(unpacked.iterdir()):
            archive.add(path, arcname=path.name)
    port = free_port()
    try:
        served = make(project, "local-serve", TRAINING_IMAGE=training_image, PORT=port, MULTI_MODEL=1)
        assert served.returncode == 0, served.stdout + served.stderr
        assert "make predict TARGET_MODEL=iris-prob.tar.gz" in served.stdout
        [container] = project_containers(docker_client, project)
        mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == MODELS)
        assert mount["RW"] is False
        assert requests.get(f"http://127.0.0.1:{port}/models", timeout=5).json() == {"models": []}

        classes = make(project, "predict", TARGET_MODEL="iris.tar.gz")
        assert classes.returncode == 0, classes.stdout + classes.stderr
        assert "==> Loaded iris.tar.gz as model" in classes.stdout
        answer = [line.strip('"') for line in classes.stdout.split("==> 200 text/csv:\n")[1].splitlines()[:5]]
        assert set(answer) <= {"setosa", "versicolor", "virginica"} and len(set(answer)) >= 2, classes.stdout
        probabilities = make(project, "predict", TARGET_MODEL="iris-prob.tar.gz")
        assert probabilities.returncode == 0, probabilities.stdout + probabilities.stderr
        values = probabilities.stdout.split("==> 200 text/csv:\n")[1].splitlines()[:5]
        assert all(0 <= float(value) <= 1 for value in values), probabilities.stdout
        again = make(project, "predict", TARGET_MODEL="iris.tar.gz")
        assert again.returncode == 0 and "==> Loaded" not in again.stdout  # loaded already
        listed = requests.get(f"http://127.0.0.1:{port}/models", timeout=5).json()["models"]
        assert len(listed) == 2
        unnamed = make(project, "predict")
        assert (
            unnamed.returncode == 2
            and "TARGET_MODEL=<one of: iris-prob.tar.gz, iris.tar.gz>" in unnamed.stderr
        )
    finally:
        stopped = make(project, "local-stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "no local endpoint" in cli(project, "predict").stderr
