"""The errors a command reports as one `error:` line (no traceback), with its exit code."""


class ToolError(Exception):
    """A problem the user can fix (an argument, a setting, credentials, a missing engine or image)."""

    exit_code = 1


class SetupError(ToolError):
    """A setting, a project file, an argument or credentials to fix before anything can be done."""

    exit_code = 2
