"""The container engine (Docker, or podman's Docker API) for the local runs.

Every container the commands start carries LABEL_TOOL plus LABEL_PROJECT (the project's folder), so
`local-stop` finds the ones of this project and no others. Foreground runs remove their container
when they end, also on Ctrl-C or SIGTERM.
"""

import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors
import requests
from docker.types import Mount

from .errors import ToolError

LABEL_TOOL = "rsagemaker.role"
LABEL_PROJECT = "rsagemaker.project"
LABEL_URL = "rsagemaker.url"


class EngineError(ToolError):
    """No usable engine, an image not built, a container that cannot start."""


def connect():
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure here means "no usable engine"
        raise EngineError(
            f"no container engine answers ({error}). Start Docker, or point DOCKER_HOST at podman's "
            "Docker API socket (podman system service)."
        ) from None
    return client


def check_image(client, ref):
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise EngineError(f"image {ref} is not built here: run `make build` first") from None


def bind(source, target, read_only=False):
    return Mount(target=target, source=str(Path(source).resolve()), type="bind", read_only=read_only)


def labels_for(project_dir, role, **extra):
    return {LABEL_TOOL: role, LABEL_PROJECT: str(Path(project_dir).resolve()), **extra}


def find_containers(client, project_dir, role=None):
    wanted = [f"{LABEL_PROJECT}={Path(project_dir).resolve()}"]
    wanted.append(f"{LABEL_TOOL}={role}" if role else LABEL_TOOL)
    return client.containers.list(all=True, filters={"label": wanted})


def remove(container, stop_signal=None, timeout=10):
    """Stop a container (stop_signal first, as SageMaker does, then SIGKILL after timeout) and remove it."""
    try:
        container.reload()
        if container.status == "running":
            if stop_signal:
                container.kill(signal=stop_signal)
                try:
                    container.wait(timeout=timeout)
                except requests.exceptions.RequestException:
                    print(f"{container.short_id} still runs after {timeout}s: killing it", file=sys.stderr)
            else:
                container.stop(timeout=timeout)
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


@contextmanager
def sigterm_as_interrupt():
    """Let SIGTERM (e.g. from a CI runner) clean up like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stream_logs(container, prefix):
    buffered = b""
    for chunk in container.logs(stream=True, follow=True):
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            print(prefix + line.decode("utf-8", "replace"), flush=True)
    if buffered:
        print(prefix + buffered.decode("utf-8", "replace"), flush=True)


def run_to_completion(client, specs, stop_signal="SIGTERM", stop_timeout=30):
    """Run one or more containers (dicts of containers.create arguments), stream their logs, and
    return their exit codes in order. With several, each log line and each end ("exit code N", as
    it happens) is prefixed by the container's host name. The containers are removed at the end,
    whatever happens: on Ctrl-C each one gets stop_signal, then SIGKILL after stop_timeout seconds.
    """
    containers = []
    with sigterm_as_interrupt():
        try:
            for spec in specs:
                containers.append(client.containers.create(**spec))
            prefix_width = max(len(spec.get("hostname") or "") for spec in specs)
            threads, waiters, codes = [], [], [None] * len(specs)

            def wait(index, container, prefix):
                codes[index] = container.wait()["StatusCode"]
                if prefix:
                    print(f"{prefix}==> exit code {codes[index]}", flush=True)

            for index, (spec, container) in enumerate(zip(specs, containers)):
                prefix = f"{spec['hostname']:<{prefix_width}} | " if len(specs) > 1 else ""
                container.start()
                thread = threading.Thread(target=_stream_logs, args=(container, prefix), daemon=True)
                thread.start()
                threads.append(thread)
                waiter = threading.Thread(target=wait, args=(index, container, prefix), daemon=True)
                waiter.start()
                waiters.append(waiter)
            for waiter in waiters:
                while waiter.is_alive():  # joined in steps: Ctrl-C still reaches this thread
                    waiter.join(timeout=0.5)
            for thread in threads:
                thread.join(timeout=5)
            return codes
        except KeyboardInterrupt:
            print(
                f"\nInterrupted: stopping {len(containers)} container(s) with {stop_signal}...",
                file=sys.stderr,
            )
            raise
        finally:
            for container in containers:
                remove(container, stop_signal=stop_signal, timeout=stop_timeout)


@contextmanager
def job_network(client, name, labels):
    """A user-defined network for a job's containers, removed at the end: on it each container
    reaches the others by host name (give each the alias of its host: network_of())."""
    network = client.networks.create(name, driver="bridge", labels=labels)
    try:
        yield network.name
    finally:
        try:
            network.remove()
        except docker.errors.APIError:
            pass


def network_of(client, network, host):
    """The containers.create arguments that put a container on network, reachable as host."""
    return {
        "network": network,
        "networking_config": {network: client.api.create_endpoint_config(aliases=[host])},
    }


def clear_directory(path, client=None, image=None):
    """Delete path. Containers run as root, so files they wrote through a bind mount may belong to
    root; if this user may not delete them, a throwaway container of `image` does it."""
    path = Path(path)
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        if client is None or image is None:
            raise
        parent = path.resolve().parent
        client.containers.run(
            image,
            entrypoint=["rm", "-rf", f"/work/{path.name}"],
            command=[],
            mounts=[bind(parent, "/work")],
            remove=True,
        )
