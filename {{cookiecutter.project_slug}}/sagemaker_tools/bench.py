"""`make bench`: this project's server against the seed's design, on the same image and model.

(a) the seed's design: ONE plumber process on the port (bench/seed-plumber: the training image plus
    plumber, serving the same deploy.R handlers through the same serving.R code);
(b) this project's server: `IMAGE serve` (nginx in front of N R workers).

For each it measures requests/s and p50/p99 latency at 1 and 4 keep-alive connections (wrk) for the
sample model and for a model whose predict_fn takes ~50 ms (bench/model-code/deploy.R), /ping while
a long invocation runs (aiohttp, one new connection per ping, every 100 ms, as a health checker
would), and cold start (just before the container is created to the first 200 on /ping). Then the
image sizes, what the layers over the base left behind, and the build times (cold with --no-cache,
and after a code-only change, in a copy of the project). The table goes to stdout and
bench/results.md. Missed targets are reported, not failed: the exit code is non-zero only on errors.
"""

import argparse
import asyncio
import datetime
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests

from . import ToolError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
WRK_SCRIPT = BENCH_DIR / "wrk-report.lua"
SLOW_MODEL_CODE = BENCH_DIR / "model-code"
SEED_CONTEXT = BENCH_DIR / "seed-plumber"
TRAINING_DOCKERFILE = "images/training/Dockerfile"

# One iris row, as SageMaker sends CSV: no header.
SAMPLE_BODY = b"5.1,3.5,1.4,0.2\n"
PING_INTERVAL_S = 0.1
CONTAINER_LABEL = "sagemaker-tools-bench"

SEED = "Single plumber (seed design)"
SERVER = "This project's server"
COLUMNS = ("Measurement", SEED, SERVER, "Target", "Result")
NOT_APPLICABLE = "-"
SKIPPED = "skipped"


class BenchError(ToolError):
    """Something stopped the benchmark (not a missed target)."""


@dataclass
class Row:
    name: str
    seed: str
    server: str
    target: str = NOT_APPLICABLE
    result: str = NOT_APPLICABLE

    def cells(self):
        return (self.name, self.seed, self.server, self.target, self.result)


