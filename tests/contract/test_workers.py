"""The worker model of `docker run IMAGE serve`: one R master loads the model once and forks N
workers behind nginx (one copy of the model in memory), /ping never queued behind them and 503 when
none is alive, the request timeout, a dead worker replaced by a new fork without reloading, the
worker count under a memory limit, and SIGTERM draining the requests in flight."""

import concurrent.futures
import re
import subprocess
import threading
import time

import pytest
import requests

from contract.serving_support import is_json_error, serving_container, write_model

CSV = {"Content-Type": "text/csv"}

# predict_fn sleeps the number of seconds in the body, then answers with the worker's PID.
PID_DEPLOY = """
model_fn <- function(model_dir) NULL
predict_fn <- function(data, model) {
  Sys.sleep(as.numeric(data[[1]][1]))
  Sys.getpid()
}
"""


@pytest.fixture()
def pid_model(tmp_path):
    return write_model(tmp_path / "model", PID_DEPLOY)


def sleep_then_pid(url, seconds, timeout=120):
    response = requests.post(f"{url}/invocations", data=f"{seconds}\n", headers=CSV, timeout=timeout)
    assert response.status_code == 200, response.text
    return int(response.text)


def test_n_workers_answer_concurrently(docker_client, training_image, pid_model):
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        assert len(served.worker_pids()) == 3
        served.wait_for_ready_workers(3)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            pids = list(pool.map(lambda _: sleep_then_pid(served.url, 2), range(3)))
        assert len(set(pids)) == 3, pids
        assert set(pids) == served.worker_pids()
        assert time.monotonic() - started < 5, "the three 2 s requests should run side by side"


def test_workers_default_to_the_cpu_count(docker_client, training_image, pid_model):
    with serving_container(docker_client, training_image, pid_model) as served:
        _, cpus = served.exec("nproc")
        served.wait_for_ready_workers(int(cpus))
        assert len(served.worker_pids()) == int(cpus)
        assert f"{int(cpus)} worker(s): {int(cpus)} CPU(s), memory limit" in served.logs()


def test_ping_is_not_delayed_by_a_long_invocation(docker_client, training_image, pid_model):
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        long_call = threading.Thread(target=sleep_then_pid, args=(served.url, 20))
        long_call.start()
        time.sleep(0.5)
        ping_times = []
        while long_call.is_alive():
            started = time.monotonic()
            response = requests.get(f"{served.url}/ping", timeout=5)
            ping_times.append(time.monotonic() - started)
            assert response.status_code == 200
            time.sleep(0.2)
        long_call.join()
        assert len(ping_times) > 40
        assert max(ping_times) < 1, f"slowest /ping took {max(ping_times):.3f} s"


def test_timeout_answers_504_json(docker_client, training_image, pid_model):
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        started = time.monotonic()
        response = requests.post(f"{served.url}/invocations", data="30\n", headers=CSV, timeout=60)
        assert response.status_code == 504
        assert is_json_error(response)
        assert time.monotonic() - started < 6
        sleep_then_pid(served.url, 0)  # the worker is free again


