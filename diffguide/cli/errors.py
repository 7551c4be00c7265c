"""Errors the CLI reports as one line with exit code 2 (bad input)."""


class UsageError(ValueError):
    pass