@dataclass
class Load:
    """One wrk run: closed-loop keep-alive connections, latencies of completed requests."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Settings:
    duration_s: int
    busy_s: float
    cold_starts: int
    warmup_s: int


@dataclass
class Findings:
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Row names, shared with the smoke test so that it can check every row is there.


def row_names(busy_s, cold_starts):
    names = []
    for model in ("Sample model", "50 ms model"):
        for connections in (1, 4):
            plural = "connection" if connections == 1 else "connections"
            for metric in ("requests/s", "p50 latency (ms)", "p99 latency (ms)"):
                names.append(f"{model}, {connections} keep-alive {plural}: {metric}")
    names.append("50 ms model, 4 connections: throughput relative to the single plumber (x)")
    busy = f"{busy_s:g} s invocation runs"
    names.append(f"/ping p50 while a {busy} (ms)")
    names.append(f"/ping p99 while a {busy} (ms)")
    names.append(f"Cold start, container start to first 200 on /ping, median of {cold_starts} (s)")
    names.append("Image size: base (MB)")
    names.append("Image size: image under test (MB)")
    names.append("Image size over the base (MB)")
    names.append("Leftovers over the base: apt lists, caches, compilers (count)")
    names.append("Build time, cold (--no-cache) (s)")
    names.append("Build time after a code-only change (s)")
    return names


# ---------------------------------------------------------------------------------------------
# Small helpers


def log(message):
    print(f"bench: {message}", flush=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_APPLICABLE
    return f"{value:.{digits}f}"


def judge(value, limit, at_least=False):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "MISS"
    ok = value >= limit if at_least else value <= limit
    return "PASS" if ok else "MISS"


def image_name(ref):
    """`name:tag` -> `name` (a registry port stays in the name)."""
    last = ref.rsplit("/", 1)[-1]
    return ref[: len(ref) - len(last)] + last.split(":", 1)[0].split("@", 1)[0]


# ---------------------------------------------------------------------------------------------
# Machine


def machine_description(client):
    cpu_model = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        cpu_model = platform.processor() or cpu_model
    version = client.version()
    # The first component is the engine itself (e.g. "Podman Engine 4.3.1", "Engine 27.1.1").
    components = version.get("Components") or [{"Name": "engine", "Version": version.get("Version", "?")}]
    engine = f"{components[0]['Name']} {components[0]['Version'].splitlines()[0]}"
    engine += f" (Docker API {version.get('ApiVersion', '?')})"
    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu_model,
        "memory": memory,
        "engine": engine,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Model and images


def run_to_completion(client, image, command, volumes, what, **kwargs):
    container = client.containers.run(
        image, command, detach=True, volumes=volumes, labels=[CONTAINER_LABEL], **kwargs
    )
    try:
        status = container.wait(timeout=600).get("StatusCode", 1)
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status != 0:
        raise BenchError(f"{what} failed (exit {status}):\n{output[-3000:]}")
    return output


def train_sample_model(client, image, workdir):
    """Train the sample model (code/train.R on data/train) in the image; returns the model dir."""
    ml = workdir / "ml"
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "input" / "config" / "hyperparameters.json").write_text("{}\n")
    (ml / "input" / "config" / "inputdataconfig.json").write_text(
        '{"train": {"TrainingInputMode": "File"}}\n'
    )
    shutil.copytree(PROJECT_ROOT / "data" / "train", ml / "input" / "data" / "train")
    log(f"training the sample model in {image}")
    model_dir = ml / "model"
    model_dir.mkdir()
    (ml / "output").mkdir()
    # Not all of /opt/ml: that would hide the code baked into /opt/ml/code.
    volumes = {
        str(ml / part): {"bind": f"/opt/ml/{part}", "mode": "rw"} for part in ("input", "model", "output")
    }
    run_to_completion(client, image, ["train"], volumes, "training")
    if not (model_dir / "model.rds").exists():
        raise BenchError(f"training left no model.rds in {model_dir}")
    return model_dir


def build_seed_image(client, image):
    tag = f"{image_name(image)}-bench-seed-plumber:{image.rsplit(':', 1)[-1] if ':' in image else 'latest'}"
    log(f"building the seed-style image {tag} (FROM {image} + plumber)")
    try:
        client.images.build(
            path=str(SEED_CONTEXT), tag=tag, buildargs={"TRAINING_IMAGE": image}, rm=True, forcerm=True
        )
    except docker.errors.BuildError as error:
        lines = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
        raise BenchError(f"building {tag} failed: {error}\n{lines[-3000:]}") from error
    return tag


def find_base_image(client, image):
    """The tagged local image whose layers are the longest proper prefix of the image's layers."""
    under_test = client.images.get(image)
    layers = under_test.attrs["RootFS"]["Layers"]
    best, best_length = None, 0
    for candidate in client.images.list():
        if not candidate.tags or candidate.id == under_test.id:
            continue
        candidate_layers = client.images.get(candidate.id).attrs.get("RootFS", {}).get("Layers") or []
        length = len(candidate_layers)
        if best_length < length < len(layers) and layers[:length] == candidate_layers:
            best, best_length = candidate.tags[0], length
    return best


# Each line printed names something a lean image should not carry.
LEFTOVER_PROBE = r"""
ls -A /var/lib/apt/lists 2>/dev/null | grep -qv -e '^lock$' -e '^partial$' -e '^auxfiles$' && echo apt-lists
ls /var/cache/apt/archives/*.deb >/dev/null 2>&1 && echo apt-archives
ls /var/cache/apt/*.bin >/dev/null 2>&1 && echo apt-package-cache
[ -d /root/.cache/pip ] && echo pip-cache
ls -d /tmp/downloaded_packages /tmp/Rtmp* >/dev/null 2>&1 && echo r-download-cache
for tool in gcc g++ cc c++ gfortran clang make; do command -v "$tool" >/dev/null && echo "compiler:$tool"; done
exit 0
"""


