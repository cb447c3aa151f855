"""Run a Python script with every network access outside loopback refused and recorded.

usage: python sdk_guard.py REPORT.json SCRIPT.py
       (or, from a sitecustomize.py: sdk_guard.install_for_embedded(REPORT.json))

Run by the SageMaker SDK's own virtual environment (tests/test_sdk.py), so that the SDK's local
modes can be checked to touch no AWS host: an audit hook sees each name lookup and each connect
of this process and its threads, records it, and refuses (raises OSError) any that would leave
127.0.0.1 / ::1 / localhost / a unix socket. REPORT.json gets the accesses, the refusals, the
script's error if it raised (type and message), and the script's top-level string and list
variables (the snippets' outputs, e.g. `predictions`).
"""

import json
import runpy
import socket
import sys
import traceback

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


def is_loopback_address(host):
    return host in LOOPBACK_NAMES or str(host).startswith("127.")


def install():
    """Start refusing and recording; returns (accesses, refused), the lists the hook fills."""
    accesses, refused = [], []

    def hook(event, args):
        if event == "socket.getaddrinfo":
            host = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            accesses.append({"lookup": host})
            if not is_loopback_address(host):
                refused.append({"lookup": host})
                raise socket.gaierror(
                    socket.EAI_NONAME, f"sdk_guard: lookup of {host} refused (loopback only)"
                )
        elif event == "socket.connect":
            sock, address = args
            if sock.family == socket.AF_UNIX:
                accesses.append({"connect": str(address)})
                return
            host, port = address[0], address[1]
            accesses.append({"connect": f"{host}:{port}"})
            if not is_loopback_address(host):
                refused.append({"connect": f"{host}:{port}"})
                raise ConnectionRefusedError(
                    f"sdk_guard: connection to {host}:{port} refused (loopback only)"
                )

    sys.addaudithook(hook)
    return accesses, refused


def install_for_embedded(report_path):
    """For a Python embedded elsewhere (R's reticulate, through sitecustomize): report at exit."""
    import atexit

    accesses, refused = install()

    def write():
        with open(report_path, "w") as report:
            json.dump({"accesses": accesses, "refused": refused}, report)

    atexit.register(write)


def main(report_path, script):
    accesses, refused = install()
    sys.argv = [script]
    error, variables = None, {}
    try:
        variables = runpy.run_path(script, run_name="__main__")
    except BaseException as caught:  # noqa: BLE001 - the report says what the script raised
        error = {"type": type(caught).__name__, "message": str(caught)[:2000]}
        traceback.print_exc()
    outputs = {
        name: value
        for name, value in variables.items()
        if not name.startswith("_") and isinstance(value, (str, int, float, list))
    }
    with open(report_path, "w") as report:
        json.dump(
            {"accesses": accesses, "refused": refused, "error": error, "outputs": outputs},
            report,
            default=str,
        )
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
