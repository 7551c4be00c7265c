"""The default back-end: evaluate in this process."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator


from .base import Executor, _evaluate_chunk


class InProcess(Executor):
    """Evaluate in this process: a batched fn once on the whole batch, else sample after sample."""

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        for item in items:
            yield fn(item)

    def _drain(self, ledger, fn, samples, batched, timeout):
        while ledger.pending:
            chunk = ledger.pending.popleft()
            for index, outcome in zip(chunk, _evaluate_chunk(samples[chunk], fn, batched, timeout)):
                ledger.settle(index, outcome)
