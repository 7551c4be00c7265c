"""Executors: run a batch of independent evaluations in process, on a local process pool, or on Dask.

Two uses share one interface:

- ``map_unordered(fn, items)`` yields ``fn(item)`` for every item as each finishes; an
  exception in ``fn`` propagates. Benchmark sweeps use it (``diffguide bench --workers N``).
- ``evaluate(fn, samples, *, batched, retries, timeout, output_shape)`` runs a forward model
  on every sample of a NumPy batch (J, *shape) and returns an ``Evaluation``: the outputs in
  order, NaN rows where a sample failed, the failure mask and the attempts made. This is how
  an ensemble of J particles runs a black-box simulator (``operators.black_box.BlackBox``).

Back-ends: ``InProcess`` (the default; vectorised: a ``batched`` fn is called once on the
whole batch, otherwise fn is looped over the samples), ``ProcessPool(workers)`` (local
processes started with ``spawn`` on first use and kept between calls until ``close()``; a task
that uses torch gets ``threads_per_worker`` = 1 torch thread) and ``DaskExecutor(address)``
(a ``distributed.LocalCluster`` when no address is given, else the scheduler at ``address`` or
a given ``Client``). Each is a context manager.

Faults. An evaluation fails when fn raises, returns NaN/Inf (or a non-numeric value, or the
wrong number of rows when batched), or runs past ``timeout`` seconds. A failed sample is tried
again, up to ``retries`` more times, then marked failed; no fault of fn raises. A retry of a batched
fn calls it on that one sample, so one bad sample cannot fail a whole chunk twice. How the
time limit (per call of fn: one sample, or one chunk when batched) is enforced:

- ``InProcess`` cannot interrupt a call: the call runs to its end and its result is discarded
  if it took longer than ``timeout``, so every back-end fails the same samples.
- ``ProcessPool`` kills the worker process running a call once it passes ``timeout`` (it
  also checks the time after the call, as in process) and starts a fresh worker; a worker
  that dies (segfault, ``os._exit``) fails only the sample it was running. Processes the
  killed call started itself are not killed with it.
- ``DaskExecutor`` checks the time inside the task, as in process. Dask cannot interrupt a
  running task either: a chunk not back ``grace`` seconds after its time allowance (chunk
  size x ``timeout``, or ``timeout`` when batched) is abandoned and its samples count as timed
  out, while its worker thread finishes the call in the background. With a ``timeout`` at most
  one chunk per worker thread is in flight, so that queueing does not count against the limit.

Chunking. ``InProcess`` evaluates the batch as one chunk. The parallel back-ends split J
samples over W worker slots (processes, or Dask threads) into chunks of
``ceil(J / (chunks_per_worker * W))`` samples (``chunks_per_worker`` = 4 by default): at most
4 W round trips per batch whatever J is, so the per-call overhead (measured: about 0.1 ms a
chunk on the pool, about 3 ms on a local Dask cluster) stays small next to a simulator call,
while each worker gets about four chunks, so a slow chunk leaves at most about a quarter of
one worker's share at the end.
Set ``chunks_per_worker=1`` for one call per worker (a vectorised fn that likes large batches).

``fn`` and the samples are pickled to the workers: for ``ProcessPool`` fn must be importable
(a module-level function, or a ``functools.partial`` of one); Dask pickles closures too but
its workers must be able to import ``diffguide``. Limit numpy's BLAS threads in the pool's
workers with ``OMP_NUM_THREADS`` (they inherit the environment; Dask's worker processes set it
to 1). One ``map_unordered`` or ``evaluate`` runs on an executor at a time.
"""
from __future__ import annotations

import abc
import collections
import contextlib
import dataclasses
import math
import multiprocessing
import pickle
import queue
import sys
import time
import traceback
import weakref
from multiprocessing.connection import wait as wait_for_connections
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why one evaluation failed (``exception``: what fn raised, where it can be sent back)."""

    reason: str
    exception: BaseException | None = None


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The outcome of ``evaluate`` on J samples.

    ``values``: (J, *output_shape) in order, NaN rows where a sample failed; ``failed``: (J,)
    bool; ``attempts``: (J,) calls made for each sample (1 + its retries); ``errors``: why each
    sample's last failed attempt failed (None where no attempt failed)."""

    values: np.ndarray
    failed: np.ndarray
    attempts: np.ndarray
    errors: tuple[str | None, ...]

    @property
    def failures(self) -> int:
        """Samples marked failed (after their retries)."""
        return int(self.failed.sum())

    @property
    def retries(self) -> int:
        """Calls made beyond the first for each sample."""
        return int((self.attempts - 1).sum())


