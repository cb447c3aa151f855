"""`make bench`: how this project's server does with YOUR model, on this machine.

It serves the model `make local-train` left in build/model.tar.gz (without one: the model the
image's code/train.R trains on data/train) as SageMaker does (`docker run IMAGE serve`, the model
read-only in /opt/ml/model) and measures:
- requests/s and p50/p99 latency of POST /invocations with one CSV row of data/ (the model's input,
  without the target column), with wrk on 1 and on N keep-alive connections (N = the workers), each
  after a warm-up; latencies are wrk's, of the requests that completed;
- a large-body round trip: ~5 MB of rows of data/ as one CSV request (the median of a few);
- container memory once every worker is ready, and after the loads and large bodies (the cgroup's
  usage less its inactive page cache, as `docker stats` shows it); of that, the R master's (it
  loaded the model, and the workers are its copy-on-write forks) and what each worker holds on its
  own (its private memory, the mean over the workers), beside the size of model.rds;
- cold start: from just before the container is created to the first 200 on /ping (the median);
- the training image's size over its base image;
- with --target-rps: how many instances like this machine that request rate needs.
These are figures of your model, not pass/fail: the serving design's own targets (plumbing overhead,
a 300 MB model, a soak) are measured by the template's benchmark (`make bench` in the template).
"""

import argparse
import datetime
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import requests

from . import ToolError, engine, opt_ml
from .local import unpack_model

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = PROJECT_ROOT / "bench" / "wrk-report.lua"
DEFAULT_MODEL = PROJECT_ROOT / "build" / "model.tar.gz"
DEFAULT_OUTPUT = PROJECT_ROOT / "build" / "bench" / "results.md"
LABELS = engine.labels_for(PROJECT_ROOT, "bench")  # `make local-stop` removes these containers too
# Room left per instance when suggesting a count: a server run at its limit has a long tail.
HEADROOM = 0.7
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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


# --- the model and the request bodies -----------------------------------------------------------


def train_sample_model(client, image, workdir):
    """Train the image's own code (code/train.R) on data/train; returns the model dir."""
    ml = workdir / "ml"
    (ml / "input" / "config").mkdir(parents=True)
    opt_ml.write_json(ml / "input" / "config" / "hyperparameters.json", {})
    opt_ml.write_json(
        ml / "input" / "config" / "inputdataconfig.json", {"train": {"TrainingInputMode": "File"}}
    )
    shutil.copytree(PROJECT_ROOT / "data" / "train", ml / "input" / "data" / "train")
    for part in ("model", "output"):
        (ml / part).mkdir()
    log(f"training the sample model in {image}")
    # Not all of /opt/ml: that would hide the code baked into /opt/ml/code.
    mounts = [engine.bind(ml / part, f"/opt/ml/{part}") for part in ("input", "model", "output")]
    spec = {"image": image, "command": ["train"], "mounts": mounts, "labels": LABELS}
    if engine.run_to_completion(client, [spec]) != [0] or not (ml / "model" / "model.rds").exists():
        raise BenchError("training the sample model failed: see its log above")
    return ml / "model"


def prepare_model(client, image, model_tarball, workdir):
    """(model dir, what it is): the trained model.tar.gz unpacked, else the sample model trained here."""
    if model_tarball.is_file():
        model_dir = workdir / "model"
        model_dir.mkdir()
        unpack_model(model_tarball, model_dir)
        return model_dir, str(model_tarball)
    log(f"no {model_tarball}: benchmarking the sample model (run `make local-train` to bench yours)")
    return train_sample_model(client, image, workdir), "the sample model (code/train.R on data/train)"


def input_rows():
    """Every row of the first CSV under data/, without the target column, as SageMaker sends CSV."""
    target = None
    hyperparameters = PROJECT_ROOT / "config" / "hyperparameters.json"
    if hyperparameters.is_file():
        target = opt_ml.read_hyperparameters(hyperparameters).get("target")
    body, _ = opt_ml.sample_rows(PROJECT_ROOT / "data", sys.maxsize, target)
    return body.splitlines(keepends=True)


