"""The executor interface, the outcome of an evaluation and the bookkeeping every back-end shares
(see the package docstring for faults, time limits and chunking)."""
from __future__ import annotations

import abc
import collections
import dataclasses
import math
import pickle
import time
import traceback
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