# --- one chunk, evaluated wherever the back-end runs it --------------------------------------

def _timed_call(fn: Callable, argument, timeout: float | None):
    """``np.asarray(fn(argument))``, or a ``Failure`` if it raised or took over ``timeout``."""
    start = time.perf_counter()
    try:
        output = np.asarray(fn(argument))
    except Exception as err:
        return Failure(f"raised {type(err).__name__}: {err}")
    elapsed = time.perf_counter() - start
    if timeout is not None and elapsed > timeout:
        return Failure(f"timed out: took {elapsed:.3g} s, over the {timeout:g} s limit")
    return output


def _checked(output: np.ndarray):
    if output.dtype.kind not in "biufc":
        return Failure(f"returned a non-numeric value (dtype {output.dtype})")
    if not np.isfinite(output).all():
        return Failure("returned NaN/Inf")
    return output


def _evaluate_chunk(samples: np.ndarray, fn: Callable, batched: bool, timeout: float | None) -> Iterator:
    """One outcome (an output array or a ``Failure``) per sample, in order, as each is known."""
    if not batched:
        for sample in samples:
            output = _timed_call(fn, sample, timeout)
            yield output if isinstance(output, Failure) else _checked(output)
        return
    outputs = _timed_call(fn, samples, timeout)
    if not isinstance(outputs, Failure) and (outputs.ndim == 0 or outputs.shape[0] != len(samples)):
        outputs = Failure(f"returned shape {outputs.shape} for a batch of {len(samples)} samples")
    if isinstance(outputs, Failure):
        yield from [outputs] * len(samples)
    else:
        yield from (_checked(row) for row in outputs)


def _evaluate_chunk_list(samples, fn, batched, timeout) -> list:
    return list(_evaluate_chunk(samples, fn, batched, timeout))


def _map_items(items: Sequence, fn: Callable) -> Iterator:
    """``fn(item)`` for each item, or a ``Failure`` carrying what it raised."""
    for item in items:
        try:
            yield fn(item)
        except Exception as err:
            reason = f"raised {type(err).__name__}: {err}\n{traceback.format_exc()}"
            try:  # sent back to be raised again, if it survives the trip
                pickle.loads(pickle.dumps(err))
            except Exception:
                err = None
            yield Failure(reason, err)


# --- the attempts of one evaluate call ---------------------------------------------------------

class _Ledger:
    """Outcomes and attempts of J samples, and the chunks still to run (``pending``)."""

    def __init__(self, n: int, retries: int, chunk_size: int):
        self.retries = retries
        self.outputs: list[np.ndarray | None] = [None] * n
        self.errors: list[str | None] = [None] * n
        self.attempts = np.zeros(n, dtype=np.int64)
        self.pending: collections.deque[list[int]] = collections.deque(
            list(range(start, min(start + chunk_size, n))) for start in range(0, n, chunk_size))

    def settle(self, index: int, outcome) -> None:
        """Record one attempt; a failed sample with retries left goes back as a chunk of its own."""
        self.attempts[index] += 1
        if not isinstance(outcome, Failure):
            self.outputs[index] = outcome
        else:
            self.errors[index] = outcome.reason
            if self.attempts[index] <= self.retries:
                self.pending.append([index])

    def result(self, output_shape: tuple[int, ...] | None) -> Evaluation:
        done = [i for i, output in enumerate(self.outputs) if output is not None]
        if output_shape is None:
            if not done and self.outputs:
                raise ValueError(f"all {len(self.outputs)} evaluations failed (the first: {self.errors[0]}) and the "
                                 "output shape is unknown: pass output_shape to get NaN rows instead")
            output_shape = self.outputs[done[0]].shape if done else ()
        for i in done:  # a wrong shape is a fault of that sample, not worth a retry
            if self.outputs[i].shape != tuple(output_shape):
                self.errors[i] = f"returned shape {self.outputs[i].shape}, expected {tuple(output_shape)}"
                self.outputs[i] = None
        failed = np.array([output is None for output in self.outputs], dtype=bool)
        dtypes = [output.dtype for output in self.outputs if output is not None]
        dtype = np.promote_types(np.result_type(*dtypes), np.float16) if dtypes else np.float64  # NaN needs a float
        values = np.full((len(self.outputs), *output_shape), np.nan, dtype=dtype)
        for i, output in enumerate(self.outputs):
            if output is not None:
                values[i] = output
        return Evaluation(values, failed, self.attempts, tuple(self.errors))


