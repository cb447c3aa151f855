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
import math
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import requests

from ..core import engine, opt_ml
from ..core.data import sample_rows
from .bench_server import (
    NOT_MEASURED,
    BenchError,
    Server,
    find_base_image,
    fmt,
    load_average,
    log,
    machine_line,
    round_trips,
    run_wrk,
    size_mb,
)
from .serve import unpack_model

# Room left per instance when suggesting a count: a server run at its limit has a long tail.
HEADROOM = 0.7


def labels(project):
    """The bench containers' labels: `make local-stop` removes them too."""
    return engine.labels_for(project.root, "bench")


# --- the model and the request bodies -----------------------------------------------------------


def train_sample_model(client, image, workdir, project):
    """Train the image's own code (code/train.R) on the project's data/train; returns the model dir."""
    ml = workdir / "ml"
    (ml / "input" / "config").mkdir(parents=True)
    opt_ml.write_json(ml / "input" / "config" / "hyperparameters.json", {})
    opt_ml.write_json(
        ml / "input" / "config" / "inputdataconfig.json", {"train": {"TrainingInputMode": "File"}}
    )
    shutil.copytree(project.data / "train", ml / "input" / "data" / "train")
    for part in ("model", "output"):
        (ml / part).mkdir()
    log(f"training the sample model in {image}")
    # Not all of /opt/ml: that would hide the code baked into /opt/ml/code.
    mounts = [engine.bind(ml / part, f"/opt/ml/{part}") for part in ("input", "model", "output")]
    spec = {"image": image, "command": ["train"], "mounts": mounts, "labels": labels(project)}
    if engine.run_to_completion(client, [spec]) != [0] or not (ml / "model" / "model.rds").exists():
        raise BenchError("training the sample model failed: see its log above")
    return ml / "model"


def prepare_model(client, image, model_tarball, workdir, project):
    """(model dir, what it is): the trained model.tar.gz unpacked, else the sample model trained here."""
    if model_tarball.is_file():
        model_dir = workdir / "model"
        model_dir.mkdir()
        unpack_model(model_tarball, model_dir)
        return model_dir, str(model_tarball)
    log(f"no {model_tarball}: benchmarking the sample model (run `make local-train` to bench yours)")
    return train_sample_model(
        client, image, workdir, project
    ), "the sample model (code/train.R on data/train)"


def input_rows(project):
    """Every row of the first CSV under data/, without the target column, as SageMaker sends CSV."""
    body, _ = sample_rows(project.data, sys.maxsize, project.target())
    return body.splitlines(keepends=True)


def large_body(rows, megabytes):
    """Rows of data/ repeated to about `megabytes` MB (10^6 bytes) of CSV."""
    size = int(megabytes * 1e6)
    per_round = sum(len(row) for row in rows)
    return "".join(rows * max(1, size // per_round)).encode()


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


def measure(client, image, base_image, model_dir, settings, workdir, notes, project):
    """The figures, in the order of row_names()."""
    rows = input_rows(project)
    one_row, big = rows[0].encode(), large_body(rows, settings.large_body_mb)
    figures, loads = [], {}
    with Server(client, image, model_dir, workers=settings.workers, labels=labels(project)) as server:
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
        with Server(client, image, model_dir, workers=settings.workers, labels=labels(project)) as server:
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


def cleanup(client, workdir, image, project):
    """Remove our containers and temporary files (the trained model is root's if the engine runs as root)."""
    if client is not None:
        for container in engine.find_containers(client, project.root, "bench"):
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
    project = args.project
    workdir = Path(tempfile.mkdtemp(prefix="rsagemaker-bench-"))
    try:
        base_image = find_base_image(client, args.image, args.base_image)
        load_before = load_average()
        log(f"{args.image} (base {base_image}) on {os.cpu_count()} CPUs, load average {load_before}")
        model_tarball = Path(args.model) if args.model else project.build / "model.tar.gz"
        model_dir, model = prepare_model(client, args.image, model_tarball, workdir, project)
        notes = []
        figures = measure(client, args.image, base_image, model_dir, settings, workdir, notes, project)
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
        cleanup(client, workdir, args.image, project)
    print(f"\n{text}")
    output = Path(args.output) if args.output else project.build / "bench" / "results.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    log(f"wrote {output}. Next: change the model or SAGEMAKER_MODEL_SERVER_WORKERS, then make bench again.")
    return 0


def bench_arguments(parser):
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--image", required=True, help="the training + serving image to measure")
    add(
        "--base-image",
        default=os.environ.get("BASE_IMAGE"),
        help="its base image (default: $BASE_IMAGE; "
        "else the local image it was built on, found by its layers)",
    )
    add("--model", help="the model.tar.gz to serve (default: build/model.tar.gz)")
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
    add("--output", help="where the markdown report goes (default: build/bench/results.md)")
