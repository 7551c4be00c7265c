"""``diffguide bench report DIR``: results.jsonl -> ``report.md`` with tables, plots and grids.

Rows average over seeds. The report has, per task, a side-by-side table at equal cost (one row
per instance and number of network passes spent: forward passes plus twice the backward passes
through the denoiser; one column per solver; each cell the task's headline metric with the
schedule length, the mean wall time and the run's peak memory above the process's start), the
full table of every metric, a plot of the headline against the network passes (log scale): for
``gmm-posterior`` the sliced Wasserstein over the floor (1 is exact) averaged over instances,
for ``restore`` the PSNR of each instance; for ``digits-conditional`` a trade-off plot over each
guidance method's scale sweep (judge accuracy against kernel distance, precision against recall,
averaged over instances); and for tasks that save images a grid per instance (rows: solvers,
columns: schedule lengths, the first image of seed 0). Failed runs are listed first, one line each,
and left out of the tables; where rows of one (task, instance, solver, steps) were run
with other settings (``--reduced``, task parameters, solver class or config, weights), only
those with the settings of the latest run are reported. Rows of the older format (schema 1)
are read too, their unrecorded settings as None (``results.from_schema_1``)."""
from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from statistics import mean

from ..counting import BACKWARD_COST
from ..plotting import labelled_grid_figure, plt
from .failures import describe
from .results import KEY, load_images, read_results, run_key

HEADLINES = {
    "gmm-posterior": ("SW2 / floor", lambda m: f"{m['sliced_wasserstein'] / m['floor']:.2f}"),
    "restore": ("PSNR / SSIM (the classical baseline's PSNR)",
                lambda m: f"{m['psnr']:.2f} / {m['ssim']:.3f}" + (f" ({m['baseline_psnr']:.2f})" if "baseline_psnr" in m else "")),
    "motion": ("flow EPE (paste floor) / change outside", lambda m: f"{m['flow_epe']:.2f} ({m['flow_epe_paste']:.2f}) / "
                                                                    f"{m['outside_change']:.3f}"),
    "digits-conditional": ("judge accuracy / kernel distance / precision / recall / saturation",
                           lambda m: f"{m['judge_accuracy']:.3f} / {m['kernel_distance']:.3f} / {m['precision']:.2f} / "
                                     f"{m['recall']:.2f} / {m['saturation']:.3f}"),
    "digits-bold": ("judge accuracy / ink error (real digits') / kernel distance",
                    lambda m: f"{m['judge_accuracy']:.3f} / {m['ink_error']:.3f} ({m['ink_error_real']:.3f}) / "
                              f"{m['kernel_distance']:.3f}"),
    "digits-unconditional": ("class balance / kernel distance / precision / recall / saturation",
                             lambda m: f"{m['class_balance']:.3f} / {m['kernel_distance']:.3f} / {m['precision']:.2f} / "
                                       f"{m['recall']:.2f} / {m['saturation']:.3f}"),
    "music-rules": ("rule loss (a real excerpt's) / overlap with the music / in key",
                    lambda m: f"{m['rule_loss']:.4g} ({m['rule_loss_real']:.4g}) / {m['mean_overlap']:.2f} / "
                              f"{m['in_key']:.2f}"),
    "photos-colour": ("colour error (a real tile's) / neighbour difference (real tiles')",
                      lambda m: f"{m['colour_error']:.3f} ({m['colour_error_real']:.3f}) / "
                                f"{m['neighbour_difference']:.3f} ({m['neighbour_difference_real']:.3f})"),
    "navier-stokes": ("rel. L2 of the mean / of a sample, misfit, forward evaluations",
                      lambda m: f"{m['rel_l2_of_mean']:.3f} / {m['rel_l2']:.3f}, {m['misfit']:.1f}, "
                                f"{m['operator_evals']:.0f} evals"),
}


def latest_settings(records: list[dict]) -> tuple[list[dict], int]:
    """The rows run with the settings (the run key but the seed) of the latest run of their
    (task, instance, solver, steps), and how many others were left out."""
    def group(record):
        return record["task"], record["instance"], record["solver"], record["steps"]

    def settings(record):
        return tuple(value for field, value in zip(KEY, run_key(record)) if field != "seed")

    latest = {group(record): settings(record) for record in records}
    kept = [record for record in records if settings(record) == latest[group(record)]]
    return kept, len(records) - len(kept)


