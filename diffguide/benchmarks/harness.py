"""``diffguide bench``: every (instance, solver, seed) of a task at an explicit NFE budget.

A task gives its instances and runs one solver on one instance with one seed, returning
its metrics (and, under the key ``"images"``, optional named image batches such as
``{"result": ..., "truth": ..., "measurement": ...}``, in [-1, 1]). The harness times the run, counts the work
(``diffguide.counting``), measures the run's peak memory above what the process held before
it (``peak_memory.PeakMemory``) next to the process's peak so far, saves the images of seed 0
for the report's grids, and appends the record (``results.py``). Runs go through an executor
(``diffguide.executors``): in process, or spread over a local process pool.
"""
from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from ..counting import counting
from ..executors import InProcess
from .peak_memory import PeakMemory
from .results import append_result, read_results, run_key, save_images


class Task(Protocol):
    """What a benchmark task gives the harness: its ``name``, its instances, and ``run``, which
    runs one solver on one instance with one seed at an NFE budget and returns the metrics
    (optionally with named image batches under ``"images"``).
    """

    name: str

    def instances(self, reduced: bool) -> list[str]:
        """Names of the task's instances (``reduced``: a tiny version for tests)."""

    def run(self, instance: str, solver, seed: int, nfe: int, reduced: bool) -> dict:
        """Run ``solver`` on ``instance`` with ``nfe`` denoiser calls; return the task's metrics."""


def run_one(job: tuple) -> dict:
    """Run one (task, instance, solver, seed, budget) and return its complete record."""
    task, record, solver, reduced = job
    start = time.perf_counter()
    with PeakMemory() as peak, counting() as counts:
        metrics = task.run(record["instance"], solver, record["seed"], record["nfe_budget"], reduced)
    images = metrics.pop("images", None)
    return dict(record, metrics=metrics, nfe=counts.nfe, operator_evals=counts.operator_evals,
                grad_evals=counts.grad_evals, operator_failures=counts.operator_failures,
                operator_retries=counts.operator_retries, wall_seconds=time.perf_counter() - start,
                peak_memory_mb=peak.megabytes,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, images=images)


def run_benchmark(task: Task, solvers: dict[str, object], seeds: int, nfe: int, out: Path,
                  reduced: bool = False, executor=None, instances: list[str] | None = None) -> list[dict]:
    """Run what ``out/results.jsonl`` does not hold yet, on ``executor`` (default: in process),
    over ``instances`` (default: all of the task's); each record is appended as its run ends.
    Returns the records written now (without images)."""
    known = task.instances(reduced)
    unknown = sorted(set(instances or []) - set(known))
    if unknown:
        raise ValueError(f"{task.name} has no instance(s) {', '.join(unknown)}; it has {', '.join(known)}")
    done = {run_key(record) for record in read_results(out)}
    jobs = []
    for instance in instances or known:
        for name, solver in solvers.items():
            for seed in range(seeds):
                record = {"task": task.name, "instance": instance, "solver": name,
                          "config": dataclasses.asdict(solver), "seed": seed, "nfe_budget": nfe}
                if run_key(record) not in done:
                    jobs.append((task, record, solver, reduced))
    written = []
    results = (executor or InProcess()).map_unordered(run_one, jobs)
    for record in tqdm(results, total=len(jobs), desc=f"bench {task.name}", leave=False):
        images = record.pop("images")
        if images and record["seed"] == 0:
            record["images"] = save_images(out, record, images)
        append_result(out, record)
        written.append(record)
    return written
