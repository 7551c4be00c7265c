"""``diffguide tune TASK --instance NAME --solver SPEC --metric NAME --out DIR``: beam search of a
solver's hyper-parameters on one benchmark instance (TFG's tuning strategy, ``diffguide.tuning``).

Each configuration runs the ``diffguide bench`` task on the instance for ``--seeds`` seeds at the
schedule length (``--steps``); its score is the mean of ``--metric`` (higher is better unless ``--minimize``; a
configuration with a failed run, diverged or any other error, scores NaN and ranks last). One
JSON line per configuration, with its runs' rows (a failed one with its error), goes to
``DIR/tune.jsonl`` as it is scored, and the best solver spec is printed. Counts, budgets, factors,
caps and ``--out`` are checked before anything is written.
"""
from __future__ import annotations

import dataclasses
import json
import math

from ..tuning.beam_search import beam_search
from .bench import TASKS
from .counts import check_count
from .device_options import add_device_options, check_precision, resolve_device
from .errors import UsageError
from .lazy import resolve
from .outputs import check_out
from .specs import parse_solver, parse_spec

#: The paper's search (``searching.py`` of the TFG code): start, growth factor and cap per key.
PAPER_SEARCH = {"rho": (0.25, 2.0, 8.0), "mu": (0.25, 2.0, 8.0), "gamma": (0.001, 10.0, 1.0)}
HISTORY = "tune.jsonl"


def _numbers(text: str, what: str) -> dict[str, float]:
    """``"a=1,b=2e-3"`` -> ``{"a": 1.0, "b": 0.002}``."""
    _, params = parse_spec(f"{what}:{text}")
    try:
        return {key: float(value) for key, value in params.items()}
    except ValueError:
        raise UsageError(f"--{what} {text!r}: expected key=number pairs") from None


def _search_space(args, solver) -> tuple[list[str], dict, dict, dict]:
    """Keys, start values, factors and caps: the paper's for rho, mu, gamma, overridden by the flags."""
    free = {f.name for f in dataclasses.fields(solver) if f.init}
    keys = args.keys.split(",") if args.keys else [key for key in PAPER_SEARCH if key in free]
    if not keys:
        raise UsageError(f"--keys is required: {type(solver).__name__} has none of {', '.join(PAPER_SEARCH)}")
    for key in keys:
        if key not in free or not isinstance(getattr(solver, key), float):
            floats = [f for f in sorted(free) if isinstance(getattr(solver, f), float)]
            raise UsageError(f"cannot tune {key!r}: {type(solver).__name__}'s tunable (float) parameters are "
                             f"{', '.join(floats) or 'none'}")
    start = {key: PAPER_SEARCH[key][0] for key in keys if key in PAPER_SEARCH}
    start.update(_numbers(args.start, "start") if args.start else {})
    factor = {key: PAPER_SEARCH.get(key, (None, 2.0))[1] for key in keys}
    if args.factor and "=" not in args.factor:
        factor = dict.fromkeys(keys, _numbers(f"{keys[0]}={args.factor}", "factor")[keys[0]])
    elif args.factor:
        factor.update(_numbers(args.factor, "factor"))
    limits = {key: PAPER_SEARCH[key][2] for key in keys if key in PAPER_SEARCH}
    limits.update(_numbers(args.max, "max") if args.max else {})
    if set(keys) - set(start) or set(start) - set(keys) or set(factor) - set(keys) or set(limits) - set(keys):
        raise UsageError(f"--start gives the start of each tuned key, and --start, --factor, --max name only "
                         f"tuned keys; tuned: {', '.join(keys)}; --start has {', '.join(start) or 'none'}")
    if any(value <= 0 for value in start.values()):
        raise UsageError("--start values must be positive (the search multiplies them)")
    if any(value <= 0 or value == 1 for value in factor.values()):
        raise UsageError(f"--factor values must be positive and not 1, got {factor}")
    if any(value <= 0 for value in limits.values()):
        raise UsageError(f"--max values must be positive, got {limits}")
    return keys, start, factor, limits