def leftovers(client, image):
    output = run_to_completion(
        client, image, ["-c", LEFTOVER_PROBE], {}, f"probing {image}", entrypoint=["/bin/sh"]
    )
    return set(output.split())


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    """One serving container with its port on 127.0.0.1; `cold_start_s` from create to first 200."""

    def __init__(self, client, image, model_dir, code_dir=None):
        port = free_port()
        volumes = {str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}}
        if code_dir:
            volumes[str(code_dir)] = {"bind": "/opt/ml/model/code", "mode": "ro"}
        self.url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        self.container = client.containers.run(
            image,
            ["serve"],
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", port)},
            volumes=volumes,
            labels=[CONTAINER_LABEL],
        )
        # Where the cold start goes: the engine (create + start returned), the first HTTP answer of
        # any status (nginx answers 503 until a worker is ready), the first 200.
        self.engine_s = time.monotonic() - started
        self.first_answer_s = None
        try:
            self.cold_start_s = self._wait_for_ping(started)
        except BaseException:
            self.stop()
            raise

    def _wait_for_ping(self, started, timeout_s=120):
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

    def stop(self):
        self.container.remove(force=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_wrk(url, connections, duration_s, body=SAMPLE_BODY, workdir=None):
    """wrk on POST /invocations with the CSV body; keep-alive connections, closed loop."""
    body_file = Path(workdir) / "body.csv"
    body_file.write_bytes(body)
    env = dict(os.environ, BENCH_METHOD="POST", BENCH_BODY_FILE=str(body_file), BENCH_CONTENT_TYPE="text/csv")
    command = [
        "wrk",
        "-c",
        str(connections),
        "-t",
        str(min(connections, os.cpu_count() or 1)),
        "-d",
        f"{duration_s}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_SCRIPT),
        f"{url}/invocations",
    ]
    finished = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=duration_s + 120
    )
    match = re.search(r"^BENCH_RESULT (.*)$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({finished.returncode}): {finished.stdout}{finished.stderr}")
    values = {key: int(value) for key, value in (pair.split("=") for pair in match.group(1).split())}
    completed = values["requests"]
    errors = sum(values[key] for key in ("connect", "read", "write", "status", "timeout"))
    seconds = values["duration_us"] / 1e6
    if completed == 0:
        return Load(0.0, float("nan"), float("nan"), errors)
    return Load(completed / seconds, values["p50_us"] / 1000, values["p99_us"] / 1000, errors)


async def _ping_while_busy(url, busy_s):
    import aiohttp  # only the benchmark needs it

    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=busy_s + 60)
    # force_close: every ping opens its own connection, as a health checker does.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def busy_invocation():
            headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": f"sleep={busy_s:g}"}
            async with session.post(f"{url}/invocations", data=SAMPLE_BODY, headers=headers) as response:
                await response.read()
                return response.status

        async def ping():
            started = loop.time()
            try:
                async with session.get(f"{url}/ping") as response:
                    await response.read()
                    return loop.time() - started, response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return loop.time() - started, False

        busy = asyncio.create_task(busy_invocation())
        await asyncio.sleep(0.5)  # let the invocation reach a worker first
        pings = []
        while not busy.done():
            pings.append(asyncio.create_task(ping()))
            await asyncio.sleep(PING_INTERVAL_S)
        busy_status = await busy
        results = await asyncio.gather(*pings)
    return busy_status, [seconds * 1000 for seconds, _ in results], sum(1 for _, ok in results if not ok)


def ping_while_busy(url, busy_s):
    return asyncio.run(_ping_while_busy(url, busy_s))


def timed_build(docker_cli, context, base_image, tag, no_cache, log_file):
    command = [docker_cli, "build"] + (["--no-cache"] if no_cache else [])
    command += [
        "--platform",
        os.environ.get("PLATFORM", "linux/amd64"),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "-f",
        TRAINING_DOCKERFILE,
        "-t",
        tag,
        ".",
    ]
    started = time.monotonic()
    with open(log_file, "a") as output:
        status = subprocess.run(
            command, check=False, cwd=context, stdout=output, stderr=subprocess.STDOUT
        ).returncode
    seconds = time.monotonic() - started
    if status != 0:
        tail = Path(log_file).read_text(errors="replace")[-3000:]
        raise BenchError(f"`{' '.join(command)}` failed (exit {status}):\n{tail}")
    return seconds


