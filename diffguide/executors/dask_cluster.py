"""A Dask distributed back-end: a ``LocalCluster``, or the scheduler at an address."""
from __future__ import annotations

import queue
import time
from typing import Callable, Iterable, Iterator


from .base import Executor, Failure, _evaluate_chunk_list, _parallel_chunk_size


class DaskExecutor(Executor):
    """Evaluate on a Dask cluster: a new ``LocalCluster`` (``workers`` x ``threads_per_worker``,
    ``processes``) when ``address`` is None, the scheduler at ``address``, or a given ``Client``
    (shared, not closed by ``close()``). Each task costs a few ms of scheduling and result
    gathering (measured here: 16 simulator calls of 51 ms in 0.43 s on a 2-process pool, 0.46 s
    on a 2-worker cluster in 2 chunks, 0.48 s in 8), so the default is 2 chunks per worker. A
    scheduler that does not answer within ``connect_timeout`` seconds is an ``OSError``."""

    def __init__(self, address=None, *, workers: int = 2, threads_per_worker: int = 1, processes: bool = True,
                 chunks_per_worker: int = 2, grace: float = 10.0, connect_timeout: float = 10.0):
        import dask
        from distributed import Client, LocalCluster

        self.chunks_per_worker, self.grace = chunks_per_worker, grace
        self._owned = []
        if isinstance(address, Client):
            self.client = address
        else:
            if address is None:
                # the workers' statistical profiler takes the GIL every 10 ms: 2-6% of a CPU-bound
                # simulator's time here, and nobody reads its profiles without a dashboard
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    address = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                           processes=processes, dashboard_address=None)
                self._owned.append(address)
            self.client = Client(address, timeout=connect_timeout)
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
