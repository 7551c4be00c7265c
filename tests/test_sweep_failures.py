"""One bad configuration never sinks a sweep: failed rows, the summary and exit code, reruns with and
without ``--retry-failed``, a damaged results.jsonl, the run key, and arguments refused before any work."""
import json
import os
from pathlib import Path

import pytest

from diffguide.benchmarks.harness import run_benchmark, run_record
from diffguide.benchmarks.results import KEY, RESULTS, read_results, run_key
from diffguide.benchmarks.tasks.gmm_posterior import GMMPosterior
from diffguide.cli import main
from diffguide.solvers.ddim import DDIM
from diffguide.types import BlackBoxFailedError, GuidanceDivergedError

DIVERGES = "tfg:rho=1e6,normalize=false"
BENCH = ["bench", "gmm-posterior", "--reduced", "--nfe", "6"]
INSTANCES = GMMPosterior().instances(True)


def cli(*argv) -> int:
    """diffguide's exit code for ``argv`` (1 for a sweep with failed runs)."""
    return main([str(arg) for arg in argv])


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("diffguide: warning:")]


class FailsOnce(GMMPosterior):
    """Raises ``error`` on the first run of each instance, then runs as usual."""

    def __init__(self, error):
        super().__init__()
        self.error, self.failed = error, set()

    def run(self, instance, *args):
        if instance not in self.failed:
            self.failed.add(instance)
            raise self.error
        return super().run(instance, *args)


class OtherDDIM(DDIM):
    """DDIM's fields under another class: another solver for the run key."""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_diverging_config_is_a_failed_row_and_the_sweep_goes_on(tmp_path, capsys, workers):
    out, sweep = tmp_path / "sweep", [*BENCH, "--solver", DIVERGES, "--solver", "ddim", "--workers", workers]
    assert cli(*sweep, "--out", out) == 1
    rows = read_results(out)
    failed = [row for row in rows if row["status"] == "failed"]
    assert [row["solver"] for row in failed] == [DIVERGES] * 2
    for row in failed:
        assert row["error"]["type"] == "GuidanceDivergedError" and "diverged at step 0" in row["error"]["message"]
        assert "\n" not in row["error"]["message"] and "metrics" not in row
    assert sorted(row["instance"] for row in rows if row["solver"] == "ddim" and row["status"] == "ok") == INSTANCES
    printed = capsys.readouterr()
    assert "2 of 4 runs failed:" in printed.out and printed.out.count(f"{DIVERGES}, seed 0, 6 steps") == 2
    last = printed.err.splitlines()[-1]
    assert last == "diffguide bench: 2 of 4 runs failed; a rerun skips them unless --retry-failed"
    assert cli("bench", "report", out) == 0
    report = (out / "report.md").read_text()
    assert "2 runs ok, 2 failed." in report and "## Failed runs" in report
    assert report.count(f"{DIVERGES}, seed 0, 6 steps, reduced: GuidanceDivergedError") == 2
    before = (out / RESULTS).read_bytes()
    assert cli(*sweep, "--out", out) == 1 and (out / RESULTS).read_bytes() == before  # skipped, still named
    assert capsys.readouterr().out.count(DIVERGES) == 2
    assert cli(*sweep, "--retry-failed", "--out", out) == 1  # tried again: it diverges again
    lines = [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]
    assert len(lines) == 6 and [line["solver"] for line in lines[4:]] == [DIVERGES] * 2


@pytest.mark.parametrize("error", [GuidanceDivergedError(3, "NaN/Inf in the state", "DPS"),
                                   BlackBoxFailedError("9 of 10 evaluations failed\nfirst: timed out"),
                                   RuntimeError("a bug in a solver")])