def measure_build_times(client, image, base_image, workdir):
    """Cold build (--no-cache) of a copy of the project, then a rebuild after a change in code/."""
    context = workdir / "build-context"
    shutil.copytree(
        PROJECT_ROOT,
        context,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", "*.egg-info"),
    )
    tag = f"{image_name(image)}:bench-build"
    docker_cli = os.environ.get("DOCKER", "docker")
    log_file = workdir / "build.log"
    try:
        log(f"timing a cold build of {tag} (--no-cache; log in {log_file})")
        cold_s = timed_build(docker_cli, context, base_image, tag, True, log_file)
        code_file = min((context / "code").iterdir())
        with open(code_file, "a") as changed:
            changed.write(f"\n# bench: code-only change at {time.time()}\n")
        log(f"timing a rebuild after changing code/{code_file.name}")
        code_only_s = timed_build(docker_cli, context, base_image, tag, False, log_file)
    finally:
        try:
            client.images.remove(tag)
        except docker.errors.APIError:
            pass
    return cold_s, code_only_s


# ---------------------------------------------------------------------------------------------
# The benchmark


def check_tools():
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    try:
        import aiohttp  # noqa: F401
    except ImportError as error:
        raise BenchError("aiohttp is not installed: pip install aiohttp (in this project's .venv)") from error


def measure_loads(client, images, model_dir, code_dir, settings, workdir, label):
    """{design: {connections: Load}} for one model, each design in its own container."""
    loads = {}
    for design, image in images.items():
        with Server(client, image, model_dir, code_dir) as server:
            run_wrk(server.url, 4, settings.warmup_s, workdir=workdir)  # warm up R and the connections
            loads[design] = {}
            for connections in (1, 4):
                load = run_wrk(server.url, connections, settings.duration_s, workdir=workdir)
                loads[design][connections] = load
                log(
                    f"{label}, {design}, {connections} connection(s): {load.requests_per_s:.1f} req/s, "
                    f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, errors {load.errors}"
                )
    return loads


def load_rows(client, images, model_dir, settings, workdir, names, findings):
    """Throughput and latency: the sample model, then the ~50 ms model."""
    rows = []
    sample = measure_loads(client, images, model_dir, None, settings, workdir, "sample model")
    slow = measure_loads(client, images, model_dir, SLOW_MODEL_CODE, settings, workdir, "50 ms model")
    for model, loads in (("sample", sample), ("50 ms", slow)):
        for connections in (1, 4):
            seed_load, server_load = loads[SEED][connections], loads[SERVER][connections]
            for metric in ("requests_per_s", "p50_ms", "p99_ms"):
                row = Row(next(names), fmt(getattr(seed_load, metric)), fmt(getattr(server_load, metric)))
                if model == "sample" and connections == 1 and metric == "p50_ms":
                    row.target, row.result = "<= 5", judge(server_load.p50_ms, 5)
                rows.append(row)
            for design, load in ((SEED, seed_load), (SERVER, server_load)):
                if load.errors:
                    findings.notes.append(
                        f"{design}, {model} model, {connections} connection(s): {load.errors} failed "
                        "requests (socket errors, timeouts or non-2xx answers)."
                    )
    seed_rate, server_rate = slow[SEED][4].requests_per_s, slow[SERVER][4].requests_per_s
    ratio = server_rate / seed_rate if seed_rate else None
    rows.append(Row(next(names), "1.00", fmt(ratio, 2), ">= 1.8", judge(ratio, 1.8, at_least=True)))
    return rows


def ping_rows(client, images, model_dir, settings, names, findings):
    """/ping while one invocation holds a worker for busy_s seconds."""
    ping = {}
    for design, image in images.items():
        with Server(client, image, model_dir, SLOW_MODEL_CODE) as server:
            log(
                f"/ping every {PING_INTERVAL_S * 1000:.0f} ms during a {settings.busy_s:g} s invocation: {design}"
            )
            busy_status, latencies, failures = ping_while_busy(server.url, settings.busy_s)
        if busy_status != 200:
            findings.notes.append(f"{design}: the {settings.busy_s:g} s invocation answered {busy_status}.")
        if failures:
            findings.notes.append(
                f"{design}: {failures} of {len(latencies)} pings while busy failed or were not 200."
            )
        ping[design] = (percentile(latencies, 50), percentile(latencies, 99))
        log(f"  {len(latencies)} pings, p50 {ping[design][0]:.1f} ms, p99 {ping[design][1]:.1f} ms")
    p99 = ping[SERVER][1]
    return [
        Row(next(names), fmt(ping[SEED][0]), fmt(ping[SERVER][0])),
        Row(next(names), fmt(ping[SEED][1]), fmt(p99), "<= 100", judge(p99, 100)),
    ]


