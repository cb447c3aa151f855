"""Command line: python -m sagemaker_tools COMMAND (the Makefile's targets call these)."""

import argparse
import importlib
import importlib.util
import signal
import sys

import botocore.exceptions

from sagemaker_tools import ToolError

# Each module adds its commands with register(subparsers); a command's handler returns an exit code.
# A module of an image the project does not build (bench.py in a processing-only project) is absent,
# as are pipeline.py and registry.py where they do not apply. pipeline.py imports the SDK only when run.
MODULES = (
    "settings",
    "local",
    "ecr",
    "jobs",
    "endpoints",
    "async_inference",
    "autoscaling",
    "transform",
    "bench",
    "registry",
    "pipeline",
    "base_image",
)


def main(argv=None):
    # Ctrl-C (SIGINT) stops a command and removes its containers, also when it was started as a
    # background job of a script (`make local-train &`, some CI runners): such a job inherits SIGINT
    # ignored, and Python then leaves it ignored, so a stop would leave the containers running.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="python -m sagemaker_tools", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        if importlib.util.find_spec(f"sagemaker_tools.{name}") is not None:
            importlib.import_module(f"sagemaker_tools.{name}").register(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        message = " ".join(str(details.get("Message", "")).split())[
            :300
        ]  # one line, even from a proxy's HTML
        print(f"error: AWS refused {error.operation_name}: {details.get('Code')}: {message}", file=sys.stderr)
        return 1
    except botocore.exceptions.BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
