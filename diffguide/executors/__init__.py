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
``ceil(J / (chunks_per_worker * W))`` samples (``chunks_per_worker`` = 4 by default on the pool,
2 on Dask): at most 4 W (2 W) round trips per batch whatever J is, so the per-call overhead
(measured: about 0.1 ms a chunk on the pool, a few ms on a local Dask cluster) stays small next
to a simulator call, while each worker gets several chunks, so a slow chunk leaves at most a
part of one worker's share at the end.
Set ``chunks_per_worker=1`` for one call per worker (a vectorised fn that likes large batches).

``fn`` and the samples are pickled to the workers: for ``ProcessPool`` fn must be importable
(a module-level function, or a ``functools.partial`` of one); Dask pickles closures too but
its workers must be able to import ``diffguide``. Limit numpy's BLAS threads in the pool's
workers with ``OMP_NUM_THREADS`` (they inherit the environment; Dask's worker processes set it
to 1). One ``map_unordered`` or ``evaluate`` runs on an executor at a time.
"""
from .base import Evaluation, Executor, Failure
from .dask_cluster import DaskExecutor
from .in_process import InProcess
from .process_pool import ProcessPool

__all__ = ["Executor", "Evaluation", "Failure", "InProcess", "ProcessPool", "DaskExecutor"]
