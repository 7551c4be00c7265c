"""Errors the CLI reports as one line with exit code 2 (bad input)."""


class UsageError(ValueError):
    """Bad input to a command: reported as one line on stderr with exit code 2, before any work."""
