"""Start-up benchmark of the command line: how long ``diffguide --help`` and ``diffguide COMMAND --help`` take.

Prints the median wall time over ``--repeats`` fresh interpreters (``python -m diffguide.cli ...``)
of each, next to the median of ``python -c "import torch"`` measured in the same run, as the
baseline a lazy command line must stay below (goal: every help under 1.5 s).
Rounds alternate between the commands, so that all of them see the same machine load.
``python -m diffguide.benchmarks.cli_startup``.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from ..cli import COMMANDS

BASELINE = "import torch"


def seconds(argv: list[str]) -> float:
    """Wall time of one fresh interpreter running ``argv``; it must exit 0."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    runs = {"diffguide --help": ["-m", "diffguide.cli", "--help"]}
    runs.update({f"diffguide {name} --help": ["-m", "diffguide.cli", name, "--help"] for name in COMMANDS})
    runs[f'python -c "{BASELINE}"'] = ["-c", BASELINE]
    times = {label: [] for label in runs}
    for _ in range(args.repeats):
        for label, argv in runs.items():
            times[label].append(seconds(argv))
    medians = {label: statistics.median(values) for label, values in times.items()}
    baseline = medians[f'python -c "{BASELINE}"']
    width = max(map(len, medians))
    print(f"median wall time of {args.repeats} runs each ({sys.executable})")
    print(f"{'command':<{width}}  {'median s':>8}  {'/ import torch':>14}")
    for label, median in medians.items():
        print(f"{label:<{width}}  {median:8.2f}  {median / baseline:14.2f}")


if __name__ == "__main__":
    main()
