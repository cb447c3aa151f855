"""The template's benchmark (`make bench`): the generated server against the seed's design, and the
serving targets, on the default bake.

It bakes the default project into build/bench/ (or takes --project), builds its training image on
the stand-in base or BASE_IMAGE, and measures, with the project CLI's benchmark code
(rsagemaker_cli.local.bench_server: the server, wrk through its wrk-report.lua, the memory probe):

(a) the seed's design: ONE plumber process on the port (bench/seed-plumber: the training image plus
    plumber, serving the same deploy.R handlers through the same serving code);
(b) the template's server: `IMAGE serve` (nginx in front of N R workers, forked from one R master
    that loaded the model once).

Side by side: requests/s and p50/p99 at 1 and 4 keep-alive connections for the sample model and a
~50 ms model (bench/models/slow), /ping while a long invocation runs, cold start, image sizes,
leftovers, build times; then the serving targets of issue 15: the plumbing overhead and a 5 MB CSV
through a handler that returns one number per row (bench/models/one-number), 4 workers with a
synthetic 300 MB model (memory, cold start), a 60 s soak at 64 connections (server only). The table
goes to stdout and bench/results.md; each target says PASS or MISS. A MISS is an answer, not an
error: the exit code is non-zero only when the benchmark itself fails.
"""

import argparse
import asyncio
import functools
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import docker

TEMPLATE = Path(__file__).resolve().parent.parent
BENCH_DIR = TEMPLATE / "bench"
STANDIN_BASE = "localhost/r-sagemaker-standin:bookworm"
SLOW_MODEL_CODE = BENCH_DIR / "models" / "slow"
ONE_NUMBER_CODE = BENCH_DIR / "models" / "one-number"
SEED_CONTEXT = BENCH_DIR / "seed-plumber"
ONE_ROW = b"5.1,3.5,1.4,0.2\n"  # one iris row, as SageMaker sends CSV: no header
PING_INTERVAL_S = 0.1

SEED = "Single plumber (seed design)"
SERVER = "This template's server"
COLUMNS = ("Measurement", SEED, SERVER, "Target", "Result")
NA = "-"
SKIPPED = "skipped"


@dataclass
class Settings:
    duration_s: int = 10
    warmup_s: int = 2
    busy_s: float = 20
    cold_starts: int = 3
    large_model_mb: int = 300
    large_model_workers: int = 4
    csv_rows: int = 250_000
    round_trips: int = 5
    soak_s: int = 60
    soak_connections: int = 64
    skip_build_times: bool = False


QUICK = Settings(
    duration_s=3, warmup_s=1, busy_s=3, cold_starts=1, large_model_mb=30, round_trips=2, soak_s=3
)


@dataclass
class Row:
    name: str
    seed: str
    server: str
    target: str = NA
    result: str = NA

    def cells(self):
        return (self.name, self.seed, self.server, self.target, self.result)


def bake_tools(project):
    """The CLI's benchmark code (rsagemaker_cli.local.bench_server, .bench) bound to the bake: its
    containers carry the bake's labels (make local-stop removes them), the sample model trains on
    the bake's data."""
    from rsagemaker_cli.core.project import find_project
    from rsagemaker_cli.local import bench, bench_server

    bake = find_project(project)
    labels = bench.labels(bake)
    return SimpleNamespace(
        LABELS=labels,
        BenchError=bench_server.BenchError,
        Server=functools.partial(bench_server.Server, labels=labels),
        fmt=bench_server.fmt,
        load_average=bench_server.load_average,
        machine_line=bench_server.machine_line,
        round_trips=bench_server.round_trips,
        run_wrk=bench_server.run_wrk,
        size_mb=bench_server.size_mb,
        train_sample_model=lambda client, image, workdir: bench.train_sample_model(
            client, image, workdir, bake
        ),
        cleanup=lambda client, workdir, image: bench.cleanup(client, workdir, image, bake),
    )


@dataclass
class Run:
    """What the phases share: the CLI's benchmark code (bake_tools), the engine, the images, a work dir."""

    tools: object
    client: object
    images: dict
    base_image: str
    project: Path
    settings: Settings
    workdir: Path
    notes: list = field(default_factory=list)


