"""The measuring of `rsagemaker bench` (and of the template's bench/compare.py): a serving container
on 127.0.0.1, wrk over keep-alive connections (wrk-report.lua, shipped with the package), large
bodies, the container's and its R processes' memory, image sizes. Nothing here knows a project.
"""

import datetime
import math
import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import docker
import requests

from ..core.errors import ToolError
from ..core.net import free_port

WRK_SCRIPT = files("rsagemaker_cli") / "wrk-report.lua"
NOT_MEASURED = "-"


class BenchError(ToolError):
    """Something stopped the benchmark."""


@dataclass
class Load:
    """One wrk run: closed-loop keep-alive connections, latencies of completed requests."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors, timeouts and non-2xx/3xx answers


def log(message):
    print(f"bench: {message}", flush=True)


def fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED
    return f"{value:.{digits}f}"


def load_average():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_line(client):
    def first(path, prefix):
        lines = Path(path).read_text().splitlines() if Path(path).exists() else []
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(prefix)), "unknown")

    memory = first("/proc/meminfo", "MemTotal")
    if memory != "unknown":
        memory = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB"
    # The first component is the engine itself (e.g. "Podman Engine 4.3.1", "Engine 27.1.1").
    component = (client.version().get("Components") or [{"Name": "engine", "Version": "?"}])[0]
    engine_name = f"{component['Name']} {component['Version'].splitlines()[0]}"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = first("/proc/cpuinfo", "model name")
    return f"nproc {os.cpu_count()}, CPU {cpu}, memory {memory}, engine {engine_name}, date {date}"


# --- the server ---------------------------------------------------------------------------------


# Each R serving process: PID, parent PID, private and resident memory (kB, /proc/PID/smaps_rollup).
PROCESS_PROBE = r"""
for d in /proc/[0-9]*; do
  case "$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)" in
    *exec/[R]" "*entrypoint.R*" serve"*) # [R]: not this shell, whose command line holds the pattern
      echo "${d#/proc/} $(awk '/^PPid:/ {print $2}' "$d/status")" \
        "$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s + 0}' "$d/smaps_rollup")" \
        "$(awk '/^Rss:/ {print $2}' "$d/smaps_rollup")" ;;
  esac
