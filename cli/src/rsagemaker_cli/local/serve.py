"""`rsagemaker local-serve` and `local-stop`: the training image serving a model on 127.0.0.1.

local-serve runs `IMAGE serve` detached, as SageMaker runs a serving container, with the unpacked
build/model.tar.gz read-only at /opt/ml/model (--multi-model: a multi-model endpoint of the models in
build/models/, see multi_model.py), and returns once /ping answers 200. local-stop stops and removes
every container this project started (they carry its labels, core/engine.py).
"""

import sys
import tarfile
import time
from pathlib import Path

import requests

from ..core import engine
from ..core.errors import SetupError
from ..core.project import model_tarballs
from ..core.settings import load
from . import multi_model

CONTAINER_CAPTURE_DIR = "/opt/ml/capture"  # where the local endpoint's workers write the capture
HEALTH_TIMEOUT = 240  # seconds SageMaker gives a new endpoint to pass /ping
STOP_TIMEOUT = 30


def local_serve_arguments(parser):
    parser.add_argument("--image", required=True, help="training image reference")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default: 8080)")
    parser.add_argument("--model", help="the model.tar.gz to serve (default: build/model.tar.gz)")
    parser.add_argument("--timeout", type=float, default=HEALTH_TIMEOUT, help="seconds to wait for /ping")
    parser.add_argument(
        "--multi-model",
        action="store_true",
        help="a multi-model endpoint of the models in build/models/ (SAGEMAKER_MULTI_MODEL=true)",
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help="data capture: each answered request into build/capture/ as SageMaker records it",
    )


def unpack_model(tarball, dest):
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, filter="data")  # refuses members that leave dest
        else:
            archive.extractall(dest)


def wait_until_healthy(container, url, timeout):
    """Poll /ping until it answers 200; False if the container exits or time runs out."""
    started = time.monotonic()
    next_report = started + 2
    while time.monotonic() - started < timeout:
        container.reload()
        if container.status in ("exited", "dead"):
            return False
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        if time.monotonic() >= next_report:
            print(f"    waiting for {url}/ping ({time.monotonic() - started:.0f}s)", flush=True)
            next_report += 2
        time.sleep(0.25)
    return False


def local_serve(args):
    project = args.project
    model_tarball = Path(args.model) if args.model else project.build / "model.tar.gz"
    tarballs = model_tarballs(project.root) if args.multi_model else []
    if not args.multi_model and not model_tarball.is_file():
        raise SetupError(f"{project.show(model_tarball)} does not exist: run `make local-train` first")
    client = engine.connect()
    engine.check_image(client, args.image)
    for old in engine.find_containers(client, project.root, "serving"):
        print(f"==> Replacing the running local endpoint {old.labels.get(engine.LABEL_URL, old.short_id)}")
        engine.remove(old, timeout=10)

    url = f"http://127.0.0.1:{args.port}"
    if args.multi_model:
        return serve_multi_model(args, project, client, url, tarballs)
    model_dir = project.build / "serving" / "model"
    engine.clear_directory(model_dir, client, args.image)
    model_dir.mkdir(parents=True)
    unpack_model(model_tarball, model_dir)
    what = f"model from {project.show(model_tarball)}"
    mounts = [engine.bind(model_dir, "/opt/ml/model", read_only=True)]
    environment = capture_environment(args, project, mounts) if getattr(args, "capture", False) else None
    container = start_endpoint(args, project, client, url, what, mounts=mounts, environment=environment)
    if container is None:
        return 1
    print(f"==> Endpoint ready at {url} (model read-only at /opt/ml/model from {project.show(model_dir)})")
    print("Next: make predict")
    print(f"      curl -s -X POST -H 'Content-Type: text/csv' --data '5.1,3.5,1.4,0.2' {url}/invocations")
    print(f"      docker logs -f {container.short_id}")
    print("      make local-stop")
    return 0