def test_a_retried_failure_that_succeeds_replaces_it(tmp_path, capsys, error):
    task, solvers = FailsOnce(error), {"ddim": DDIM()}
    written = run_benchmark(task, solvers, seeds=1, steps=6, out=tmp_path, reduced=True)
    assert [row["error"] for row in written] == [{"type": type(error).__name__,
                                                  "message": str(error).splitlines()[0]}] * 2
    assert run_benchmark(task, solvers, seeds=1, steps=6, out=tmp_path, reduced=True) == []
    retried = run_benchmark(task, solvers, seeds=1, steps=6, out=tmp_path, reduced=True, retry_failed=True)
    assert [row["status"] for row in retried] == ["ok", "ok"]
    assert [row["status"] for row in read_results(tmp_path)] == ["ok", "ok"]  # the last row of a key wins
    assert len((tmp_path / RESULTS).read_text().splitlines()) == 4  # appended, nothing rewritten
    assert cli("bench", "report", tmp_path) == 0
    assert "2 runs ok, 0 failed." in (tmp_path / "report.md").read_text()
    assert "Failed runs" not in (tmp_path / "report.md").read_text()


def test_a_damaged_results_file_warns_once_per_bad_line_and_reruns_what_it_lost(tmp_path, capsys):
    run_benchmark(GMMPosterior(), {"ddim": DDIM()}, seeds=1, steps=6, out=tmp_path, reduced=True)
    first, second = (tmp_path / RESULTS).read_text().splitlines()
    no_seed, no_metrics, older = json.loads(first), json.loads(first), json.loads(second)
    del no_seed["seed"], no_metrics["metrics"], older["schema"], older["reduced"]
    older["nfe_budget"] = older.pop("steps")  # schema 1 named the schedule length so
    lines = [first, "not json at all", json.dumps(no_seed), "[1, 2]", json.dumps(no_metrics), json.dumps(older)]
    (tmp_path / RESULTS).write_bytes("\n".join(lines).encode() + b"\n\xff\xfe\n" + b'{"schema": 2, "task": "gmm')
    capsys.readouterr()
    written = run_benchmark(GMMPosterior(), {"ddim": DDIM()}, seeds=1, steps=6, out=tmp_path, reduced=True)
    assert [row["instance"] for row in written] == [json.loads(second)["instance"]]  # the older row's run again
    err = capsys.readouterr().err
    assert "Traceback" not in err
    file = tmp_path / RESULTS
    assert warnings(err) == [f"diffguide: warning: {file}:2: skipped: not JSON (a line cut short by a kill?)",
                             f"diffguide: warning: {file}:3: skipped: missing seed",
                             f"diffguide: warning: {file}:4: skipped: not a JSON object but list",
                             f"diffguide: warning: {file}:5: skipped: status ok without metrics",
                             f"diffguide: warning: {file}:7: skipped: not JSON (a line cut short by a kill?)",
                             f"diffguide: warning: {file}:8: skipped: not JSON (a line cut short by a kill?)",
                             f"diffguide: warning: {file}: 1 row(s) of an older format (the first on line 6) left out; "
                             "their runs will be done again"]
    assert [row["instance"] for row in read_results(tmp_path, warn=False)] == INSTANCES
    assert json.loads(file.read_bytes().splitlines()[-1])["instance"] == written[0]["instance"]  # its own line
    assert cli("bench", "report", tmp_path) == 0
    assert warnings(capsys.readouterr().err)[-1] == (f"diffguide: warning: {file}: 1 row(s) of an older format (the "
                                                     "first on line 6) read without the settings they did not record")
    assert "2 runs ok, 0 failed. 1 older runs with other settings left out." in (tmp_path / "report.md").read_text()


