"""Failed runs: how a run's exception is recorded in its row, and the one line that names it."""
from __future__ import annotations

MESSAGE_CHARS = 300


def failure(err: BaseException) -> dict:
    """The row's ``error``: the exception's type and the first line of its message (cut to 300 characters)."""
    lines = str(err).strip().splitlines()
    message = lines[0] if lines else ""
    return {"type": type(err).__name__,
            "message": message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS - 3] + "..."}


def describe(row: dict) -> str:
    """``task instance solver, seed S, N steps[, reduced]: Type: message``."""
    where = f"{row['task']} {row['instance']} {row['solver']}, seed {row['seed']}, {row['steps']} steps"
    error = row.get("error") or {}
    return f"{where}{', reduced' if row['reduced'] else ''}: {error.get('type')}: {error.get('message')}"