def log(message):
    print(f"compare: {message}", flush=True)


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def judge(value, limit, at_least=False):
    if value is None or math.isnan(value):
        return "MISS"
    return "PASS" if (value >= limit if at_least else value <= limit) else "MISS"


def target_row(name, seed, server, limit, fmt, at_least=False):
    """A row with a target: `<= limit` (or `>= limit`) and PASS/MISS for the server's figure."""
    target = f"{'>=' if at_least else '<='} {limit:g}"
    return Row(name, fmt(seed), fmt(server), target, judge(server, limit, at_least))


def row_names(settings):
    """The rows of the table, in order (the template's smoke test checks them)."""
    names = []
    for model in ("Sample model", "50 ms model"):
        for connections in (1, 4):
            plural = "connection" if connections == 1 else "connections"
            for metric in ("requests/s", "p50 latency (ms)", "p99 latency (ms)"):
                names.append(f"{model}, {connections} keep-alive {plural}: {metric}")
    busy = f"{settings.busy_s:g} s invocation runs"
    mb, workers = settings.large_model_mb, settings.large_model_workers
    soak = f"Soak, {settings.soak_connections} connections for {settings.soak_s} s"
    return names + [
        "50 ms model, 4 connections: throughput relative to the single plumber (x)",
        f"/ping p50 while a {busy} (ms)",
        f"/ping p99 while a {busy} (ms)",
        f"Cold start, container start to first 200 on /ping, median of {settings.cold_starts} (s)",
        "Plumbing overhead, one number per row, 1-row CSV, 1 connection: p50 (ms)",
        "Plumbing overhead, one number per row, 1-row CSV, 1 connection: p99 (ms)",
        f"CSV of {settings.csv_rows} rows x 4 through that handler: round trip, median (ms)",
        f"{mb} MB model, {workers} workers (seed: 1 process): container memory over model size (x)",
        f"{mb} MB model, {workers} workers: cold start to first 200 on /ping (s)",
        f"{soak}: failed or non-2xx responses (count)",
        f"{soak}: container memory growth after warm-up (%)",
        "Image size: base (MB)",
        "Image size: image under test (MB)",
        "Image size over the base (MB)",
        "Leftovers over the base: apt lists, caches, compilers (count)",
        "Build time, cold (--no-cache) (s)",
        "Build time after a code-only change (s)",
    ]


# --- the bake and its images --------------------------------------------------------------------


