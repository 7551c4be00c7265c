"""``diffguide demo``: the main job. Solves a fixed set of problems with the embedded priors
and writes one figure per problem, ``metrics.json`` and ``report.md`` (see ``demo_problems``)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .device_options import add_device_options, resolve_device


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the demo problems and write a report",
                              description="Solve a fixed set of problems with the embedded priors and write one "
                                          "figure per problem, metrics.json and report.md to --out.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="fewer steps and smaller images (for tests)")
    p.add_argument("--seed", type=int, default=0)
    add_device_options(p, precision_note="; the closed-form priors have no network and stay as they are")
    p.set_defaults(run=run)


def run(args) -> None:
    import torch

    from ..device_runs import on_device
    from ..plotting import plt
    from .common import write_outputs
    from .demo_problems import PROBLEMS
    from .outputs import check_out

    check_out(args.out)
    device = resolve_device(args.device)
    start = time.perf_counter()
    results = {}
    with on_device(device, args.precision):  # each problem is built on the CPU and solved on the device
        for name, problem in PROBLEMS.items():
            print(f"{name} ...", flush=True)
            results[name] = problem(args.quick, torch.Generator().manual_seed(args.seed))
    files = {f"{name}.png": (lambda path, fig=fig: fig.savefig(path, dpi=110)) for name, (fig, *_) in results.items()}
    for _, _, _, *extra in results.values():
        files.update(*extra)
    files["metrics.json"] = {name: metrics for name, (_, metrics, *_) in results.items()}
    lines = ["# diffguide demo", "", f"Seed {args.seed}{', quick mode' if args.quick else ''}; "
             f"{time.perf_counter() - start:.0f} s on this machine ({device}, {args.precision}).", ""]
    for name, (_, metrics, caption, *_) in results.items():
        lines += [f"## {name}", "", caption, "", f"![{name}]({name}.png)", "", "```json",
                  json.dumps(metrics, indent=1), "```", ""]
    files["report.md"] = lambda path: path.write_text("\n".join(lines))
    out = write_outputs(args.out, files)
    for fig, *_ in results.values():
        plt.close(fig)
    print(f"report: {Path(out) / 'report.md'}")
