"""Helpers for this project's SageMaker images: local runs, pushes, remote jobs and the benchmark."""


class ToolError(Exception):
    """A problem the user can fix (an argument, a setting, credentials, a missing engine or image).

    The command line prints it as one `error:` line, without a traceback, and exits with exit_code.
    """

    exit_code = 1
