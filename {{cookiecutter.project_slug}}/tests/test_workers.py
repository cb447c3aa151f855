"""The worker model of `docker run IMAGE serve`: N R workers behind nginx, /ping never queued behind
them, the request timeout, a dead worker replaced, and SIGTERM draining the requests in flight."""

import concurrent.futures
import threading
import time

import pytest
import requests
from serving_support import is_json_error, serving_container, write_model

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
        assert len(served.worker_pids()) == int(cpus)


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
        time.sleep(1.5)  # nginx retries a worker that refused a connection after 1 s (fail_timeout)
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


def served_pids_of(served):
    """The worker PIDs named in the logs ("Worker <pid> serving ...")."""
    return {int(line.split()[1]) for line in served.logs().splitlines() if line.startswith("Worker ")}