def cold_start_rows(client, images, model_dir, settings, names, findings):
    """Just before the container is created and started, to the first 200 on /ping; the median."""
    cold = {SEED: [], SERVER: []}
    for attempt in range(settings.cold_starts):
        for design, image in images.items():
            with Server(client, image, model_dir) as server:
                cold[design].append((server.cold_start_s, server.engine_s, server.first_answer_s))
            log(
                f"cold start {attempt + 1}/{settings.cold_starts}, {design}: {server.cold_start_s:.2f} s "
                f"(engine create + start {server.engine_s:.2f} s, first HTTP answer {server.first_answer_s:.2f} s)"
            )
    for design, starts in cold.items():
        findings.notes.append(
            f"Cold starts, {design} (s): "
            + "; ".join(
                f"{total:.2f} (engine {engine:.2f}, first answer {first:.2f})"
                for total, engine, first in starts
            )
            + "."
        )
    seed_s = statistics.median(total for total, _, _ in cold[SEED])
    server_s = statistics.median(total for total, _, _ in cold[SERVER])
    return [Row(next(names), fmt(seed_s, 2), fmt(server_s, 2), "<= 2", judge(server_s, 2))]


def image_rows(client, images, base_image, names, findings):
    """Sizes (MB as the docker CLI shows them) and what the layers over the base left behind."""

    def size_mb(ref):
        return client.images.get(ref).attrs["Size"] / 1e6

    base_mb, seed_mb, server_mb = size_mb(base_image), size_mb(images[SEED]), size_mb(images[SERVER])
    added = sorted(leftovers(client, images[SERVER]) - leftovers(client, base_image))
    if added:
        findings.notes.append(f"Left in the image under test but not in its base: {', '.join(added)}.")
    return [
        Row(next(names), fmt(base_mb, 0), fmt(base_mb, 0)),
        Row(next(names), fmt(seed_mb, 0), fmt(server_mb, 0)),
        Row(next(names), fmt(seed_mb - base_mb, 0), fmt(server_mb - base_mb, 0), "stated"),
        Row(next(names), NOT_APPLICABLE, str(len(added)), "0", "PASS" if not added else "MISS"),
    ]


def build_rows(client, image, base_image, skip, workdir, names):
    """Build times of the image under test only (the seed design is built FROM it: not comparable)."""
    if skip:
        return [
            Row(next(names), NOT_APPLICABLE, SKIPPED),
            Row(next(names), NOT_APPLICABLE, SKIPPED, "<= 10", NOT_APPLICABLE),
        ]
    cold_s, code_only_s = measure_build_times(client, image, base_image, workdir)
    log(f"builds: cold {cold_s:.1f} s, code-only change {code_only_s:.1f} s")
    return [
        Row(next(names), NOT_APPLICABLE, fmt(cold_s)),
        Row(next(names), NOT_APPLICABLE, fmt(code_only_s), "<= 10", judge(code_only_s, 10)),
    ]


def run_benchmark(client, image, base_image, settings, skip_build_times, workdir, findings):
    names = iter(row_names(settings.busy_s, settings.cold_starts))
    images = {SEED: build_seed_image(client, image), SERVER: image}
    model_dir = train_sample_model(client, image, workdir)
    phases = []

    def phase(name):
        phases.append(f"{name} {load_average().split()[0]}")

    phase("loads")
    rows = load_rows(client, images, model_dir, settings, workdir, names, findings)
    phase("/ping while busy")
    rows += ping_rows(client, images, model_dir, settings, names, findings)
    phase("cold starts")
    rows += cold_start_rows(client, images, model_dir, settings, names, findings)
    rows += image_rows(client, images, base_image, names, findings)
    phase("builds")
    rows += build_rows(client, image, base_image, skip_build_times, workdir, names)
    phase("end")
    findings.notes.append(f"1-minute load average at the start of each phase: {', '.join(phases)}.")
    return rows