def bake_and_build(args):
    """The bake (baked here unless --project) with its training image built; returns (project, image)."""
    env = {**os.environ, "TAG": args.tag}
    if args.project:
        project = Path(args.project).resolve()
    else:
        from cookiecutter.main import cookiecutter

        out = TEMPLATE / "build" / "bench"
        shutil.rmtree(out, ignore_errors=True)
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out)))
        log(f"baked the default project into {project}")
    if not args.no_build:
        log(f"building the training image of {project.name} on {args.base_image} (TAG={args.tag})")
        subprocess.run(
            ["make", "-s", "-C", str(project), "build-training", f"BASE_IMAGE={args.base_image}"],
            env=env,
            check=True,
        )
    images = subprocess.run(
        ["make", "-s", "-C", str(project), "images"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    return project, dict(line.split("=", 1) for line in images)["training"]


def run_to_completion(run, image, command, volumes, what, **kwargs):
    """Run a container to its end; its output, or BenchError with the output's tail."""
    container = run.client.containers.run(
        image, command, detach=True, volumes=volumes, labels=run.tools.LABELS, **kwargs
    )
    try:
        status = container.wait(timeout=600).get("StatusCode", 1)
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status != 0:
        raise run.tools.BenchError(f"{what} failed (exit {status}):\n{output[-3000:]}")
    return output


def build_seed_image(run):
    image = run.images[SERVER]
    name, _, tag = image.rpartition(":")
    seed = f"{name}-bench-seed-plumber:{tag}"
    log(f"building the seed-style image {seed} (FROM {image} + plumber)")
    try:
        run.client.images.build(
            path=str(SEED_CONTEXT), tag=seed, buildargs={"TRAINING_IMAGE": image}, rm=True, forcerm=True
        )
    except docker.errors.BuildError as error:
        lines = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
        raise run.tools.BenchError(f"building {seed} failed: {error}\n{lines[-3000:]}") from error
    return seed


def make_large_model(run):
    """A model.rds of large_model_mb MB of doubles (uncompressed), written by R in the image."""
    folder = run.workdir / "large-model"
    (folder / "code").mkdir(parents=True)  # where the handler is mounted (the model is read-only)
    doubles = run.settings.large_model_mb * 1_000_000 // 8
    script = f'saveRDS(runif({doubles}), "/work/model.rds", compress = FALSE)'
    volumes = {str(folder): {"bind": "/work", "mode": "rw"}}
    what = "writing the large model"
    run_to_completion(run, run.images[SERVER], ["-e", script], volumes, what, entrypoint=["Rscript"])
    return folder


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


def leftovers(run, image):
    output = run_to_completion(
        run, image, ["-c", LEFTOVER_PROBE], {}, f"probing {image}", entrypoint=["/bin/sh"]
    )
    return set(output.split())


# --- the phases ---------------------------------------------------------------------------------


def serve(run, design, model_dir, code_dir=None, workers=None):
    """A server of `design`; the seed's plumber ignores `workers` (it is one process)."""
    return run.tools.Server(run.client, run.images[design], model_dir, code_dir, workers=workers)


def load_rows(run, model_dir):
    """Throughput and latency of the sample model, then of the ~50 ms model, for both designs."""
    s, tools, rows = run.settings, run.tools, []
    loads = {}
    for model, code in (("sample", None), ("50 ms", SLOW_MODEL_CODE)):
        for design in (SEED, SERVER):
            with serve(run, design, model_dir, code) as server:
                tools.run_wrk(server.url, 4, s.warmup_s, ONE_ROW, run.workdir)  # warm up R and connections
                for connections in (1, 4):
                    load = tools.run_wrk(server.url, connections, s.duration_s, ONE_ROW, run.workdir)
                    loads[model, design, connections] = load
                    log(
                        f"{model} model, {design}, {connections} connection(s): {load.requests_per_s:.1f} "
                        f"req/s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, {load.errors} failed"
                    )
                    if load.errors:
                        run.notes.append(
                            f"{design}, {model} model, {connections} connection(s): {load.errors} failed."
                        )
        for connections in (1, 4):
            seed, ours = loads[model, SEED, connections], loads[model, SERVER, connections]
            for metric in ("requests_per_s", "p50_ms", "p99_ms"):
                if (model, connections, metric) == ("sample", 1, "p50_ms"):
                    rows.append(target_row("", seed.p50_ms, ours.p50_ms, 5, tools.fmt))
                else:
                    rows.append(Row("", tools.fmt(getattr(seed, metric)), tools.fmt(getattr(ours, metric))))
    seed_rate, our_rate = loads["50 ms", SEED, 4].requests_per_s, loads["50 ms", SERVER, 4].requests_per_s
    ratio = our_rate / seed_rate if seed_rate else None
    rows.append(Row("", "1.00", tools.fmt(ratio, 2), ">= 1.8", judge(ratio, 1.8, at_least=True)))
    return rows


async def _ping_while_busy(url, busy_s):
    import aiohttp

    loop = asyncio.get_running_loop()
    # force_close: every ping opens its own connection, as a health checker does.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=busy_s + 60), connector=connector
    ) as session:

        async def busy_invocation():
            headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": f"sleep={busy_s:g}"}
            async with session.post(f"{url}/invocations", data=ONE_ROW, headers=headers) as response:
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


def ping_rows(run, model_dir):
    """/ping (one new connection every 100 ms) while one invocation holds a worker for busy_s."""
    ping = {}
    for design in (SEED, SERVER):
        with serve(run, design, model_dir, SLOW_MODEL_CODE) as server:
            log(
                f"/ping every {PING_INTERVAL_S * 1000:.0f} ms during a {run.settings.busy_s:g} s invocation: {design}"
            )
            status, latencies, failures = asyncio.run(_ping_while_busy(server.url, run.settings.busy_s))
        if status != 200:
            run.notes.append(f"{design}: the {run.settings.busy_s:g} s invocation answered {status}.")
        if failures:
            run.notes.append(
                f"{design}: {failures} of {len(latencies)} pings while busy failed or were not 200."
            )
        ping[design] = (percentile(latencies, 50), percentile(latencies, 99))
    fmt = run.tools.fmt
    return [
        Row("", fmt(ping[SEED][0]), fmt(ping[SERVER][0])),
        target_row("", ping[SEED][1], ping[SERVER][1], 100, fmt),
    ]


def cold_start_rows(run, model_dir):
    cold = {SEED: [], SERVER: []}
    for _ in range(run.settings.cold_starts):
        for design in (SEED, SERVER):
            with serve(run, design, model_dir) as server:
                cold[design].append(server.cold_start_s)
    for design, starts in cold.items():
        run.notes.append(f"Cold starts, {design} (s): {', '.join(f'{s:.2f}' for s in starts)}.")
    fmt = run.tools.fmt
    seed, ours = statistics.median(cold[SEED]), statistics.median(cold[SERVER])
    return [target_row("", seed, ours, 2, lambda v: fmt(v, 2))]


def one_number_rows(run, model_dir):
    """The plumbing overhead (a handler that returns one number per row) and a large CSV through it."""
    s, tools = run.settings, run.tools
    generator = random.Random(15)
    big = "".join(
        ",".join(f"{generator.uniform(0, 9.99):.2f}" for _ in range(4)) + "\n" for _ in range(s.csv_rows)
    ).encode()
    figures = {}
    for design in (SEED, SERVER):
        with serve(run, design, model_dir, ONE_NUMBER_CODE) as server:
            tools.run_wrk(server.url, 1, s.warmup_s, ONE_ROW, run.workdir)
            load = tools.run_wrk(server.url, 1, s.duration_s, ONE_ROW, run.workdir)
            seconds = tools.round_trips(server.url, big, s.round_trips)
            if design == SERVER:
                # The machine's floor under these figures: nginx alone, answering /ping from a file.
                floor = tools.run_wrk(server.url, 1, s.duration_s, None, run.workdir, path="/ping")
                run.notes.append(
                    f"nginx alone (GET /ping, answered from a file), 1 connection: p50 {floor.p50_ms:.2f} ms, "
                    f"p99 {floor.p99_ms:.2f} ms: the floor of this machine under the plumbing overhead."
                )
        figures[design] = (load.p50_ms, load.p99_ms, statistics.median(seconds) * 1000)
        log(
            f"one number per row, {design}: p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, "
            f"{len(big) / 1e6:.1f} MB CSV {figures[design][2]:.0f} ms"
        )
    run.notes.append(
        f"The large CSV: {len(big) / 1e6:.2f} MB ({s.csv_rows} rows of 4 numbers with 2 decimals)."
    )
    fmt2 = functools.partial(tools.fmt, digits=2)
    return [
        target_row("", figures[SEED][i], figures[SERVER][i], limit, fmt2)
        for i, limit in enumerate((1.0, 3, 100))
    ]


def large_model_rows(run):
    """Container memory and cold start with a large model.rds, 4 workers (the seed: one process)."""
    s, tools = run.settings, run.tools
    folder = make_large_model(run)
    model_mb = (folder / "model.rds").stat().st_size / 1e6
    figures = {}
    for design in (SEED, SERVER):
        with serve(run, design, folder, ONE_NUMBER_CODE, workers=s.large_model_workers) as server:
            if design == SERVER:
                server.wait_for_workers(s.large_model_workers)
            tools.run_wrk(server.url, s.large_model_workers, s.warmup_s, ONE_ROW, run.workdir)
            memory_mb = server.memory_bytes() / 1e6
            figures[design] = (memory_mb / model_mb, server.cold_start_s)
            if design == SERVER:
                master_mb, worker_mb = server.process_memory()
                if master_mb is not None and worker_mb is not None:
                    run.notes.append(
                        f"{model_mb:.0f} MB model, {design}: the master (which loaded it) "
                        f"{master_mb:.0f} MB resident, each worker {worker_mb:.0f} MB of its own on average."
                    )
        log(
            f"{model_mb:.0f} MB model, {design}: container memory {memory_mb:.0f} MB, cold start {server.cold_start_s:.2f} s"
        )
        run.notes.append(f"{model_mb:.0f} MB model, {design}: container memory {memory_mb:.0f} MB.")
    fmt = tools.fmt
    return [
        target_row("", figures[SEED][0], figures[SERVER][0], 1.5, lambda v: fmt(v, 2)),
        target_row("", figures[SEED][1], figures[SERVER][1], 2, lambda v: fmt(v, 2)),
    ]


def soak_rows(run, model_dir):
    """The server alone: soak_connections keep-alive connections for soak_s, after a warm-up."""
    s, tools = run.settings, run.tools
    with serve(run, SERVER, model_dir) as server:
        tools.run_wrk(server.url, s.soak_connections, max(s.warmup_s, 5), ONE_ROW, run.workdir)
        before = server.memory_bytes()
        load = tools.run_wrk(server.url, s.soak_connections, s.soak_s, ONE_ROW, run.workdir)
        after = server.memory_bytes()
    growth = (after - before) / before * 100
    log(
        f"soak: {load.requests} requests, {load.errors} failed, memory {before / 1e6:.0f} -> {after / 1e6:.0f} MB"
    )
    run.notes.append(
        f"Soak: {load.requests} requests ({load.requests_per_s:.0f}/s, p99 {load.p99_ms:.0f} ms), "
        f"container memory {before / 1e6:.0f} MB after warm-up, {after / 1e6:.0f} MB at the end."
    )
    return [
        Row("", NA, str(load.errors), "0", "PASS" if load.errors == 0 else "MISS"),
        target_row("", None, growth, 10, lambda v: tools.fmt(v, 1)),
    ]


def image_rows(run):
    tools, images = run.tools, run.images
    base, seed, ours = (
        tools.size_mb(run.client, ref) for ref in (run.base_image, images[SEED], images[SERVER])
    )
    added = sorted(leftovers(run, images[SERVER]) - leftovers(run, run.base_image))
    if added:
        run.notes.append(f"Left in the image under test but not in its base: {', '.join(added)}.")
    fmt0 = functools.partial(tools.fmt, digits=0)
    return [
        Row("", fmt0(base), fmt0(base)),
        Row("", fmt0(seed), fmt0(ours)),
        target_row("", seed - base, ours - base, 190, fmt0),
        Row("", NA, str(len(added)), "0", "PASS" if not added else "MISS"),
    ]


def timed_build(run, context, tag, no_cache, log_file):
    command = [os.environ.get("DOCKER", "docker"), "build"] + (["--no-cache"] if no_cache else [])
    command += [
        "--build-arg",
        f"BASE_IMAGE={run.base_image}",
        "-f",
        "images/training/Dockerfile",
        "-t",
        tag,
        ".",
    ]
    started = time.monotonic()
    with open(log_file, "a") as output:
        status = subprocess.run(
            command, check=False, cwd=context, stdout=output, stderr=subprocess.STDOUT
        ).returncode
    if status != 0:
        tail = Path(log_file).read_text(errors="replace")[-3000:]
        raise run.tools.BenchError(f"`{' '.join(command)}` failed (exit {status}):\n{tail}")
    return time.monotonic() - started


def build_rows(run):
    """Build times of the server's image only (the seed's is built FROM it: not comparable)."""
    if run.settings.skip_build_times:
        return [Row("", NA, SKIPPED), Row("", NA, SKIPPED, "<= 10", NA)]
    context = run.workdir / "build-context"
    shutil.copytree(run.project, context, ignore=shutil.ignore_patterns(".venv", "build", "__pycache__"))
    tag = f"{run.images[SERVER].rpartition(':')[0]}:bench-build"
    log_file = run.workdir / "build.log"
    try:
        log(f"timing a cold build of {tag} (--no-cache; log in {log_file})")
        cold_s = timed_build(run, context, tag, True, log_file)
        with open(context / "code" / "train.R", "a") as changed:
            changed.write(f"\n# bench: code-only change at {time.time()}\n")
        code_only_s = timed_build(run, context, tag, False, log_file)
    finally:
        try:
            run.client.images.remove(tag)
        except docker.errors.APIError:
            pass
    fmt = run.tools.fmt
    return [Row("", NA, fmt(cold_s)), target_row("", None, code_only_s, 10, fmt)]


def markdown(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * 3 + [":---:"]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row.cells()) + " |" for row in rows])