def summarise(records: list[dict]) -> dict[tuple, dict]:
    groups = defaultdict(list)
    for record in records:
        groups[(record["task"], record["instance"], record["solver"], record["steps"])].append(record)
    summary = {}
    for key, runs in sorted(groups.items()):
        metrics = {name: mean(run["metrics"][name] for run in runs) for name in runs[0]["metrics"]}
        metrics.update(seeds=len(runs), nfe=mean(run["nfe"] for run in runs),
                       network_passes=mean(run.get("network_passes", math.nan) for run in runs),
                       operator_evals=mean(run["operator_evals"] for run in runs),
                       wall_seconds=mean(run["wall_seconds"] for run in runs),
                       peak_memory_mb=max(run.get("peak_memory_mb", float("nan")) for run in runs),
                       peak_rss_mb=max(run["peak_rss_mb"] for run in runs))
        decoder_cost = mean(run.get("decoder_passes", 0) + BACKWARD_COST * run.get("decoder_backward_passes", 0)
                            for run in runs)
        if decoder_cost:  # a latent prior's decoder, forward + 2 x backward, apart from the network passes
            metrics["decoder_cost"] = decoder_cost
        summary[key] = metrics
    return summary


def markdown_table(summary: dict[tuple, dict]) -> str:
    columns = sorted({name for metrics in summary.values() for name in metrics})
    lines = ["| task | instance | solver | steps | " + " | ".join(columns) + " |",
             "|" + " --- |" * (4 + len(columns))]
    for (task, instance, solver, budget), metrics in summary.items():
        cells = [f"{metrics[c]:.4g}" if isinstance(metrics.get(c), (int, float)) else "" for c in columns]
        lines.append(f"| {task} | {instance} | {solver} | {budget} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: the headline each task's cost plot draws against network passes, and whether it averages the instances
COST_CURVES = {
    "gmm-posterior": ("sliced W2 / floor (mean over instances)",
                      lambda m: m["sliced_wasserstein"] / m["floor"] if m.get("floor") else None, True),
    "restore": ("PSNR (dB)", lambda m: m.get("psnr"), False),
    "music-rules": ("rule loss (lower follows the rule)", lambda m: m.get("rule_loss"), False),
    "photos-colour": ("colour error (lower follows the reward)", lambda m: m.get("colour_error"), False),
}


def cost_bucket(passes: float) -> int:
    """Network passes to two significant digits, so that runs of nearly equal cost share a row."""
    if passes < 1:
        return 0
    return round(passes, 1 - math.floor(math.log10(passes)))


def side_by_side(summary: dict[tuple, dict], task: str) -> str:
    """One row per (instance, network passes), one column per solver: headline (steps, wall s, peak MB)."""
    label, headline = HEADLINES.get(task, ("metrics", lambda m: ", ".join(
        f"{k} {v:.3g}" for k, v in m.items()
        if k not in ("seeds", "nfe", "network_passes", "operator_evals", "wall_seconds", "peak_memory_mb",
                     "peak_rss_mb", "decoder_cost"))))
    runs = defaultdict(dict)  # (instance, passes) -> solver -> (steps, metrics)
    for (t, instance, solver, steps), m in summary.items():
        if t == task:
            runs[(instance, cost_bucket(m["network_passes"]))][solver] = (steps, m)
    solvers = sorted({solver for (t, _, solver, _) in summary if t == task})
    lines = [f"{label} at equal cost: rows by network passes spent (forward + {BACKWARD_COST} x backward through the "
             "denoiser), to two significant digits; each cell with its schedule length, mean wall seconds and the "
             "run's peak MB",
             "", "| instance | network passes | " + " | ".join(solvers) + " |", "|" + " --- |" * (2 + len(solvers))]
    for instance, passes in sorted(runs):
        cells = []
        for solver in solvers:
            steps, m = runs[(instance, passes)].get(solver, (None, None))
            cells.append(f"{headline(m)} ({steps} steps, {m['wall_seconds']:.1f} s, {m['peak_memory_mb']:.0f} MB)"
                         if m else "")
        lines.append(f"| {instance} | {passes} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gmm_aggregate(summary: dict[tuple, dict]) -> str:
    """gmm-posterior: sliced W2 over the floor, averaged over the instances of each dimension, per
    solver and schedule length (1 is exact; the prior alone is the ``prior`` column's ratio)."""
    cells = defaultdict(list)
    for (task, instance, solver, budget), m in summary.items():
        if task == "gmm-posterior" and m.get("floor"):
            dim = instance.split("-")[0]
            for group in (dim, "all"):
                cells[(solver, budget, group)].append(m["sliced_wasserstein"] / m["floor"])
                cells[("(prior alone)", budget, group)].append(m["prior"] / m["floor"])
    if not cells:
        return ""
    groups = sorted({g for (_, _, g) in cells if g != "all"}, key=lambda g: int(g[1:])) + ["all"]
    lines = ["Sliced W2 / floor, mean over instances (1 is exact)", "",
             "| solver | steps | " + " | ".join(groups) + " |", "|" + " --- |" * (2 + len(groups))]
    for solver, budget in sorted({(s, b) for (s, b, _) in cells}):
        values = [f"{mean(cells[(solver, budget, g)]):.2f}" if cells.get((solver, budget, g)) else "" for g in groups]
        lines.append(f"| {solver} | {budget} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def cost_plot(summary: dict[tuple, dict], task: str, path: Path) -> bool:
    """The task's ``COST_CURVES`` headline against the network passes spent, one curve per solver over
    its schedule lengths (log scale; one panel per instance unless the curve averages them), so that
    methods of different cost per step compare at equal cost; False if the task has no such rows."""
    if task not in COST_CURVES:
        return False
    label, value, averaged = COST_CURVES[task]
    curves = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # panel -> solver -> steps -> points
    for (t, instance, solver, steps), metrics in summary.items():
        if t == task and value(metrics) is not None:
            curves["all" if averaged else instance][solver][steps].append((metrics["network_passes"], value(metrics)))
    if not curves:
        return False
    panels = sorted(curves)
    columns = min(5, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 1.5, 3.0 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for solver, points in sorted(curves[panel].items()):
            steps = sorted(points)
            ax.plot([mean(p for p, _ in points[s]) for s in steps], [mean(v for _, v in points[s]) for s in steps],
                    marker="o", label=solver)
        if task == "gmm-posterior":
            ax.axhline(1.0, color="k", lw=0.8, ls="--", label="exact (floor)")
        ax.set_xscale("log")
        ax.set_title(panel if not averaged else task, fontsize=9)
        ax.set_xlabel(f"network passes (fwd + {BACKWARD_COST} x bwd)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / (3.6 * columns + 1.5), 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


#: per task, the panels of its trade-off plot: (x metric, y metric, axis labels), one curve per method over its scales
TRADE_OFFS = {
    "digits-conditional": [("kernel_distance", "judge_accuracy", "kernel distance to held-out digits (lower is closer)",
                            "judge accuracy"),
                           ("recall", "precision", "recall (coverage)", "precision (fidelity)")],
    "digits-unconditional": [("kernel_distance", "precision", "kernel distance to held-out digits (lower is closer)",
                              "precision (fidelity)"),
                             ("recall", "precision", "recall (coverage)", "precision (fidelity)")],
    "digits-bold": [("ink_error", "judge_accuracy", "ink error |fraction - target| (lower is bolder as asked)",
                     "judge accuracy"),
                    ("ink_error", "kernel_distance", "ink error |fraction - target| (lower is bolder as asked)",
                     "kernel distance to held-out digits (lower is closer)")],
}
#: the ``scale=V`` entry of a spec: a trade-off curve joins the specs that differ only in it
SCALE = re.compile(r"(?<=[:,])scale=([^,]+),?")


def method_and_scale(solver: str) -> tuple[str, str | None]:
    """A solver spec without its scale (the method), and the scale (None when it has none)."""
    found = SCALE.search(solver)
    if found is None:
        return solver, None
    method = (solver[:found.start()] + solver[found.end():]).rstrip(",:")
    return method, found.group(1)


def trade_off_plot(summary: dict[tuple, dict], task: str, path: Path) -> bool:
    """The task's ``TRADE_OFFS`` panels: one curve per method (and schedule length, when there are several)
    through its scales (labelled), the metrics averaged over instances; False if the task has no rows."""
    if task not in TRADE_OFFS:
        return False
    several = len({steps for (t, _, _, steps) in summary if t == task}) > 1
    points = defaultdict(lambda: defaultdict(list))  # method -> scale -> metric dicts
    for (t, _instance, solver, steps), metrics in summary.items():
        if t == task:
            method, scale = method_and_scale(solver)
            points[f"{method}, {steps} steps" if several else method][scale].append(metrics)
    if not points:
        return False
    panels = TRADE_OFFS[task]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels) + 2.0, 5.0), squeeze=False)
    for ax, (x_metric, y_metric, x_label, y_label) in zip(axes.flat, panels):
        for k, (method, scales) in enumerate(sorted(points.items())):
            order = sorted(scales, key=lambda v: float(v) if v is not None else 1.0)
            xs = [mean(m[x_metric] for m in scales[v]) for v in order]
            ys = [mean(m[y_metric] for m in scales[v]) for v in order]
            line, = ax.plot(xs, ys, marker="osD^v<>ph*"[k % 10], color=plt.cm.tab20(k % 20), label=method)
            for x, y, v in zip(xs, ys, order):
                if v is not None:
                    ax.annotate(v, (x, y), fontsize=6, color=line.get_color(), xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(x_label, fontsize=8)
        ax.set_ylabel(y_label, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / (6.0 * len(panels) + 2.0), 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def sample_grids(out: Path, records: list[dict]) -> list[Path]:
    """One grid per (task, instance) with saved images: truth and measurement, then a row per solver.
    Where some of an instance's saved images are gone (a committed results folder keeps
    ``results.jsonl`` and ``grids/``, not ``images/``), the grid drawn before is kept as it is."""
    by_instance = defaultdict(list)
    for record in sorted(records, key=lambda r: r["steps"]):
        by_instance[(record["task"], record["instance"])].append(record)
    paths = []
    for (task, instance), runs in sorted(by_instance.items()):
        path = out / "grids" / f"{task}--{instance}.png"
        missing = any(run.get("images") and not (out / run["images"]).is_file() for run in runs)
        if missing and path.is_file():
            paths.append(path)
            continue
        rows = defaultdict(dict)
        for run in runs:
            for name, batch in load_images(out, run).items():
                if name == "result":
                    rows[run["solver"]][f"{run['steps']} steps"] = batch[0]
                else:
                    rows[""][name] = batch[0]
        if not rows:
            continue
        cells = {name: list(rows[name].items()) for name in sorted(rows)}
        fig = labelled_grid_figure(cells, (-1.0, 1.0), title=f"{task} {instance}")
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(out: Path, solvers: list[str] | None = None, name: str = "report.md") -> Path:
    """Write ``out/name`` from ``out/results.jsonl``, over the runs of ``solvers`` (default: all)."""
    out = Path(out)
    rows = [r for r in read_results(out, older=True) if solvers is None or r["solver"] in solvers]
    if not rows:
        raise ValueError(f"{out}: no results{' for ' + ', '.join(solvers) if solvers else ''} in results.jsonl; "
                         f"run diffguide bench TASK --out {out} first")
    records, older = latest_settings([r for r in rows if r["status"] == "ok"])
    failed = [r for r in rows if r["status"] == "failed"]
    summary = summarise(records)
    text = ["# diffguide bench report", "", f"{len(records)} runs ok, {len(failed)} failed."
            + (f" {older} older runs with other settings left out." if older else ""), ""]
    if failed:
        text += ["## Failed runs", "", *(f"- {describe(row)}" for row in failed), ""]
    for task in sorted({task for (task, *_rest) in summary}):
        text += [f"## {task}", ""]
        if task == "gmm-posterior":
            text += [gmm_aggregate(summary)]
        text += [side_by_side(summary, task)]
        plot = f"{task.replace('-', '_')}_cost.png"
        if cost_plot(summary, task, out / plot):
            text += [f"![{COST_CURVES[task][0]} against network passes]({plot})", ""]
        trade_off = f"{task.replace('-', '_')}_trade_off.png"
        if trade_off_plot(summary, task, out / trade_off):
            text += [f"![trade-offs over each method's scale]({trade_off})", ""]
    text += ["## Every metric", "", markdown_table(summary)]
    for path in sample_grids(out, records):
        text += [f"![{path.stem}]({path.relative_to(out)})", ""]
    report = out / name
    report.write_text("\n".join(text))
    return report