def markdown_table(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * 3 + [":---:"]) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def report(rows, machine, image, base_image, settings, findings):
    machine_line = ", ".join(f"{key} {value}" for key, value in machine.items())
    notes = [
        f"Image under test: `{image}`, base `{base_image}`; both designs serve the same trained model.",
        (
            f"Load: wrk, POST /invocations with one CSV row over keep-alive connections, "
            f"{settings.duration_s} s per measurement after a warm-up; p50/p99 of completed requests."
        ),
        (
            f"/ping while busy: one new connection per ping every {PING_INTERVAL_S * 1000:.0f} ms (aiohttp) "
            f"while an invocation sleeps {settings.busy_s:g} s; a ping that cannot be answered waits for it."
        ),
        "Other work on the machine disturbs the figures (see the load averages): re-run at a quiet moment.",
    ]
    notes += findings.notes
    return "\n".join(
        [
            "# Serving benchmark",
            "",
            f"Machine: {machine_line}.",
            "",
            markdown_table(rows),
            "",
            *[f"- {note}" for note in notes],
            "",
            "Reproduce: `make bench` (options: `python -m sagemaker_tools bench --help`).",
            "",
        ]
    )


def bench(args):
    settings = Settings(
        duration_s=args.duration, busy_s=args.busy_seconds, cold_starts=args.cold_starts, warmup_s=2
    )
    if args.quick:
        settings = Settings(duration_s=1, busy_s=3, cold_starts=1, warmup_s=1)
    workdir = Path(tempfile.mkdtemp(prefix="sagemaker-bench-"))
    client = None
    try:
        check_tools()
        client = docker.from_env(timeout=600)
        client.images.get(args.image)
        base_image = args.base_image or find_base_image(client, args.image)
        if not base_image:
            raise BenchError(
                f"cannot tell the base image of {args.image}: pass --base-image (or BASE_IMAGE=...)"
            )
        client.images.get(base_image)
        machine = machine_description(client)
        others = [c.name for c in client.containers.list() if CONTAINER_LABEL not in c.labels]
        load_before = load_average()
        log(f"{args.image} (base {base_image}) on {machine['nproc']} CPUs, load average {load_before}")
        findings = Findings()
        if others:
            log(f"other containers running (they disturb the figures): {', '.join(others)}")
            findings.notes.append(f"Other containers ran during the benchmark: {', '.join(others)}.")
        rows = run_benchmark(
            client, args.image, base_image, settings, args.skip_build_times, workdir, findings
        )
        text = report(rows, machine, args.image, base_image, settings, findings)
    except docker.errors.ImageNotFound as error:
        print(f"bench: error: {error.explanation}. Build it first: make build", file=sys.stderr)
        return 1
    except (BenchError, docker.errors.DockerException, requests.RequestException, OSError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    finally:
        cleanup(client, workdir, args.image)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output}. Next: copy the table and the machine line into README.md.")
    return 0


def cleanup(client, workdir, image):
    """Remove our containers and temporary files (the trained model is root's if the engine runs as root)."""
    if client is not None:
        for container in client.containers.list(all=True, filters={"label": CONTAINER_LABEL}):
            container.remove(force=True)
    shutil.rmtree(workdir, ignore_errors=True)
    if workdir.exists() and client is not None:
        try:
            client.containers.run(
                image,
                ["-c", "rm -rf /work/*"],
                entrypoint=["/bin/sh"],
                volumes={str(workdir): {"bind": "/work", "mode": "rw"}},
                remove=True,
            )
            shutil.rmtree(workdir, ignore_errors=True)
        except docker.errors.DockerException:
            pass
    if workdir.exists():
        log(f"could not remove {workdir}; remove it by hand")


def register(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="Benchmark the server against a single plumber process (writes bench/results.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--image", required=True, help="the training + serving image to measure")
    parser.add_argument(
        "--base-image",
        default=os.environ.get("BASE_IMAGE"),
        help="its base image, for the size over the base and the builds (default: $BASE_IMAGE, else found "
        "among local images by its layers)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per load measurement (default 10)")
    parser.add_argument(
        "--busy-seconds",
        type=float,
        default=20,
        help="length of the invocation /ping competes with (default 20)",
    )
    parser.add_argument(
        "--cold-starts", type=int, default=3, help="cold starts per design; the median is shown"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 s per measurement, a 3 s busy invocation, 1 cold start",
    )
    parser.add_argument("--skip-build-times", action="store_true", help="do not time the image builds")
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results.md", help="where the markdown report goes"
    )
    parser.set_defaults(handler=bench)
