"""The ``diffguide`` command line: ``diffguide demo``, ``diffguide solve``, ``diffguide sample``,
``diffguide train``, ``diffguide bench``, ``diffguide tune``.

Bad input is one line on stderr and exit code 2; NaN/Inf during guidance is exit code 1
with the step index."""
from __future__ import annotations

import argparse
import sys

from . import bench, demo, sample, solve, train, tune

#: each command's module by its name, in the order ``--help`` lists them
COMMANDS = {"demo": demo, "solve": solve, "sample": sample, "train": train, "bench": bench, "tune": tune}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (``PROG: error: ...``) and exit code 2,
    like every other bad input; ``--help`` still prints the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="diffguide", description="Training-free guided sampling with diffusion priors.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help (0) or a parse error (2, already reported)
        return done.code
    from ..types import GuidanceDivergedError  # imports torch: only once a command runs

    try:
        code = args.run(args)
    except ValueError as err:  # UsageError and the library's own early checks
        print(f"diffguide {args.command}: error: {err}", file=sys.stderr)
        return 2
    except GuidanceDivergedError as err:
        print(f"diffguide {args.command}: error: {err}", file=sys.stderr)
        return 1
    return code or 0  # a command returns 1 when part of its work failed (bench: some runs)


def console() -> None:
    """Console-script entry point."""
    sys.exit(main())