def _spec(name: str, params: dict) -> str:
    return name + (":" + ",".join(f"{key}={value}" for key, value in params.items()) if params else "")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("tune", help="beam-search a solver's hyper-parameters on a benchmark instance",
                              description="Beam search (TFG's strategy): start small, grow one key at a time by its "
                                          "factor, keep the best BEAM configurations each round. Scores are the mean "
                                          "of a task metric over seeds; history in DIR/tune.jsonl.")
    p.add_argument("task", help=f"one of {', '.join(TASKS)}")
    p.add_argument("--instance", required=True, help="the task instance to tune on")
    p.add_argument("--solver", default="tfg", help="base solver spec; tuned keys are overridden (default: tfg)")
    p.add_argument("--metric", required=True, help="the task metric to optimise")
    p.add_argument("--minimize", action="store_true", help="lower metric is better")
    p.add_argument("--keys", help="comma-separated float parameters to tune (default: those of rho, mu, gamma "
                                  "the solver has)")
    p.add_argument("--start", help="start values, key=value,... (default: rho=0.25, mu=0.25, gamma=0.001)")
    p.add_argument("--factor", help="growth factor, one number or key=value,... (default: 2 for rho and mu, "
                                    "10 for gamma, else 2)")
    p.add_argument("--max", help="caps, key=value,... (default: rho=8, mu=8, gamma=1)")
    p.add_argument("--beam", type=int, default=2, help="configurations kept per round (default 2)")
    p.add_argument("--rounds", type=int, default=6, help="search rounds (default 6)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default 1)")
    p.add_argument("--steps", "--nfe", dest="steps", type=int, default=100,
                   help="schedule length passed to the task (default 100; --nfe: the older name)")
    p.add_argument("--out", help="folder for tune.jsonl (required)")
    p.add_argument("--reduced", action="store_true", help="the task's reduced instances and sizes (for tests)")
    add_device_options(p, precision_note="; for the tasks whose prior is a network (not gmm-posterior)")
    p.set_defaults(run=run)


def run(args) -> None:
    from ..benchmarks.harness import run_one, run_record

    if args.task not in TASKS:
        raise UsageError(f"unknown task {args.task!r}; expected one of {', '.join(TASKS)}")
    for option in ("beam", "rounds", "seeds", "steps"):
        check_count(f"--{option}", getattr(args, option), 1)
    out = check_out(args.out)
    device = str(resolve_device(args.device))
    task = resolve(TASKS[args.task])()
    check_precision(task, args.precision)
    instances = task.instances(args.reduced)
    if args.instance not in instances:
        raise UsageError(f"unknown instance {args.instance!r} of {args.task}; expected one of {', '.join(instances)}")
    base = parse_solver(args.solver)
    name, base_params = parse_spec(args.solver)
    keys, start, factor, limits = _search_space(args, base)
    out.mkdir(parents=True, exist_ok=True)
    history_file = out / HISTORY
    history_file.write_text("")  # a fresh history for this search
    runs_of_last: list[dict] = []

    def evaluate(config: dict) -> float:
        solver = dataclasses.replace(base, **config)
        spec = _spec(name, {**base_params, **config})
        runs_of_last.clear()
        for seed in range(args.seeds):
            record = run_record(task, args.instance, spec, solver, seed, args.steps, args.reduced, device,
                                args.precision)
            result = run_one((task, record, solver))
            result.pop("images", None)
            runs_of_last.append(result)
            if result["status"] == "failed":  # a diverged or failed run scores NaN and ranks last
                return math.nan
            if args.metric not in result["metrics"]:
                raise UsageError(f"task {args.task} has no metric {args.metric!r}; it reports "
                                 f"{', '.join(result['metrics'])}")
        return sum(run["metrics"][args.metric] for run in runs_of_last) / len(runs_of_last)

    def write(entry: dict) -> None:
        score = None if math.isnan(entry["score"]) else entry["score"]
        line = {"round": entry["round"], "config": entry["config"], "metric": args.metric, "score": score,
                "solver": _spec(name, {**base_params, **entry["config"]}), "runs": list(runs_of_last)}
        with open(history_file, "a") as stream:
            stream.write(json.dumps(line) + "\n")

    best, history = beam_search(evaluate, start, keys, factor, args.beam, args.rounds, limits=limits,
                                maximize=not args.minimize, on_result=write)
    score = next(entry["score"] for entry in history if entry["config"] == best)
    print(f"{len(history)} configurations -> {history_file}")
    if math.isnan(score):
        print("every configuration failed (their errors are in tune.jsonl); try smaller --start values")
        return
    print(f"best {args.metric} = {score:.6g}: {_spec(name, {**base_params, **best})}")