def benchmark(run):
    model_dir = run.tools.train_sample_model(run.client, run.images[SERVER], run.workdir)
    phases = []
    rows = []
    for name, phase in (
        ("loads", lambda: load_rows(run, model_dir)),
        ("/ping while busy", lambda: ping_rows(run, model_dir)),
        ("cold starts", lambda: cold_start_rows(run, model_dir)),
        ("one number per row", lambda: one_number_rows(run, model_dir)),
        ("large model", lambda: large_model_rows(run)),
        ("soak", lambda: soak_rows(run, model_dir)),
        ("images", lambda: image_rows(run)),
        ("builds", lambda: build_rows(run)),
    ):
        phases.append(f"{name} {run.tools.load_average().split()[0]}")
        rows += phase()
    for row, name in zip(rows, row_names(run.settings), strict=True):
        row.name = name
    run.notes.append(f"1-minute load average at the start of each phase: {', '.join(phases)}.")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base-image", default=os.environ.get("BASE_IMAGE"), help="default: the stand-in base"
    )
    parser.add_argument("--project", help="an existing bake to measure (default: bake the default project)")
    parser.add_argument("--no-build", action="store_true", help="use the bake's training image as built")
    parser.add_argument("--tag", default=os.environ.get("TAG", "bench"), help="image tag (default bench)")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 3 s loads, a 30 MB model, a 3 s soak"
    )
    parser.add_argument("--skip-build-times", action="store_true", help="do not time the image builds")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results.md", help="the markdown report")
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else Settings(), skip_build_times=args.skip_build_times)
    if not args.base_image:
        subprocess.run(["bash", str(TEMPLATE / "scripts" / "standin-base.sh"), STANDIN_BASE], check=True)
        args.base_image = STANDIN_BASE
    project, image = bake_and_build(args)
    tools = bake_tools(project)

    if not shutil.which("wrk"):
        print("compare: error: wrk is not installed (scripts/host-packages.sh installs it)", file=sys.stderr)
        return 1
    client = docker.from_env(timeout=600)
    workdir = Path(tempfile.mkdtemp(prefix="template-bench-"))
    run = Run(tools, client, {SERVER: image}, args.base_image, project, settings, workdir)
    try:
        run.images[SEED] = build_seed_image(run)
        load_before = tools.load_average()
        rows = benchmark(run)
        text = "\n".join(
            [
                "# Template benchmark: the generated server against a single plumber process",
                "",
                (
                    f"Machine: {tools.machine_line(client)}. Load average before {load_before}, "
                    f"after {tools.load_average()}."
                ),
                "",
                f"Images: `{image}` and `{run.images[SEED]}` over `{args.base_image}`.",
                "",
                markdown(rows),
                "",
                *[f"- {note}" for note in run.notes],
                "",
                f"Reproduce: `make bench` in the template{' (QUICK=1: a smoke run)' if args.quick else ''}.",
                "",
            ]
        )
    except (tools.BenchError, docker.errors.DockerException) as error:
        print(f"compare: error: {error}", file=sys.stderr)
        return 1
    finally:
        tools.cleanup(client, workdir, image)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output}. Next: copy the figures that changed into bench/README.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
