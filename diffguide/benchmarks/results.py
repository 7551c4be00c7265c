"""The results file of a benchmark run: one JSON line per (instance, solver, seed), appended
and flushed as each run ends, so an interrupted run loses at most the run in progress and a
rerun skips what is done. A run's images (for the report's grids) are saved beside it as
``images/<task>--<instance>--<solver>--nfe<N>.npz``, one float16 array per name (no pickles)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

RESULTS = "results.jsonl"


def run_key(record: dict) -> tuple:
    """What identifies a run: task, instance, solver name and config, seed and NFE budget."""
    return (record["task"], record["instance"], record["solver"], json.dumps(record["config"], sort_keys=True),
            record["seed"], record["nfe_budget"])


def read_results(out: Path) -> list[dict]:
    """Every complete line of ``out/results.jsonl`` (a line cut short by a kill is ignored)."""
    file = Path(out) / RESULTS
    if not file.is_file():
        return []
    records = []
    for line in file.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_result(out: Path, record: dict) -> None:
    """Append one record as a line and flush it to disk."""
    file = Path(out) / RESULTS
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "ab+") as stream:
        if stream.tell() > 0:
            stream.seek(-1, os.SEEK_END)
            if stream.read(1) != b"\n":
                stream.write(b"\n")  # a line cut short by a kill stays its own (ignored) line
        stream.write((json.dumps(record) + "\n").encode())
        stream.flush()
        os.fsync(stream.fileno())


def save_images(out: Path, record: dict, images: dict[str, torch.Tensor]) -> str:
    """Save a run's named image batches; returns the file's path relative to ``out``."""
    name = "--".join([record["task"], record["instance"], record["solver"], f"nfe{record['nfe_budget']}"])
    relative = Path("images") / (re.sub(r"[^A-Za-z0-9._=-]+", "_", name) + ".npz")
    (Path(out) / relative).parent.mkdir(parents=True, exist_ok=True)
    arrays = {key: value.detach().cpu().to(torch.float16).numpy() for key, value in images.items()}  # for viewing only
    np.savez_compressed(Path(out) / relative, **arrays)
    return str(relative)


def load_images(out: Path, record: dict) -> dict[str, torch.Tensor]:
    """The images saved with ``record`` (empty when it has none)."""
    if not record.get("images"):
        return {}
    with np.load(Path(out) / record["images"], allow_pickle=False) as arrays:
        return {key: torch.from_numpy(arrays[key]).float() for key in arrays.files}
