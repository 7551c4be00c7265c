"""A local pool of spawned processes that enforces time limits by killing the worker that overruns."""
from __future__ import annotations

import collections
import contextlib
import multiprocessing
import pickle
import sys
import time
import weakref
from multiprocessing.connection import wait as wait_for_connections
from typing import Callable, Iterable, Iterator

import numpy as np

from .base import Executor, Failure, _evaluate_chunk, _map_items, _parallel_chunk_size


def _send(conn, message) -> None:
    try:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # an output or exception that does not pickle fails its item only
        data = pickle.dumps(("outcome", Failure(f"its result could not be sent back: {type(err).__name__}: {err}")))
    conn.send_bytes(data)


def _serve(conn, threads: int) -> None:
    """A pool worker: run each chunk it is sent, streaming one outcome per item. It imports
    torch only if a task needs it (a numpy simulator's worker starts in a fraction of a second)."""
    _send(conn, ("ready",))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            task, items, options = pickle.loads(data)
        except Exception as err:
            _send(conn, ("unloadable", f"{type(err).__name__}: {err}"))
            continue
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        _send(conn, ("started",))
        for outcome in task(items, *options):
            _send(conn, ("outcome", outcome))


class _Worker:
    """One pool process, its pipe, and the chunk it is running (``indices``, ``done`` so far)."""

    def __init__(self, context, threads: int):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, threads), daemon=True)
        self.process.start()
        child.close()
        self.ready, self.indices, self.done, self.deadline = False, None, 0, None

    def stop(self) -> None:
        self.conn.close()
        self.process.kill()
        self.process.join()


def _stop_workers(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.stop()
    workers.clear()


class ProcessPool(Executor):
    """``workers`` local processes (spawned on first use, kept until ``close()``), with time
    limits enforced by killing the worker that overruns."""

    def __init__(self, workers: int, threads_per_worker: int = 1, chunks_per_worker: int = 4):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers, self.threads, self.chunks_per_worker = workers, threads_per_worker, chunks_per_worker
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []
        self._running = False
        self._finalizer = weakref.finalize(self, _stop_workers, self._pool)

    def close(self) -> None:
        _stop_workers(self._pool)

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        items = list(items)
        pending = collections.deque([k] for k in range(len(items)))
        with contextlib.closing(self._run(pending, _map_items, items, (fn,), batched=False, timeout=None)) as outcomes:
            for _, outcome in outcomes:
                if isinstance(outcome, Failure):
                    if outcome.exception is not None:
                        raise outcome.exception from RuntimeError(f"in a ProcessPool worker, fn {outcome.reason}")
                    raise RuntimeError(f"a ProcessPool job failed: {outcome.reason}")
                yield outcome

    def _chunk_size(self, n):
        return _parallel_chunk_size(n, self.workers, self.chunks_per_worker)

    def _drain(self, ledger, fn, samples, batched, timeout):
        with contextlib.closing(self._run(ledger.pending, _evaluate_chunk, samples, (fn, batched, timeout),
                                          batched, timeout)) as outcomes:
            for index, outcome in outcomes:
                ledger.settle(index, outcome)

    def _run(self, pending: collections.deque, task: Callable, items, options: tuple, batched: bool,
             timeout: float | None) -> Iterator[tuple[int, object]]:
        """Run ``task(items[chunk], *options)`` for the chunks of indices in ``pending`` (which
        may grow meanwhile), yielding ``(index, outcome)`` as each arrives."""
        if self._running:
            raise RuntimeError("a ProcessPool runs one map_unordered/evaluate at a time")
        self._running = True
        while len(self._pool) < self.workers:
            self._pool.append(_Worker(self._context, self.threads))
        try:
            while pending or any(worker.indices is not None for worker in self._pool):
                for worker in list(self._pool):
                    if worker.ready and worker.indices is None and pending:
                        self._dispatch(worker, pending.popleft(), task, items, options, pending)
                deadlines = [worker.deadline for worker in self._pool if worker.deadline is not None]
                wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
                for conn in wait_for_connections([worker.conn for worker in self._pool], wait):
                    worker = next((worker for worker in self._pool if worker.conn is conn), None)
                    if worker is not None:  # else replaced while this round was handled
                        yield from self._receive(worker, batched, timeout, pending)
                for worker in list(self._pool):
                    if worker.deadline is not None and time.monotonic() > worker.deadline:
                        yield from self._lose(worker, batched, pending,
                                              f"timed out: killed after the {timeout:g} s limit")
        finally:
            for worker in list(self._pool):
                if worker.indices is not None:  # abandoned: its late results must not reach the next call
                    self._replace(worker)
            self._running = False

    def _dispatch(self, worker, indices, task, items, options, pending) -> None:
        chunk = items[indices] if isinstance(items, np.ndarray) else [items[k] for k in indices]
        try:
            data = pickle.dumps((task, chunk, options), pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            raise TypeError(f"ProcessPool sends fn and its inputs to spawned processes by pickle: {err}. "
                            "fn must be importable (a module-level function or a functools.partial of one)") from err
        try:
            worker.conn.send_bytes(data)
        except OSError:  # the idle worker died: try the chunk again elsewhere
            pending.appendleft(indices)
            self._replace(worker)
            return
        worker.indices, worker.done, worker.deadline = indices, 0, None

    def _receive(self, worker, batched, timeout, pending) -> Iterator:
        try:
            message = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            if not worker.ready:
                raise RuntimeError(f"a ProcessPool worker exited while starting (exit code {worker.process.exitcode})")
            worker.process.join()
            yield from self._lose(worker, batched, pending,
                                  f"its worker process died (exit code {worker.process.exitcode})")
            return
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "unloadable":
            raise RuntimeError(f"a ProcessPool worker could not load the task it was sent: {message[1]}")
        else:
            index = worker.indices[worker.done] if kind == "outcome" else None
            worker.done += kind == "outcome"
            if worker.done == len(worker.indices):
                worker.indices, worker.deadline = None, None
            else:  # the next call starts now; a batched chunk is one call
                worker.deadline = None if timeout is None else time.monotonic() + timeout
            if index is not None:
                yield index, message[1]

    def _lose(self, worker, batched, pending, reason) -> Iterator:
        """The worker's current call failed with ``reason`` (a batched chunk is one call); the
        samples it had not started go back to ``pending`` without counting an attempt."""
        indices, done = worker.indices, worker.done
        self._replace(worker)
        if indices is None:
            return
        lost = indices[done:] if batched else indices[done:done + 1]
        if not batched and done + 1 < len(indices):
            pending.appendleft(indices[done + 1:])
        for index in lost:
            yield index, Failure(reason)

    def _replace(self, worker) -> None:
        worker.stop()
        self._pool[self._pool.index(worker)] = _Worker(self._context, self.threads)
