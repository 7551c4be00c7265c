"""The results file of a benchmark sweep, ``results.jsonl``: one JSON line per run, appended in one
write and fsynced as each run ends, never rewritten, so a kill loses at most the runs in progress.

A row is identified by its run key (``KEY``): every setting that changes its result. Rows are
``"status": "ok"`` with ``metrics``, or ``"failed"`` with ``error`` (``failures.py``). A later row
for a key replaces an earlier one (a failed run tried again with ``--retry-failed``).

Reading never raises on the file's content: a line that is not JSON (cut short by a kill), not an
object, or a row missing a key field is skipped with one warning line on stderr naming the line;
rows of schema 2 (before the run's device was recorded) are read as CPU runs, and rows of schemas 2
and 3 (before the precision was recorded and the schedule length was named ``steps``, then
``nfe_budget``) as fp32 runs; rows of an older
format (``schema`` absent or another) are left out with one warning line for all of them, so their
runs are done again; a report can still read the rows of schema 1 (before failed rows and the
full key), with the settings they did not record as None.

A run's images (for the report's grids) are saved beside it as
``images/<task>--<instance>--<solver>--steps<N>--<key hash>.npz``, one float16 array per name (no
pickles), written to a temporary file and moved into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

RESULTS = "results.jsonl"
#: the format of the rows written now; rows of another one are not read
SCHEMA = 4
#: what identifies a run: every setting that changes its result (``steps``: the schedule's length;
#: ``precision``: the network forward pass's)
KEY = ("task", "task_params", "instance", "reduced", "solver", "solver_class", "config", "seed", "steps",
       "weights", "device", "precision")
STATUSES = {"ok": "metrics", "failed": "error"}  # each status and the field it must carry
SCHEMA_1 = ("task", "instance", "solver", "config", "seed", "nfe_budget", "metrics")  # what its rows hold


def run_key(record: dict) -> tuple:
    """The run's key fields, each as canonical JSON."""
    return tuple(json.dumps(record[field], sort_keys=True) for field in KEY)


def upgraded(row):
    """A row of schema 2 or 3 in the current form: schema 2 was before the device was recorded (every
    run was on the CPU), both before the precision (fp32) and with the schedule length as ``nfe_budget``."""
    if not isinstance(row, dict) or row.get("schema") not in (2, 3):
        return row
    row = {**row, "device": "cpu"} if row["schema"] == 2 else dict(row)
    row["steps"] = row.pop("nfe_budget", None)
    return {**row, "schema": SCHEMA, "precision": "fp32"}


def row_problem(row) -> str | None:
    """Why a parsed line is not a row of the current format (None when it is)."""
    if not isinstance(row, dict):
        return f"not a JSON object but {type(row).__name__}"
    if row.get("schema") != SCHEMA:
        return f"schema {row.get('schema', 1)}, not {SCHEMA}"
    missing = [field for field in (*KEY, "status") if field not in row]
    if missing:
        return f"missing {', '.join(missing)}"
    if row["status"] not in STATUSES:
        return f"unknown status {row['status']!r}"
    if not isinstance(row.get(STATUSES[row["status"]]), dict):
        return f"status {row['status']} without {STATUSES[row['status']]}"
    return None


def from_schema_1(row: dict) -> dict | None:
    """A row of schema 1 in the current form, its unrecorded settings None (None if it is not one)."""
    if "schema" in row or not all(field in row for field in SCHEMA_1):
        return None
    return {**dict.fromkeys(KEY), **row, "steps": row["nfe_budget"], "schema": 1, "status": "ok"}


def read_results(out: Path, warn: bool = True, older: bool = False) -> list[dict]:
    """The latest usable row of every run in ``out/results.jsonl``, in the order runs first appear;
    unusable lines are skipped, with warnings on stderr when ``warn``; ``older``: rows of schema 1
    too (``from_schema_1``), for reports."""
    file = Path(out) / RESULTS
    if not file.is_file():
        return []
    rows, old_lines = {}, []
    for number, raw in enumerate(file.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = upgraded(json.loads(raw.decode()))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problem = "not JSON (a line cut short by a kill?)"
        else:
            problem = row_problem(row)
        if problem is None:
            rows[run_key(row)] = row
        elif problem.startswith("schema") and not older:
            old_lines.append(number)
        elif problem.startswith("schema") and from_schema_1(row) is not None:
            rows[run_key(from_schema_1(row))] = from_schema_1(row)
            old_lines.append(number)
        elif warn:
            print(f"diffguide: warning: {file}:{number}: skipped: {problem}", file=sys.stderr)
    if old_lines and warn:
        what = "read without the settings they did not record" if older else "left out; their runs will be done again"
        print(f"diffguide: warning: {file}: {len(old_lines)} row(s) of an older format (the first on line "
              f"{old_lines[0]}) {what}", file=sys.stderr)
    return list(rows.values())


def append_result(out: Path, record: dict) -> None:
    """Append one record as a line, in one write, and flush it to disk."""
    file = Path(out) / RESULTS
    file.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a line cut short by a kill stays its own (skipped) line
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def save_images(out: Path, record: dict, images: dict[str, torch.Tensor]) -> str:
    """Save a run's named image batches; returns the file's path relative to ``out``."""
    digest = hashlib.sha256("\n".join(run_key(record)).encode()).hexdigest()[:10]
    name = "--".join([record["task"], record["instance"], record["solver"], f"steps{record['steps']}", digest])
    relative = Path("images") / (re.sub(r"[^A-Za-z0-9._=-]+", "_", name) + ".npz")
    folder = (Path(out) / relative).parent
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {key: value.detach().cpu().to(torch.float16).numpy() for key, value in images.items()}  # for viewing only
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".npz", delete=False) as stream:
        np.savez_compressed(stream, **arrays)
    os.replace(stream.name, Path(out) / relative)
    return str(relative)


def load_images(out: Path, record: dict) -> dict[str, torch.Tensor]:
    """The images saved with ``record`` (empty when it has none, or when its file is not there: a
    committed results folder keeps ``results.jsonl`` but not its ``images/``)."""
    path = Path(out) / record["images"] if record.get("images") else None
    if path is None or not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as arrays:
        return {key: torch.from_numpy(arrays[key]).float() for key in arrays.files}
