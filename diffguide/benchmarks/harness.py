"""``diffguide bench``: every (instance, solver, seed) of a task at explicit schedule lengths.

A task gives its instances and runs one solver on one instance with one seed, returning
its metrics (and, under the key ``"images"``, optional named image batches such as
``{"result": ..., "truth": ..., "measurement": ...}``, in [-1, 1]). The harness times the run, counts the work
(``diffguide.counting``: forward and backward passes through the denoiser, and their cost in
network passes), runs it on the record's device (``device_runs``), measures the run's peak memory
above what was held before it (``peak_memory.device_peak_memory``: the CUDA allocator's peak, or
the resident set on the CPU) next to the process's peak so far, saves the images of seed 0
for the report's grids, and appends the record (``results.py``). A run that raises (a diverged
guidance, a failed black box, any error of the solver) becomes a failed row and the sweep goes
on; a rerun skips failed runs unless asked to retry them. Runs go through an executor
(``diffguide.executors``): in process, or spread over a local process pool.
"""
from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path
from typing import Iterable, Protocol

from tqdm.auto import tqdm

from ..counting import counting
from ..executors import InProcess
from .failures import failure
from ..device_runs import on_device
from .peak_memory import device_peak_memory
from .results import SCHEMA, append_result, read_results, run_key, save_images
from .settings import task_params, weights_digest


class Task(Protocol):
    """What a benchmark task gives the harness: its ``name``, its instances, and ``run``, which
    runs one solver on one instance with one seed at an NFE budget and returns the metrics
    (optionally with named image batches under ``"images"``). Its constructor arguments are its
    parameters (part of the run key), kept as attributes of the same names.
    """

    name: str

    def instances(self, reduced: bool) -> list[str]:
        """Names of the task's instances (``reduced``: a tiny version for tests)."""

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        """Run ``solver`` on ``instance`` over a schedule of ``steps`` steps; return the task's metrics."""


def run_record(task: Task, instance: str, name: str, solver, seed: int, steps: int, reduced: bool,
               device: str = "cpu", precision: str = "fp32") -> dict:
    """The start of a run's row: the format's version and every field of the run key (``results.KEY``)."""
    solver_class = f"{type(solver).__module__}.{type(solver).__qualname__}"
    return {"schema": SCHEMA, "task": task.name, "task_params": task_params(task), "instance": instance,
            "reduced": reduced, "solver": name, "solver_class": solver_class,
            "config": dataclasses.asdict(solver), "seed": seed, "steps": steps, "weights": weights_digest(),
            "device": str(device), "precision": precision}


def run_one(job: tuple) -> dict:
    """Run one job ``(task, record, solver)`` and return its complete row, ok or failed."""
    task, record, solver = job
    start = time.perf_counter()
    with device_peak_memory(record["device"]) as peak, counting() as counts, on_device(record["device"], record["precision"]):
        try:
            outcome = {"status": "ok", "metrics": task.run(record["instance"], solver, record["seed"],
                                                            record["steps"], record["reduced"])}
        except Exception as err:  # one bad configuration never sinks the sweep
            outcome = {"status": "failed", "error": failure(err)}
    images = outcome.get("metrics", {}).pop("images", None)
    return dict(record, **outcome, **counts.work(), operator_failures=counts.operator_failures,
                operator_retries=counts.operator_retries, wall_seconds=time.perf_counter() - start,
                peak_memory_mb=peak["mb"],
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, images=images)


def plan(task: Task, solvers: dict[str, object], seeds: int, steps: int | Iterable[int], reduced: bool = False,
         instances: list[str] | None = None, device: str = "cpu", precision: str = "fp32") -> list[tuple]:
    """The jobs ``(task, record, solver)`` of a sweep: every schedule length x instance (default: all
    of the task's) x solver x seed."""
    known = task.instances(reduced)
    unknown = sorted(set(instances or []) - set(known))
    if unknown:
        raise ValueError(f"{task.name} has no instance(s) {', '.join(unknown)}; it has {', '.join(known)}")
    jobs = {}
    for budget in [steps] if isinstance(steps, int) else steps:
        for instance in instances or known:
            for name, solver in solvers.items():
                for seed in range(seeds):
                    record = run_record(task, instance, name, solver, seed, budget, reduced, device, precision)
                    jobs.setdefault(run_key(record), (task, record, solver))  # a repeated setting runs once
    return list(jobs.values())


def run_jobs(jobs: list[tuple], out: Path, executor=None, retry_failed: bool = False) -> list[dict]:
    """Run the jobs ``out/results.jsonl`` holds no row for (and, with ``retry_failed``, those whose
    latest row failed) on ``executor`` (default: in process), appending each row as its run ends.
    Returns the rows written now (without images)."""
    rows = {run_key(row): row for row in read_results(out)}
    todo = [job for job in jobs
            if run_key(job[1]) not in rows or (retry_failed and rows[run_key(job[1])]["status"] == "failed")]
    written = []
    results = (executor or InProcess()).map_unordered(run_one, todo)
    for record in tqdm(results, total=len(todo), desc=f"bench {todo[0][0].name}" if todo else "bench", leave=False):
        images = record.pop("images")
        if images and record["seed"] == 0:
            record["images"] = save_images(out, record, images)
        append_result(out, record)
        written.append(record)
    return written


def run_benchmark(task: Task, solvers: dict[str, object], seeds: int, steps: int | Iterable[int], out: Path,
                  reduced: bool = False, executor=None, instances: list[str] | None = None,
                  retry_failed: bool = False) -> list[dict]:
    """Plan the sweep and run what ``out/results.jsonl`` does not hold yet (``run_jobs``)."""
    return run_jobs(plan(task, solvers, seeds, steps, reduced, instances), out, executor, retry_failed)


def failed_runs(jobs: list[tuple], out: Path) -> list[dict]:
    """The latest rows of ``jobs`` in ``out/results.jsonl`` that failed, in the jobs' order."""
    rows = {run_key(row): row for row in read_results(out, warn=False)}
    latest = [rows.get(run_key(record)) for _, record, _ in jobs]
    return [row for row in latest if row is not None and row["status"] == "failed"]
