"""Counters of the work a run does: denoiser calls, forward-model evaluations, gradients.

Methods are compared at equal cost, so every run counts:

- ``nfe``: denoiser forward passes; a batched call counts once.
- ``backward_passes``: vector-Jacobian products through the denoiser, counted where they happen
  (``network_passes.denoise_counted``): a gradient through one denoiser call counts once, a
  gradient through the ``n`` calls of a multi-step estimate ``n`` times, one row of a Jacobian once.
- ``decoder_passes`` / ``decoder_backward_passes``: forward and backward passes through a latent
  prior's image decoder (``priors.latent``), counted as the denoiser's are but apart from them.
- ``operator_evals``: forward-model evaluations, one per sample (a batch of J
  particles is J evaluations, as a black-box simulator would run them).
- ``grad_evals``: guidance gradients the solver takes (through the denoiser or only through the
  reward, as MPGD's); a batched backward counts once.
- ``operator_failures`` / ``operator_retries``: black-box evaluations that failed after
  their retries, and the retries spent (``operators.black_box``); ``failure_reasons`` keeps
  why the first ``KEPT_REASONS`` of them failed.

A run's cost in network passes is ``network_passes(counts) = nfe + 2 backward_passes``: a
backward pass through a network costs about two forward passes' worth of compute.

Counting is contextual: ``with counting() as counts: solver(...)`` collects what
happens inside, and nested contexts add their totals to the enclosing one.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses


KEPT_REASONS = 3


@dataclasses.dataclass
class Counters:
    """The work counted in one ``counting()`` context (fields as in the module docstring)."""

    nfe: int = 0
    backward_passes: int = 0
    decoder_passes: int = 0
    decoder_backward_passes: int = 0
    operator_evals: int = 0
    grad_evals: int = 0
    operator_failures: int = 0
    operator_retries: int = 0
    failure_reasons: list[str] = dataclasses.field(default_factory=list)

    def work(self) -> dict[str, int]:
        """The network passes and evaluations, with the cost in forward-pass equivalents, for a record."""
        return {"nfe": self.nfe, "backward_passes": self.backward_passes, "network_passes": network_passes(self),
                "decoder_passes": self.decoder_passes, "decoder_backward_passes": self.decoder_backward_passes,
                "operator_evals": self.operator_evals, "grad_evals": self.grad_evals}

    def add(self, other: "Counters") -> None:
        for field in dataclasses.fields(self):
            if field.name != "failure_reasons":
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        note_failures(other.failure_reasons, self)


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


#: what one backward pass through the denoiser costs, in forward passes
BACKWARD_COST = 2


def network_passes(counts) -> int:
    """The cost in forward-pass equivalents: ``nfe + BACKWARD_COST * backward_passes`` (``counts`` is
    ``Counters``, a ``StepRecord`` or anything with both fields)."""
    return counts.nfe + BACKWARD_COST * counts.backward_passes


def active() -> Counters | None:
    """The ``Counters`` of the innermost open ``counting()`` context, or ``None``."""
    return _active.get()


def count(field: str, n: int = 1) -> None:
    """Add ``n`` to a counter of the active context (no-op outside one)."""
    counts = _active.get()
    if counts is not None:
        setattr(counts, field, getattr(counts, field) + n)


def note_failures(reasons, counts: Counters | None = None) -> None:
    """Keep the first ``KEPT_REASONS`` failure reasons in ``counts`` (default: the active context)."""
    counts = counts if counts is not None else _active.get()
    if counts is not None:
        counts.failure_reasons.extend(list(reasons)[:max(0, KEPT_REASONS - len(counts.failure_reasons))])