class Executor(abc.ABC):
    """The interface: ``map_unordered`` and ``evaluate``; back-ends implement ``_drain``."""

    @abc.abstractmethod
    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        """``fn(item)`` for every item, yielded as each finishes; an exception in ``fn`` propagates."""

    def evaluate(self, fn: Callable, samples: np.ndarray, *, batched: bool = False, retries: int = 0,
                 timeout: float | None = None, output_shape: Sequence[int] | None = None) -> Evaluation:
        """Evaluate ``fn`` on each sample of ``samples`` (J, *shape): ``fn(sample)``, or
        ``fn(chunk)`` -> (len(chunk), *output_shape) when ``batched``. Failed samples are retried
        up to ``retries`` times, each call limited to ``timeout`` seconds (see the module notes)."""
        if retries < 0:
            raise ValueError(f"retries must be at least 0, got {retries}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout}")
        samples = np.ascontiguousarray(samples)
        ledger = _Ledger(len(samples), retries, self._chunk_size(len(samples)))
        self._drain(ledger, fn, samples, batched, timeout)
        return ledger.result(None if output_shape is None else tuple(output_shape))

    def _chunk_size(self, n: int) -> int:
        return max(n, 1)

    @abc.abstractmethod
    def _drain(self, ledger: _Ledger, fn, samples, batched, timeout) -> None:
        """Run the ledger's pending chunks, settling every outcome, until none is left."""

    def close(self) -> None:
        """Release the workers (no-op in process)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _parallel_chunk_size(n: int, slots: int, chunks_per_worker: int) -> int:
    return max(1, math.ceil(n / (chunks_per_worker * max(slots, 1))))


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


# --- local process pool -----------------------------------------------------------------------

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


# --- Dask distributed -------------------------------------------------------------------------

class DaskExecutor(Executor):
    """Evaluate on a Dask cluster: a new ``LocalCluster`` (``workers`` x ``threads_per_worker``,
    ``processes``) when ``address`` is None, the scheduler at ``address``, or a given ``Client``
    (shared, not closed by ``close()``)."""

    def __init__(self, address=None, *, workers: int = 2, threads_per_worker: int = 1, processes: bool = True,
                 chunks_per_worker: int = 4, grace: float = 10.0):
        from distributed import Client, LocalCluster

        self.chunks_per_worker, self.grace = chunks_per_worker, grace
        self._owned = []
        if isinstance(address, Client):
            self.client = address
        else:
            if address is None:
                address = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                       processes=processes, dashboard_address=None)
                self._owned.append(address)
            self.client = Client(address)
            self._owned.insert(0, self.client)

    def close(self) -> None:
        for owned in self._owned:
            owned.close()
        self._owned.clear()

    def _slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def map_unordered(self, fn: Callable, items: Iterable) -> Iterator:
        from distributed import as_completed

        futures = self.client.map(fn, list(items), pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            self.client.cancel(futures)

    def _chunk_size(self, n):
        return _parallel_chunk_size(n, self._slots(), self.chunks_per_worker)

    def _drain(self, ledger, fn, samples, batched, timeout):
        finished: queue.SimpleQueue = queue.SimpleQueue()
        running: dict = {}  # future -> (indices, deadline)
        slots = self._slots()
        try:
            while ledger.pending or running:
                while ledger.pending and (timeout is None or len(running) < slots):
                    indices = ledger.pending.popleft()
                    future = self.client.submit(_evaluate_chunk_list, samples[indices], fn, batched, timeout,
                                                pure=False)
                    allowance = None if timeout is None else timeout * (1 if batched else len(indices)) + self.grace
                    running[future] = (indices, None if allowance is None else time.monotonic() + allowance)
                    future.add_done_callback(finished.put)
                deadlines = [deadline for _, deadline in running.values() if deadline is not None]
                try:
                    future = finished.get(timeout=None if not deadlines else max(0.0, min(deadlines) - time.monotonic()))
                except queue.Empty:
                    self._abandon_overdue(ledger, running)
                    continue
                if future not in running:  # abandoned earlier
                    continue
                indices, _ = running.pop(future)
                try:
                    outcomes = future.result()
                except Exception as err:  # e.g. its worker died (KilledWorker)
                    outcomes = [Failure(f"the Dask task failed: {type(err).__name__}: {err}")] * len(indices)
                for index, outcome in zip(indices, outcomes):
                    ledger.settle(index, outcome)
        finally:
            if running:
                self.client.cancel(list(running))

    def _abandon_overdue(self, ledger, running) -> None:
        now = time.monotonic()
        for future, (indices, deadline) in list(running.items()):
            if deadline is not None and now > deadline:
                del running[future]
                future.cancel()
                for index in indices:
                    ledger.settle(index, Failure(f"timed out: abandoned {self.grace:g} s past its time allowance "
                                                 "(the Dask worker finishes the call in the background)"))