def capture_environment(args, project, mounts):
    """Data capture as SageMaker writes it (rsagemaker's serving workers, R/capture.R): build/capture/
    <endpoint>/AllTraffic/yyyy/mm/dd/hh/*.jsonl, capture.sampling_percentage of the requests."""
    settings = load(project, keys=("endpoint.name", "capture.sampling_percentage"))
    capture = project.build / "capture"
    capture.mkdir(parents=True, exist_ok=True)
    mounts.append(engine.bind(capture, CONTAINER_CAPTURE_DIR))
    print(
        f"==> Data capture on: {project.show(capture)}/{settings['endpoint.name']}/AllTraffic/ "
        f"({settings['capture.sampling_percentage']} % of the requests)"
    )
    return {
        "SAGEMAKER_CAPTURE_DIR": CONTAINER_CAPTURE_DIR,
        "SAGEMAKER_CAPTURE_ENDPOINT": settings["endpoint.name"],
        "SAGEMAKER_CAPTURE_VARIANT": "AllTraffic",
        "SAGEMAKER_CAPTURE_SAMPLING": str(settings["capture.sampling_percentage"]),
    }


def serve_multi_model(args, project, client, url, tarballs):
    """A multi-model endpoint: no model at start; predict --target-model loads them as SageMaker would."""
    models_dir = multi_model.local_models_dir(project)
    engine.clear_directory(models_dir, client, args.image)
    models_dir.mkdir(parents=True)
    container = start_endpoint(
        args,
        project,
        client,
        url,
        "multi-model",
        mounts=[engine.bind(models_dir, multi_model.CONTAINER_MODELS_DIR, read_only=True)],
        environment={multi_model.MULTI_MODEL_VARIABLE: "true"},
        labels={multi_model.LABEL_MULTI_MODEL: "true"},
    )
    if container is None:
        return 1
    print(
        f"==> Multi-model endpoint ready at {url}: no model loaded yet; {len(tarballs)} model(s) to ask for"
    )
    print(
        f"    ({project.show(project.models_dir)}/*.tar.gz; unpacked on first use under "
        f"{project.show(models_dir)}/<id>/model)"
    )
    print("Next, one per model (each loads on its first request, as on SageMaker):")
    multi_model.print_targets(tarballs, "make predict")
    print(f"      curl -s {url}/models      (the loaded models)")
    print(f"      docker logs -f {container.short_id}")
    print("      make local-stop")
    return 0


def start_endpoint(args, project, client, url, what, mounts, environment=None, labels=None):
    """`IMAGE serve` detached on 127.0.0.1:PORT; the container once /ping answers 200, else None
    (its log printed, the container removed)."""
    with engine.sigterm_as_interrupt():
        try:
            container = client.containers.run(
                args.image,
                command=["serve"],
                detach=True,
                mounts=mounts,
                environment=environment or {},
                ports={"8080/tcp": ("127.0.0.1", args.port)},
                labels=engine.labels_for(
                    project.root, "serving", **{engine.LABEL_URL: url}, **(labels or {})
                ),
            )
        except engine.docker.errors.APIError as error:
            for created in engine.find_containers(client, project.root, "serving"):  # created, not started
                engine.remove(created, timeout=1)
            raise engine.EngineError(
                f"cannot start the endpoint on 127.0.0.1:{args.port} ({error.explanation or error}); "
                "is the port taken? Try --port"
            ) from None
        print(f"==> Started {args.image} serve as container {container.short_id}, {what}")
        try:
            healthy = wait_until_healthy(container, url, args.timeout)
        except KeyboardInterrupt:
            engine.remove(container, timeout=5)
            raise
    if not healthy:
        container.reload()
        print(container.logs(tail=40).decode("utf-8", "replace"), file=sys.stderr)
        print(
            f"==> The endpoint did not become healthy ({container.status}, "
            f"exit code {container.attrs['State'].get('ExitCode')}): see the log above",
            file=sys.stderr,
        )
        engine.remove(container, timeout=5)
        return None
    return container


def local_stop(args):
    project = args.project
    client = engine.connect()
    containers = engine.find_containers(client, project.root)
    if not containers:
        print("==> No local container of this project is running.")
        return 0
    for container in containers:
        role = container.labels.get(engine.LABEL_TOOL)
        print(
            f"==> Stopping {role} container {container.short_id} {container.labels.get(engine.LABEL_URL, '')}"
        )
        engine.remove(container, timeout=STOP_TIMEOUT)
    print(f"==> Stopped {len(containers)} container(s).")
    return 0
