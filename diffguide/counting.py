"""Counters of the work a run does: denoiser calls, forward-model evaluations, gradients.

Methods are compared at equal cost, so every run counts:

- ``nfe``: denoiser (network) calls; a batched call counts once.
- ``operator_evals``: forward-model evaluations, one per sample (a batch of J
  particles is J evaluations, as a black-box simulator would run them).
- ``grad_evals``: backward passes for guidance; a batched backward counts once.
- ``operator_failures`` / ``operator_retries``: black-box evaluations that failed after
  their retries, and the retries spent (``operators.black_box``).

Counting is contextual: ``with counting() as counts: solver(...)`` collects what
happens inside, and nested contexts add their totals to the enclosing one.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses


@dataclasses.dataclass
class Counters:
    nfe: int = 0
    operator_evals: int = 0
    grad_evals: int = 0
    operator_failures: int = 0
    operator_retries: int = 0

    def add(self, other: "Counters") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


_active: contextvars.ContextVar[Counters | None] = contextvars.ContextVar("diffguide_counters", default=None)


@contextlib.contextmanager
def counting():
    """Collect the counts of everything run inside; yields the live ``Counters``."""
    outer = _active.get()
    counts = Counters()
    token = _active.set(counts)
    try:
        yield counts
    finally:
        _active.reset(token)
        if outer is not None:
            outer.add(counts)


def count(field: str, n: int = 1) -> None:
    """Add ``n`` to a counter of the active context (no-op outside one)."""
    counts = _active.get()
    if counts is not None:
        setattr(counts, field, getattr(counts, field) + n)