def large_body(rows, megabytes):
    """Rows of data/ repeated to about `megabytes` MB (10^6 bytes) of CSV."""
    size = int(megabytes * 1e6)
    per_round = sum(len(row) for row in rows)
    return "".join(rows * max(1, size // per_round)).encode()


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
    worker is ready).
    """

    def __init__(self, client, image, model_dir, code_dir=None, workers=None, environment=None):
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
            labels=LABELS,
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
    (bench/wrk-report.lua)."""
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


# --- the benchmark ------------------------------------------------------------------------------


@dataclass
class Settings:
    workers: int
    duration_s: int
    warmup_s: int
    cold_starts: int
    large_body_mb: float
    round_trips: int
    target_rps: float = None


def connection_counts(settings):
    return sorted({1, settings.workers})


def row_names(settings):
    """The names of the rows of the table, in order (the smoke test checks them)."""
    names = [
        f"{connections} keep-alive connection{'s' if connections > 1 else ''}: {metric}"
        for connections in connection_counts(settings)
        for metric in ("requests/s", "p50 latency (ms)", "p99 latency (ms)")
    ]
    large = f"Large body ({settings.large_body_mb:g} MB CSV of data/ rows)"
    names += [
        f"{large}: round trip, median of {settings.round_trips} (ms)",
        f"Container memory, {settings.workers} workers, model loaded, before any request (MB)",
        f"Container memory, {settings.workers} workers, after the loads and large bodies (MB)",
        "Memory of the R master, which holds the one copy of the model (MB)",
        "Memory each worker holds on its own, beyond what it shares with the master (MB)",
        "model.rds size (MB)",
        f"Cold start, container start to first 200 on /ping, median of {settings.cold_starts} (s)",
        "Training image size over its base (MB)",
    ]
    if settings.target_rps:
        names.append(f"Instances like this machine for {settings.target_rps:g} requests/s (count)")
    return names


def measure(client, image, base_image, model_dir, settings, workdir, notes):
    """The figures, in the order of row_names()."""
    rows = input_rows()
    one_row, big = rows[0].encode(), large_body(rows, settings.large_body_mb)
    figures, loads = [], {}
    with Server(client, image, model_dir, workers=settings.workers) as server:
        server.wait_for_workers(settings.workers)
        idle = server.memory_bytes() / 1e6
        run_wrk(server.url, settings.workers, settings.warmup_s, one_row, workdir)  # warm R, connections
        for connections in connection_counts(settings):
            load = loads[connections] = run_wrk(
                server.url, connections, settings.duration_s, one_row, workdir
            )
            log(f"{connections} connection(s): {load.requests_per_s:.1f} req/s, p50 {load.p50_ms:.1f} ms")
            if load.errors:
                notes.append(
                    f"{connections} connection(s): {load.errors} of {load.requests} requests failed."
                )
            figures += [fmt(load.requests_per_s), fmt(load.p50_ms), fmt(load.p99_ms)]
        log(f"{len(big) / 1e6:.1f} MB CSV ({len(big.splitlines())} rows), {settings.round_trips} round trips")
        figures.append(fmt(statistics.median(round_trips(server.url, big, settings.round_trips)) * 1000))
        memory = server.memory_bytes() / 1e6
        master_mb, worker_mb = server.process_memory()
    model_file = model_dir / "model.rds"
    model_mb = model_file.stat().st_size / 1e6 if model_file.exists() else None
    figures += [fmt(idle), fmt(memory), fmt(master_mb), fmt(worker_mb)]
    if master_mb and worker_mb:
        notes.append(
            f"Memory: the master {master_mb:.0f} MB, each worker {worker_mb:.0f} MB more; the default "
            "worker count is the CPUs, lowered to what fits beside the master in the container's memory "
            "(SAGEMAKER_WORKER_MEMORY_MB per worker, 256 by default: set it near the figure above, "
            "plus what your largest request needs)."
        )
    figures.append(fmt(model_mb, 3 if (model_mb or 0) < 1 else 1))
    starts = []
    for _ in range(settings.cold_starts):
        with Server(client, image, model_dir, workers=settings.workers) as server:
            starts.append(server.cold_start_s)
            log(f"cold start {server.cold_start_s:.2f} s (create + start {server.engine_s:.2f} s)")
    figures.append(fmt(statistics.median(starts), 2))
    over_base = size_mb(client, image) - size_mb(client, base_image) if base_image else None
    figures.append(fmt(over_base, 0))
    if not base_image:
        notes.append("The base image is not here: pass --base-image (BASE_IMAGE=...) for the size over it.")
    if settings.target_rps:
        rate = loads[settings.workers].requests_per_s
        figures.append(str(math.ceil(settings.target_rps / (rate * HEADROOM))) if rate else NOT_MEASURED)
        notes.append(
            f"Instances: {settings.target_rps:g} req/s over {HEADROOM * 100:.0f}% of the {rate:.1f} req/s measured "
            f"at {settings.workers} connections, on instances with this machine's {os.cpu_count()} vCPUs "
            "and requests like these; measure again on the instance type you deploy to."
        )
    return figures


def report(names, figures, header, notes):
    lines = [*header, "", "| Measurement | Value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in zip(names, figures)]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes] + [""])


def cleanup(client, workdir, image):
    """Remove our containers and temporary files (the trained model is root's if the engine runs as root)."""
    if client is not None:
        for container in engine.find_containers(client, PROJECT_ROOT, "bench"):
            engine.remove(container, timeout=1)
    engine.clear_directory(workdir, client, image)


def bench(args):
    settings = Settings(
        args.workers, args.duration, 2, args.cold_starts, args.large_body_mb, args.round_trips
    )
    settings.target_rps = args.target_rps
    if args.quick:
        settings.duration_s, settings.warmup_s, settings.cold_starts, settings.round_trips = 3, 1, 1, 2
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    client = engine.connect()
    engine.check_image(client, args.image)
    workdir = Path(tempfile.mkdtemp(prefix="sagemaker-bench-"))
    try:
        base_image = find_base_image(client, args.image, args.base_image)
        load_before = load_average()
        log(f"{args.image} (base {base_image}) on {os.cpu_count()} CPUs, load average {load_before}")
        model_dir, model = prepare_model(client, args.image, Path(args.model), workdir)
        notes = []
        figures = measure(client, args.image, base_image, model_dir, settings, workdir, notes)
        method = (
            f"Image `{args.image}` (base `{base_image}`), model {model}, {settings.workers} worker(s); wrk "
            f"{settings.duration_s} s per load after a {settings.warmup_s} s warm-up, one CSV row of data/ "
            f"per request. Load average before {load_before}, after {load_average()}: other work on the "
            "machine disturbs the figures."
        )
        header = ["# Serving benchmark of this project's model", "", f"Machine: {machine_line(client)}.", ""]
        text = report(row_names(settings), figures, [*header, method], notes)
    except (docker.errors.DockerException, requests.RequestException, OSError) as error:
        raise BenchError(str(error)) from error
    finally:
        cleanup(client, workdir, args.image)
    print(f"\n{text}")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    log(f"wrote {output}. Next: change the model or SAGEMAKER_MODEL_SERVER_WORKERS, then make bench again.")
    return 0


def register(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="Benchmark the server with this project's model (writes build/bench/results.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--image", required=True, help="the training + serving image to measure")
    add(
        "--base-image",
        default=os.environ.get("BASE_IMAGE"),
        help="its base image (default: $BASE_IMAGE; "
        "else the local image it was built on, found by its layers)",
    )
    add("--model", default=str(DEFAULT_MODEL), help="the model.tar.gz to serve (default %(default)s)")
    add(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="R workers (SAGEMAKER_MODEL_SERVER_WORKERS) "
        "and connections of the second load (default: the CPUs, %(default)s)",
    )
    add("--duration", type=int, default=10, help="seconds per load measurement (default %(default)s)")
    add("--cold-starts", type=int, default=3, help="cold starts, of which the median (default %(default)s)")
    add("--large-body-mb", type=float, default=5, help="MB of the large CSV body (default %(default)s)")
    add("--round-trips", type=int, default=5, help="large-body round trips (default %(default)s)")
    rps = os.environ.get("TARGET_RPS")
    add(
        "--target-rps",
        type=float,
        default=float(rps) if rps else None,
        help="a request rate to size for (default: $TARGET_RPS)",
    )
    add("--quick", action="store_true", help="a smoke run: 3 s per load, 1 cold start, 2 round trips")
    add("--output", default=str(DEFAULT_OUTPUT), help="where the markdown report goes (default %(default)s)")
    parser.set_defaults(handler=bench)
