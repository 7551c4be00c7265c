"""The results file of a benchmark run: one JSON line per (instance, solver, seed), appended
and flushed as each run ends, so an interrupted run loses at most the run in progress and a
rerun skips what is done."""
from __future__ import annotations

import json
import os
from pathlib import Path

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
