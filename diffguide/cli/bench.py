"""``diffguide bench TASK --out DIR`` runs a benchmark task; ``diffguide bench report DIR`` summarises it."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ..benchmarks.peer_methods import METHODS
from .counts import check_count
from .device_options import add_device_options, check_precision, resolve_device
from .errors import UsageError
from .lazy import resolve
from .outputs import check_out
from .specs import parse_spec, parse_solver

#: task classes as ``"module:Class"``, imported when a command runs one (``lazy.resolve``)
TASKS = {name: f"diffguide.benchmarks.tasks.{target}" for name, target in {
    "gmm-posterior": "gmm_posterior:GMMPosterior", "restore": "restore:Restore", "motion": "motion:Motion",
    "digits-reward": "digits_reward:DigitsReward", "navier-stokes": "navier_stokes:NavierStokes",
    "digits-conditional": "digits_conditional:DigitsConditional", "digits-bold": "digits_bold:DigitsBold",
    "digits-unconditional": "digits_unconditional:DigitsUnconditional", "music-rules": "music_rules:MusicRules",
    "photos-colour": "photos_colour:PhotosColour"}.items()}
PEERS = tuple(f"deepinv-{method}" for method in METHODS)


def parse_bench_solver(spec: str):
    """A diffguide solver spec, or a deepinv peer: ``deepinv-dps[:weight=W]``, ``deepinv-ddrm[:eta=E,etab=B]``,
    ``deepinv-diffpir[:zeta=Z,lambda_=L]``."""
    name, params = parse_spec(spec)
    if name not in PEERS:
        return parse_solver(spec)
    from ..benchmarks.peers import DeepinvPeer  # imports deepinv: only for a peer

    fields = {f.name for f in dataclasses.fields(DeepinvPeer)} - {"method"}
    if set(params) - fields:
        raise UsageError(f"{name} has no parameter(s) {', '.join(set(params) - fields)}; it has {', '.join(sorted(fields))}")
    try:
        return DeepinvPeer(method=name.removeprefix("deepinv-"), **{k: float(v) for k, v in params.items()})
    except ValueError as err:
        raise UsageError(f"{spec!r}: {err}") from None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark task, or 'bench report DIR'",
                              description="Run every (instance, solver, seed) of TASK with a schedule of --steps "
                                          "steps and append one JSON line per run, with the network passes it "
                                          "spent, to DIR/results.jsonl (a rerun skips what is done, "
                                          "failed runs too unless --retry-failed); a run that fails is recorded as "
                                          "failed and the rest go on, and the exit code is 1 when some failed. "
                                          "'diffguide bench report DIR' writes DIR/report.md and plots.")
    p.add_argument("task", help=f"one of {', '.join(TASKS)}, or 'report'")
    p.add_argument("dir", nargs="?", help="with 'report': the results folder")
    p.add_argument("--solver", action="append", default=None,
                   help=f"solver spec, repeatable (default: dps); also the peers {', '.join(PEERS)}; "
                        "with 'report': report only these solvers")
    p.add_argument("--instance", action="append", default=None, help="run only this instance (repeatable)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--steps", "--nfe", dest="steps", type=int, action="append", default=None,
                   help="schedule length, repeatable (default 100); what each run spent, in network passes, "
                        "is recorded (--nfe: the older name)")
    p.add_argument("--out", help="results folder")
    p.add_argument("--name", default="report.md", help="with 'report': the report's file name in DIR")
    p.add_argument("--reduced", action="store_true", help="tiny instances (for tests)")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: in process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786) "
                        "instead of local workers")
    add_device_options(p, precision_note="; for the tasks whose prior is a network (not gmm-posterior)")
    p.set_defaults(run=run)


def run(args) -> int | None:
    from ..benchmarks.failures import describe
    from ..benchmarks.harness import failed_runs, plan, run_jobs
    from ..benchmarks.report import write_report
    from ..benchmarks.results import RESULTS

    if args.task == "report":
        if not args.dir or not Path(args.dir).is_dir():
            raise UsageError("usage: diffguide bench report DIR (a results folder)")
        print(f"report: {write_report(Path(args.dir), args.solver, args.name)}")
        return
    if args.task not in TASKS:
        raise UsageError(f"unknown task {args.task!r}; expected one of {', '.join(TASKS)}")
    budgets = list(dict.fromkeys(args.steps or [100]))
    for option, value in (("--steps", min(budgets)), ("--seeds", args.seeds), ("--workers", args.workers)):
        check_count(option, value, 1)
    out = check_out(args.out)
    if (out / RESULTS).exists() and not (out / RESULTS).is_file():
        raise UsageError(f"--out {args.out}: {out / RESULTS} is not a file")
    if args.scheduler and args.workers > 1:
        raise UsageError("--scheduler runs on the cluster's workers; drop --workers")
    solvers = {spec: parse_bench_solver(spec) for spec in (args.solver or ["dps"])}
    task = resolve(TASKS[args.task])()
    check_precision(task, args.precision)
    jobs = plan(task, solvers, args.seeds, budgets, args.reduced, args.instance, str(resolve_device(args.device)),
                args.precision)
    with executor_for(args) as executor:
        written = run_jobs(jobs, out, executor, args.retry_failed)
    for steps in budgets:
        new = [row for row in written if row["steps"] == steps]
        failed_now = sum(row["status"] == "failed" for row in new)
        print(f"{args.task} at {steps} steps: {len(new)} new runs ({failed_now} failed) -> {out / RESULTS}")
    failed = failed_runs(jobs, out)
    if not failed:
        print(f"{args.task}: all {len(jobs)} runs ok")
        return
    print(f"{args.task}: {len(failed)} of {len(jobs)} runs failed:")
    for row in failed:
        print(f"  {describe(row)}")
    print(f"diffguide bench: {len(failed)} of {len(jobs)} runs failed; a rerun skips them unless --retry-failed",
          file=sys.stderr)
    return 1


def executor_for(args):
    """Where the runs go: a Dask cluster (``--scheduler``), a local pool (``--workers N``) or this process."""
    from ..executors import DaskExecutor, InProcess, ProcessPool

    if args.scheduler:
        try:
            return DaskExecutor(args.scheduler, connect_timeout=5.0)
        except OSError as err:
            raise UsageError(f"cannot reach a Dask scheduler at {args.scheduler}: {err}") from None
    return ProcessPool(args.workers) if args.workers > 1 else InProcess()
