"""Integer options (``--n``, ``--steps``, ``--seed``, ``--particles``) checked against their bounds."""
from __future__ import annotations

import math

from .errors import UsageError

#: the most sampling steps: far beyond any useful schedule, yet keeps the schedule itself small
MAX_STEPS = 100_000
#: seeds torch's generator takes without wrapping
MAX_SEED = 2**63 - 1


def check_count(option: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` when ``low <= value <= high``; otherwise a one-line UsageError naming ``option``."""
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{option} must be {bound}, got {value}")
    return value


def check_positive_float(option: str, value: float) -> float:
    """``value`` when it is finite and positive."""
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} must be a finite positive number, got {value}")
    return value