def test_the_run_key_holds_every_setting_that_changes_a_result(tmp_path, capsys):
    task, instance = GMMPosterior(), INSTANCES[0]
    base = run_record(task, instance, "ddim", DDIM(), 0, 6, True)
    assert set(KEY) <= set(base)
    variants = [run_record(task, instance, "ddim", DDIM(), 0, 6, False),
                run_record(task, instance, "ddim", DDIM(), 1, 6, True),
                run_record(task, instance, "ddim", DDIM(), 0, 7, True),
                run_record(task, instance, "ddim", DDIM(eta=0.5), 0, 6, True),
                run_record(task, instance, "ddim:eta=0", DDIM(), 0, 6, True),
                run_record(task, instance, "ddim", OtherDDIM(), 0, 6, True),
                run_record(GMMPosterior(samples=50), instance, "ddim", DDIM(), 0, 6, True),
                run_record(task, INSTANCES[1], "ddim", DDIM(), 0, 6, True), dict(base, weights="retrained")]
    assert len({run_key(record) for record in [base, *variants]}) == 1 + len(variants)
    assert run_key(run_record(FailsOnce(None), instance, "ddim", DDIM(), 0, 6, True)) == run_key(base)
    one = ["bench", "gmm-posterior", "--instance", instance, "--solver", "ddim", "--nfe", "4", "--out", tmp_path]
    assert cli(*one, "--reduced") == 0 and cli(*one) == 0 and cli(*one, "--reduced", "--seeds", "2") == 0
    rows = read_results(tmp_path)
    assert [(row["reduced"], row["seed"]) for row in rows] == [(True, 0), (False, 0), (True, 1)]


def test_tune_scores_a_failing_configuration_nan_and_goes_on(tmp_path, capsys):
    assert cli("tune", "gmm-posterior", "--instance", "d4-k1-ill-s0.1", "--reduced", "--nfe", "6", "--metric",
               "mean_error", "--solver", "tfg:normalize=false", "--keys", "rho", "--start", "rho=1e6", "--rounds", "1",
               "--out", tmp_path) == 0
    lines = [json.loads(line) for line in (tmp_path / "tune.jsonl").read_text().splitlines()]
    assert [line["score"] for line in lines] == [None, None]
    assert all(line["runs"][0]["error"]["type"] == "GuidanceDivergedError" for line in lines)
    assert "every configuration failed" in capsys.readouterr().out


def unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write in (a read-only one, or /proc/1 where root can write anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    for folder in (locked, Path("/proc/1")):
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return folder / "out"
    pytest.skip("no folder here is unwritable for this process")


BENCH_REFUSED = [["--nfe", "-5"], ["--nfe", "0"], ["--nfe", "5", "--nfe", "0"], ["--seeds", "0"], ["--seeds", "-1"],
                 ["--workers", "0"], ["--workers", "-3"], ["--solver", "nope"], ["--solver", "ddim:nope=1"],
                 ["--instance", "d9-k9-mask-s0.5"], ["--out", "FILE"], ["--out", "FILE/out"], ["--out", "LOCKED"],
                 ["--out", ""], ["UNKNOWN-TASK"]]
TUNE_REFUSED = [["--beam", "0"], ["--rounds", "-1"], ["--seeds", "0"], ["--nfe", "0"], ["--nfe", "-5"],
                ["--keys", "rho", "--factor", "1"], ["--keys", "rho", "--factor", "-2"], ["--max", "rho=0"],
                ["--keys", "rho", "--start", "rho=-1"], ["--instance", "d9-k9-mask-s0.5"], ["--out", "FILE"],
                ["--out", "LOCKED"], ["--out", ""], ["UNKNOWN-TASK"]]


@pytest.mark.parametrize("command, extra", [("bench", extra) for extra in BENCH_REFUSED]
                         + [("tune", extra) for extra in TUNE_REFUSED])
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, command, extra):
    out, file = tmp_path / "out", tmp_path / "file"
    file.write_text("keep")
    task = "nope" if extra == ["UNKNOWN-TASK"] else "gmm-posterior"
    places = {"FILE": file, "FILE/out": file / "out", "UNKNOWN-TASK": None}
    if "LOCKED" in extra:
        places["LOCKED"] = unwritable(tmp_path)
    extra = [places.get(arg, arg) for arg in extra if places.get(arg, arg) is not None]
    if command == "bench":
        argv = ["bench", task, "--reduced", "--solver", "ddim", "--nfe", "4", "--out", out, *extra]
    else:
        argv = ["tune", task, "--instance", "d4-k1-ill-s0.1", "--reduced", "--metric", "mean_error", "--nfe", "4",
                "--out", out, *extra]
    capsys.readouterr()
    assert cli(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"diffguide {command}: error: "), err
    assert {path.name for path in tmp_path.iterdir()} <= {"file", "locked"} and file.read_text() == "keep"