done
"""


class Server:
    """`IMAGE serve` with the model read-only on /opt/ml/model and the port on 127.0.0.1.

    cold_start_s runs from just before the container is created to the first 200 on /ping; engine_s
    to when create + start returned; first_answer_s to the first HTTP answer (nginx says 503 until a
    worker is ready). labels: the container's (`make local-stop` finds a project's by them).
    """

    def __init__(self, client, image, model_dir, code_dir=None, workers=None, environment=None, labels=None):
        port = free_port()
        volumes = {str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}}
        if code_dir:
            volumes[str(code_dir)] = {"bind": "/opt/ml/model/code", "mode": "ro"}
        environment = dict(environment or {})
        if workers:
            environment["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
        self.url = f"http://127.0.0.1:{port}"
        self.workers = workers
        started = time.monotonic()
        self.container = client.containers.run(
            image,
            ["serve"],
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", port)},
            volumes=volumes,
            environment=environment,
            labels=labels or {},
        )
        self.engine_s = time.monotonic() - started
        self.first_answer_s = None
        try:
            self.cold_start_s = self._wait_for_ping(started)
        except BaseException:
            self.stop()
            raise

    def _wait_for_ping(self, started, timeout_s=180):
        next_check = started + 1
        while time.monotonic() - started < timeout_s:
            try:
                status = requests.get(f"{self.url}/ping", timeout=1).status_code
                if self.first_answer_s is None:
                    self.first_answer_s = time.monotonic() - started
                if status == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            if time.monotonic() > next_check:
                self.container.reload()
                if self.container.status not in ("created", "running"):
                    logs = self.container.logs().decode(errors="replace")
                    raise BenchError(f"the server exited before answering /ping:\n{logs[-3000:]}")
                next_check = time.monotonic() + 1
            time.sleep(0.01)
        raise BenchError(f"no 200 on {self.url}/ping within {timeout_s} s")

    def wait_for_workers(self, count, timeout_s=180):
        """/ping is 200 once one worker is ready; each worker creates worker-<i>.ready in the run
        directory once it listens (rsagemaker's server.R)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.container.exec_run(
                ["sh", "-c", "ls /tmp/sagemaker-serve/worker-*.ready 2>/dev/null"]
            )
            if len(found.output.split()) >= count:
                return
            time.sleep(0.1)
        raise BenchError(f"fewer than {count} workers became ready within {timeout_s} s")

    def memory_bytes(self):
        """The container's memory as `docker stats` shows it: the cgroup's usage less inactive page
        cache (files read once, e.g. model.rds, which the kernel drops first). Read in the cgroup
        files (v2, else v1), which every engine has, else from the engine's stats."""
        probe = (
            "if [ -r /sys/fs/cgroup/memory.current ]; then cat /sys/fs/cgroup/memory.current; "
            "grep '^inactive_file ' /sys/fs/cgroup/memory.stat; else "
            "cat /sys/fs/cgroup/memory/memory.usage_in_bytes; "
            "grep '^total_inactive_file ' /sys/fs/cgroup/memory/memory.stat; fi"
        )
        numbers = [
            int(n) for n in re.findall(r"\d+", self.container.exec_run(["sh", "-c", probe]).output.decode())
        ]
        if numbers:
            return numbers[0] - (numbers[1] if len(numbers) > 1 else 0)
        return self.container.stats(stream=False)["memory_stats"]["usage"]

    def process_memory(self):
        """(the master's resident MB, the mean private MB of its workers) of the R serving processes
        (`entrypoint.R serve`): the master loaded the model; the workers are its forks, sharing it."""
        found = self.container.exec_run(["sh", "-c", PROCESS_PROBE]).output.decode().split("\n")
        processes = {}
        for line in found:
            fields = line.split()
            if len(fields) == 4 and all(field.isdigit() for field in fields):
                pid, parent, private_kb, resident_kb = map(int, fields)
                processes[pid] = (parent, private_kb / 1000, resident_kb / 1000)
        masters = [info for pid, info in processes.items() if info[0] not in processes]
        workers = [info for pid, info in processes.items() if info[0] in processes]
        master = masters[0][2] if len(masters) == 1 else None
        private = statistics.mean(info[1] for info in workers) if workers else None
        return master, private

    def stop(self):
        self.container.remove(force=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_wrk(url, connections, duration_s, body, workdir, content_type="text/csv", path="/invocations"):
    """wrk on POST `path` with `body` (GET without one): keep-alive connections, closed loop
    (wrk-report.lua)."""
    env = dict(os.environ, BENCH_METHOD="GET")
    if body is not None:
        body_file = Path(workdir) / "wrk-body"
        body_file.write_bytes(body)
        env.update(BENCH_METHOD="POST", BENCH_BODY_FILE=str(body_file), BENCH_CONTENT_TYPE=content_type)
    threads = min(connections, os.cpu_count() or 1)
    command = ["wrk", "-c", str(connections), "-t", str(threads), "-d", f"{duration_s}s", "--timeout", "30s"]
    command += ["-s", str(WRK_SCRIPT), f"{url}{path}"]
    finished = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=duration_s + 120
    )
    match = re.search(r"^BENCH_RESULT (.*)$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({finished.returncode}): {finished.stdout}{finished.stderr}")
    values = {key: int(value) for key, value in (pair.split("=") for pair in match.group(1).split())}
    completed = values["requests"]
    errors = sum(values[key] for key in ("connect", "read", "write", "status", "timeout"))
    if completed == 0:
        return Load(0.0, float("nan"), float("nan"), 0, errors)
    rate = completed / (values["duration_us"] / 1e6)
    return Load(rate, values["p50_us"] / 1000, values["p99_us"] / 1000, completed, errors)


def round_trips(url, body, count, content_type="text/csv"):
    """Seconds of `count` POSTs of body (after one warm-up), each answered 200, on one connection."""
    with requests.Session() as session:
        seconds = []
        for _ in range(count + 1):
            started = time.monotonic()
            response = session.post(
                f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=120
            )
            seconds.append(time.monotonic() - started)
            if response.status_code != 200:
                raise BenchError(
                    f"a {len(body) / 1e6:.1f} MB body answered {response.status_code}: {response.text[:300]}"
                )
    return seconds[1:]


# --- images -------------------------------------------------------------------------------------


def size_mb(client, ref):
    """The image's size in MB, as the docker CLI shows it."""
    return client.images.get(ref).attrs["Size"] / 1e6


def find_base_image(client, image, wanted=None):
    """`wanted` if it is here, else the tagged local image whose layers are the longest proper
    prefix of the image's layers (the base it was built on); None if neither."""
    if wanted:
        try:
            client.images.get(wanted)
            return wanted
        except docker.errors.ImageNotFound:
            log(f"the base image {wanted} is not here: looking for the one {image} was built on")
    under_test = client.images.get(image)
    layers = under_test.attrs["RootFS"]["Layers"]
    best, best_length = None, 0
    for candidate in client.images.list():
        if not candidate.tags or candidate.id == under_test.id:
            continue
        candidate_layers = candidate.attrs.get("RootFS", {}).get("Layers") or []
        if (
            best_length < len(candidate_layers) < len(layers)
            and layers[: len(candidate_layers)] == candidate_layers
        ):
            best, best_length = candidate.tags[0], len(candidate_layers)
    return best