def test_a_killed_worker_is_replaced(docker_client, training_image, pid_model):
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        served.wait_for_ready_workers(2)  # the other worker must be up to take over (/ping needs only one)
        before = served.worker_pids()
        victim = sleep_then_pid(served.url, 0)
        assert victim in before
        code, output = served.exec("sh", "-c", f"kill -9 {victim}")
        assert code == 0, output
        for _ in range(20):  # the server keeps answering, on the other worker meanwhile
            assert sleep_then_pid(served.url, 0) != victim
        deadline = time.monotonic() + 30
        while len(served_pids_of(served)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # until the new worker has loaded the model and said so
        after = served.worker_pids()
        assert len(after) == 2 and victim not in after, (before, after)
        assert after < served_pids_of(served)
        assert f"(pid {victim}) died" in served.logs()
        assert all(parent == served.master_pid() for parent in served.forks().values())
        # nginx retries a worker that refused a connection once fail_timeout (1 s) has passed on its
        # clock, which counts whole seconds: up to 2 s after the last refusal.
        time.sleep(2.5)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pids = set(pool.map(lambda _: sleep_then_pid(served.url, 1), range(2)))
        assert pids == after


def test_sigterm_finishes_the_request_in_flight_then_exits_0(docker_client, training_image, pid_model):
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(sleep_then_pid, served.url, 4)
            time.sleep(1)
            stopped_at = time.monotonic()
            served.container.kill(signal="SIGTERM")
            assert in_flight.result() in served_pids_of(served)  # answered 200 with a worker's PID
        result = served.container.wait(timeout=30)
        elapsed = time.monotonic() - stopped_at
        logs = served.logs()
        assert result["StatusCode"] == 0, logs
        assert elapsed < 10, f"took {elapsed:.1f} s to stop"
        assert "SIGTERM" in logs and "stopped" in logs


def test_one_worker_takes_every_connection_nginx_opens(docker_client, training_image, pid_model):
    """200 requests at once to one worker: nginx opens a connection to it per request in flight, and
    the worker takes them all (it used to accept 64 and close the rest: 502s)."""
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        served.wait_for_ready_workers(1)

        def status(_):
            return requests.post(
                f"{served.url}/invocations", data="0.02\n", headers=CSV, timeout=120
            ).status_code

        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            statuses = list(pool.map(status, range(200)))
        refused = [code for code in statuses if code != 200]
        assert not refused, (f"{len(refused)} of 200 refused: {sorted(set(refused))}", served.logs()[-3000:])


# model_fn takes longer than any test waits: the container is still loading when nginx fails.
LOADING_FOR_EVER_DEPLOY = """
model_fn <- function(model_dir) { message("LOADING THE MODEL"); Sys.sleep(600); "loaded" }
predict_fn <- function(data, model) 1
"""


@pytest.mark.parametrize(
    ("squatter", "reason"),
    [
        # on every address: run.sh sees it before starting nginx
        ("0.0.0.0", "port 8080 is taken by another process"),
        # on 127.0.0.2 only: run.sh's look finds the port free, nginx's bind() on 0.0.0.0 fails
        ("127.0.0.2", "nginx exited at start (status 1)"),
    ],
)
def test_an_nginx_that_cannot_start_stops_the_container_at_once(
    docker_client, training_image, tmp_path, squatter, reason
):
    """Another process holds the port: the container stops with status 1 and the reason within
    seconds, while the model is still loading (run.sh used to notice only once the model had
    loaded, or never if loading hung)."""
    model = write_model(tmp_path / "model", LOADING_FOR_EVER_DEPLOY)
    squat = f"python3 -m http.server 8080 --bind {squatter} >/dev/null 2>&1 & sleep 1; exec /opt/sagemaker/run.sh serve"
    with serving_container(
        docker_client, training_image, model, wait=False, entrypoint=["bash", "-c", squat]
    ) as served:
        started = time.monotonic()
        result = served.container.wait(timeout=60)
        elapsed = time.monotonic() - started
        logs = served.logs()
        assert result["StatusCode"] == 1, logs
        assert reason in logs, logs
        assert elapsed < 15, f"the container took {elapsed:.1f} s to stop: {logs}"


def served_pids_of(served):
    """The worker PIDs named in the logs ("Worker <pid> serving ...")."""
    return {int(line.split()[1]) for line in served.logs().splitlines() if line.startswith("Worker ")}


# --- one model copy, forked ---------------------------------------------------------------------

LOAD_SECONDS = 4
# model_fn takes LOAD_SECONDS and says so; predict_fn answers with the worker's PID, and a request
# whose first value is -1 kills its own worker.
SLOW_LOAD_DEPLOY = """
model_fn <- function(model_dir) {
  message("LOADING THE MODEL")
  Sys.sleep(LOAD_SECONDS)
  "loaded"
}
predict_fn <- function(data, model) {
  if (data[[1]][1] == -1) tools::pskill(Sys.getpid(), tools::SIGKILL)
  Sys.getpid()
}
""".replace("LOAD_SECONDS", str(LOAD_SECONDS))


@pytest.fixture()
def slow_load_model(tmp_path):
    return write_model(tmp_path / "model", SLOW_LOAD_DEPLOY)


def ready_workers(served, count, replaced, timeout=30):
    """Wait until `count` workers are ready and `replaced(pids)` holds; returns their PIDs and the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pids = served.worker_pids()
        _, ready = served.exec("sh", "-c", "ls /tmp/sagemaker-serve/worker-*.ready 2>/dev/null")
        if len(pids) == count and replaced(pids) and len(ready.split()) == count:
            return pids, time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"no new worker within {timeout} s: {served.worker_pids()}, {served.logs()[-2000:]}")


def test_a_dead_worker_is_re_forked_without_loading_the_model_again(
    docker_client, training_image, slow_load_model
):
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with serving_container(docker_client, training_image, slow_load_model, env=env) as served:
        served.wait_for_ready_workers(2)
        before = served.worker_pids()
        killed_at = time.monotonic()
        response = requests.post(f"{served.url}/invocations", data="-1\n", headers=CSV, timeout=30)
        assert response.status_code == 502 and is_json_error(response), response.text  # the worker died
        after, _ = ready_workers(served, 2, lambda pids: len(pids & before) == 1)
        waited = time.monotonic() - killed_at
        assert len(before - after) == 1, (before, after)
        assert waited < LOAD_SECONDS / 2, (
            f"the new worker took {waited:.2f} s (a load takes {LOAD_SECONDS} s)"
        )
        logs = served.logs()
        assert logs.count("LOADING THE MODEL") == 1, logs
        assert "forking a new one (the model stays loaded)" in logs
        assert (
            requests.post(f"{served.url}/invocations", data="1\n", headers=CSV, timeout=30).status_code == 200
        )


def test_ping_is_503_while_no_worker_is_ready_and_200_once_one_is_back(
    docker_client, training_image, pid_model
):
    """/ping follows the workers' ready files. A new fork is ready within milliseconds (it loads
    nothing), too soon to see from outside the gap between a death and the replacement, so the two
    halves are shown apart: without a ready file (moved away here, as the master removes a dead
    worker's), /ping says 503 in JSON, and 200 with it back; a killed worker's replacement writes a
    new one, after the kill, and /ping says 200 again. nginx answers throughout: a poller on fresh
    connections never fails to connect and sees only 200 or 503."""
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with serving_container(docker_client, training_image, pid_model, env=env) as served:
        served.wait_for_ready_workers(1)
        workers = served.worker_pids()
        ready = "/tmp/sagemaker-serve/worker-1.ready"
        code, output = served.exec("sh", "-c", f"mv {ready} {ready}.away")
        assert code == 0, output
        response = requests.get(f"{served.url}/ping", timeout=5)
        assert response.status_code == 503 and is_json_error(response), response.text
        code, output = served.exec("sh", "-c", f"mv {ready}.away {ready}")
        assert code == 0, output
        assert requests.get(f"{served.url}/ping", timeout=5).status_code == 200
        answers, stop = [], threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    answers.append(requests.get(f"{served.url}/ping", timeout=5).status_code)
                except requests.RequestException:
                    answers.append(None)
                time.sleep(0.005)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            code, output = served.exec("sh", "-c", f"date +%s.%N && kill -9 {' '.join(map(str, workers))}")
            assert code == 0, output
            killed_at = float(output.split()[0])
            after, _ = ready_workers(served, 1, lambda pids: not pids & workers)
            time.sleep(0.2)
        finally:
            stop.set()
            poller.join()
        assert answers and set(answers) <= {200, 503}, answers
        assert answers[-1] == 200, answers
        _, written = served.exec("sh", "-c", f"stat -c %.9Y {ready}")
        assert float(written) >= killed_at, (written, killed_at)
        assert requests.get(f"{served.url}/ping", timeout=5).status_code == 200
        assert sleep_then_pid(served.url, 0) in after
        assert "forking a new one (the model stays loaded)" in served.logs()


MODEL_MB = 250
# The default model_fn reads model.rds (MODEL_MB of doubles); one number per row comes back.
ONE_NUMBER_DEPLOY = "predict_fn <- function(data, model) rep(length(model), nrow(data))\n"


@pytest.fixture(scope="module")
def large_model(rscript, tmp_path_factory):
    model = write_model(tmp_path_factory.mktemp("large") / "model", ONE_NUMBER_DEPLOY)
    doubles = MODEL_MB * 1_000_000 // 8
    script = f'saveRDS(runif({doubles}), "{model / "model.rds"}", compress = FALSE)'
    subprocess.run([rscript, "-e", script], check=True, capture_output=True, timeout=300)
    return model


def container_memory_mb(served):
    """The container's memory as `docker stats` shows it: cgroup usage less inactive page cache."""
    probe = (
        "if [ -r /sys/fs/cgroup/memory.current ]; then cat /sys/fs/cgroup/memory.current; "
        "grep '^inactive_file ' /sys/fs/cgroup/memory.stat; else "
        "cat /sys/fs/cgroup/memory/memory.usage_in_bytes; "
        "grep '^total_inactive_file ' /sys/fs/cgroup/memory/memory.stat; fi"
    )
    _, output = served.exec("sh", "-c", probe)
    usage, inactive = (int(n) for n in re.findall(r"\d+", output)[:2])
    return (usage - inactive) / 1e6


def settled_memory_mb(served, workers):
    """Memory once every worker has loaded and answered (each has then run R's GC at least once)."""
    served.wait_for_ready_workers(workers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        answers = list(
            pool.map(
                lambda _: requests.post(
                    f"{served.url}/invocations", data="1,2\n" * 2000, headers=CSV, timeout=60
                ),
                range(workers * 20),
            )
        )
    assert {answer.status_code for answer in answers} == {200}
    time.sleep(1)
    return container_memory_mb(served)


def test_workers_share_one_copy_of_the_model(docker_client, training_image, large_model):
    """With one copy per worker, each worker past the first would add a whole model; forked from the
    master that loaded it, they share it and each adds only its own R heap (R's garbage collector
    writes a mark into every object's header, so a worker ends up with a private copy of the small
    objects' pages: tens of MB, whatever the model's size)."""
    memory = {}
    for workers in (1, 4):
        env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
        with serving_container(docker_client, training_image, large_model, env=env) as served:
            memory[workers] = settled_memory_mb(served, workers)
            assert len(served.worker_pids()) == workers
            assert served.logs().count("Model loaded once") == 1
    print(f"container memory with a {MODEL_MB} MB model: {memory} MB")
    assert memory[1] > MODEL_MB, memory  # the model is in there
    per_extra_worker = (memory[4] - memory[1]) / 3
    assert per_extra_worker < 0.5 * MODEL_MB, memory


def test_the_default_worker_count_fits_the_memory_limit(docker_client, training_image, large_model):
    """2 CPUs, but a 700 MiB limit leaves room for one worker beside the master holding the model:
    one worker, and the figures that chose it in the log. SAGEMAKER_MODEL_SERVER_WORKERS still wins."""
    with serving_container(docker_client, training_image, large_model, mem_limit="700m") as served:
        served.wait_for_ready_workers(1)
        time.sleep(1)
        _, cpus = served.exec("nproc")
        assert int(cpus) >= 2, "the test needs 2 CPUs, so that memory is what limits the count"
        logs = served.logs()
        assert len(served.worker_pids()) == 1, logs
        line = next(line for line in logs.splitlines() if "Model loaded once" in line)
        assert re.search(r"1 worker\(s\): \d+ CPU\(s\), memory limit 700 MB \(cgroup v[12] memory\.", line), (
            line
        )
        assert "256 MB per worker" in line
        assert requests.post(f"{served.url}/invocations", data="1\n", headers=CSV, timeout=30).text == (
            f"{MODEL_MB * 1_000_000 // 8}\n"
        )
        assert (
            requests.get(f"{served.url}/execution-parameters", timeout=10).json()["MaxConcurrentTransforms"]
            == 1
        )
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with serving_container(docker_client, training_image, large_model, env=env, mem_limit="700m") as served:
        served.wait_for_ready_workers(2)
        assert len(served.worker_pids()) == 2
        assert "more than fit in memory" in served.logs()
