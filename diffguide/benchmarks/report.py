"""``diffguide bench report DIR``: results.jsonl -> a markdown table and metric-vs-NFE plots.

Rows average over seeds; the table has one row per (task, instance, solver, NFE budget).
For ``gmm-posterior`` the plot shows sliced Wasserstein over the floor (1 is exact) per
solver against NFE, averaged over instances."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean

from ..plotting import plt
from .results import read_results


def summarise(records: list[dict]) -> dict[tuple, dict]:
    groups = defaultdict(list)
    for record in records:
        groups[(record["task"], record["instance"], record["solver"], record["nfe_budget"])].append(record)
    summary = {}
    for key, runs in sorted(groups.items()):
        metrics = {name: mean(run["metrics"][name] for run in runs) for name in runs[0]["metrics"]}
        metrics.update(seeds=len(runs), nfe=mean(run["nfe"] for run in runs),
                       wall_seconds=mean(run["wall_seconds"] for run in runs),
                       peak_rss_mb=max(run["peak_rss_mb"] for run in runs))
        summary[key] = metrics
    return summary


def markdown_table(summary: dict[tuple, dict]) -> str:
    columns = sorted({name for metrics in summary.values() for name in metrics})
    lines = ["| task | instance | solver | NFE budget | " + " | ".join(columns) + " |",
             "|" + " --- |" * (4 + len(columns))]
    for (task, instance, solver, budget), metrics in summary.items():
        cells = [f"{metrics[c]:.4g}" if isinstance(metrics.get(c), (int, float)) else "" for c in columns]
        lines.append(f"| {task} | {instance} | {solver} | {budget} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def nfe_plot(summary: dict[tuple, dict], path: Path) -> bool:
    """Sliced Wasserstein over the floor against NFE per solver (gmm-posterior); False if no such rows."""
    curves = defaultdict(lambda: defaultdict(list))
    for (task, _, solver, budget), metrics in summary.items():
        if task == "gmm-posterior" and metrics.get("floor"):
            curves[solver][budget].append(metrics["sliced_wasserstein"] / metrics["floor"])
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for solver, points in sorted(curves.items()):
        budgets = sorted(points)
        ax.plot(budgets, [mean(points[b]) for b in budgets], marker="o", label=solver)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="exact (floor)")
    ax.set_xlabel("NFE")
    ax.set_ylabel("sliced W2 / floor (mean over instances)")
    ax.set_xscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(out: Path) -> Path:
    out = Path(out)
    records = read_results(out)
    if not records:
        raise ValueError(f"{out}: no results.jsonl with results; run diffguide bench TASK --out {out} first")
    summary = summarise(records)
    text = ["# diffguide bench report", "", f"{len(records)} runs.", "", markdown_table(summary)]
    if nfe_plot(summary, out / "gmm_posterior_nfe.png"):
        text += ["![sliced Wasserstein over the floor against NFE](gmm_posterior_nfe.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(text))
    return report
