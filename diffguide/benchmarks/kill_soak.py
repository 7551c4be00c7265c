"""Kill -9 soak of ``diffguide bench``: a small sweep on 2 workers is killed (SIGKILL to its whole
process group) at random moments, at least ``--kills`` times, and restarted each time; then it
runs to its end. A kill falls, at random, either during start-up (at 30-90% of the time the
last start took to its first row, or at its first row if that comes sooner) or while rows are
written (after 1 to 2 x rows / kills new rows, plus up to the uninterrupted run's mean time
between rows), so the kills spread over the sweep whatever the machine's load. Its
``results.jsonl`` is then checked against an uninterrupted run of the same sweep.

Checks: the file only ever grew (every snapshot taken after a kill is a prefix of the final file,
so no finished row was lost or changed), no run has two rows, every line is a complete row of the
current format (a line cut short by a kill would be counted as partial), no process of a killed
group survived, and every row equals the uninterrupted run's row for its key in every field but
the timings and memory figures (metrics and counts bitwise, as JSON keeps floats exactly).
``python -m diffguide.benchmarks.kill_soak [--kills 10] [--seed 0]``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .results import RESULTS, row_problem, run_key

SWEEP = ["gmm-posterior", "--reduced", "--solver", "dps:zeta=0.5", "--solver", "ddim", "--seeds", "16",
         "--nfe", "8", "--nfe", "10", "--workers", "2"]
EXPECTED_ROWS = 2 * 2 * 16 * 2  # instances x solvers x seeds x budgets
UNTIMED = ("wall_seconds", "peak_memory_mb", "peak_rss_mb")  # the only fields that may differ between runs


def start(out: Path, log) -> subprocess.Popen:
    """The sweep into ``out``, in a process group of its own (its workers join it)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "diffguide.cli", "bench", *SWEEP, "--out", str(out)],
                            stdout=log, stderr=log, start_new_session=True, env=env)


def survivors(group: int) -> int:
    """Processes of ``group`` still alive (zombies waiting for a parent do not count)."""
    alive = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        alive += int(fields[2]) == group and fields[0] != "Z"
    return alive


def lines(out: Path) -> list[bytes]:
    file = out / RESULTS
    return [line for line in file.read_bytes().split(b"\n") if line.strip()] if file.is_file() else []


def parsed(out: Path) -> list:
    """Every line of ``out/results.jsonl`` as JSON, None where it is not JSON."""
    rows = []
    for line in lines(out):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            rows.append(None)
    return rows


def rows_by_key(rows: list) -> dict[tuple, dict]:
    """The usable rows by run key, without the fields that differ between runs."""
    return {run_key(row): {k: v for k, v in row.items() if k not in UNTIMED}
            for row in rows if row is not None and row_problem(row) is None}


def timing(process: subprocess.Popen, out: Path) -> tuple[float, float]:
    """Seconds until the sweep's first row and until its end, polled; it must exit 0."""
    began, first = time.monotonic(), None
    while process.poll() is None:
        if first is None and lines(out):
            first = time.monotonic() - began
        time.sleep(0.05)
    if process.returncode != 0:
        sys.exit(f"the uninterrupted run failed (exit code {process.returncode})")
    span = time.monotonic() - began
    return (first if first is not None else span), span


def watch(process: subprocess.Popen, out: Path, stop) -> float | None:
    """Poll every 20 ms until ``stop(seconds since the start, rows on disk)`` or the process ends;
    returns the seconds to its first new row (None if it wrote none)."""
    began, before, first = time.monotonic(), len(lines(out)), None
    while process.poll() is None:
        elapsed, count = time.monotonic() - began, len(lines(out))
        if first is None and count > before:
            first = elapsed
        if stop(elapsed, count):
            break
        time.sleep(0.02)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kills at least (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default 0)")
    args = parser.parse_args()
    moments = random.Random(args.seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kill-soak-") as folder:
        folder = Path(folder)
        print(f"sweep: diffguide bench {' '.join(SWEEP)} ({EXPECTED_ROWS} runs)")
        with open(folder / "reference.log", "wb") as log:
            startup, span = timing(start(folder / "reference", log), folder / "reference")
        print(f"uninterrupted run: {len(lines(folder / 'reference'))} rows in {span:.1f} s, "
              f"the first after {startup:.1f} s")
        out, snapshots, kills, starts, left_alive, mid_sweep = folder / "soak", [], 0, 0, 0, 0
        row_gap = (span - startup) / (EXPECTED_ROWS - 1)
        with open(folder / "soak.log", "wb") as log:
            while kills < args.kills:
                before = len(lines(out))
                most = min(2 * EXPECTED_ROWS // args.kills, EXPECTED_ROWS - before - 1)
                process, starts, began_start = start(out, log), starts + 1, time.monotonic()
                if most < 1 or moments.random() < 0.3:
                    when = moments.uniform(0.3, 0.9) * startup
                    first = watch(process, out, lambda elapsed, count: elapsed >= when or count > before)
                else:
                    target = before + moments.randint(1, most)
                    first = watch(process, out, lambda elapsed, count: count >= target)
                    time.sleep(moments.uniform(0, row_gap))
                startup = first if first is not None else startup
                moment = time.monotonic() - began_start
                if process.poll() is not None:
                    print(f"start {starts}: ended by itself before the kill ({len(lines(out))} rows)")
                    continue
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                deadline = time.monotonic() + 10
                while survivors(process.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                left_alive += survivors(process.pid)
                kills += 1
                mid_sweep += len(lines(out)) > before
                snapshots.append((out / RESULTS).read_bytes() if (out / RESULTS).is_file() else b"")
                print(f"kill {kills} at {moment:.1f} s after start {starts}: {len(lines(out))} rows on disk "
                      f"({len(lines(out)) - before} new)")
            starts += 1
            if start(out, log).wait() != 0:
                sys.exit(f"the last restart failed; see {folder / 'soak.log'}")
        final = (out / RESULTS).read_bytes()
        grew = sum(final.startswith(snapshot) for snapshot in snapshots)
        rows = parsed(out)
        partial = sum(row is None for row in rows)
        corrupted = sum(row is not None and row_problem(row) is not None for row in rows)
        keys = [run_key(row) for row in rows if row is not None and row_problem(row) is None]
        duplicated = len(keys) - len(set(keys))
        reference, soaked = rows_by_key(parsed(folder / "reference")), rows_by_key(rows)
        equal = sum(soaked.get(key) == row for key, row in reference.items())
        lost = EXPECTED_ROWS - len(set(keys) & set(reference))
    print(f"kills: {kills} (SIGKILL to the process group; {mid_sweep} of them after new rows, the others "
          f"during start-up), starts: {starts}, processes left alive: {left_alive}")
    print(f"append-only: {grew} of {len(snapshots)} snapshots after a kill are a prefix of the final file")
    print(f"final file: {len(rows)} lines, {len(set(keys))} runs of {EXPECTED_ROWS}; lost {lost}, "
          f"duplicated {duplicated}, corrupted {corrupted}, partial lines {partial}")
    print(f"equal to the uninterrupted run (every field but {', '.join(UNTIMED)}): {equal} of {len(reference)}")
    print(f"soak time: {time.monotonic() - began:.0f} s")
    ok = (left_alive == 0 and grew == len(snapshots) and lost == duplicated == corrupted == partial == 0
          and equal == len(reference) == EXPECTED_ROWS)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
