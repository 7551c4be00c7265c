"""Executors: run a batch of independent evaluations in process or over a local process pool.

One interface, ``map_unordered(fn, items)`` yielding ``fn(item)`` as each finishes, serves
benchmark sweeps (``diffguide bench --workers N``) and, later, ensembles of black-box
forward-model evaluations. ``fn`` and the items must be picklable for the pool, which
starts its workers with ``spawn`` (safe with torch's thread pools) and one torch thread each.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, Iterator


class InProcess:
    """Evaluate one item after another in this process (the default)."""

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        for item in items:
            yield fn(item)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class ProcessPool:
    """Evaluate items on ``workers`` local processes, yielding results as they complete."""

    def __init__(self, workers: int, threads_per_worker: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers, self.threads = workers, threads_per_worker

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                 initargs=(self.threads,)) as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()
