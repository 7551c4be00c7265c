"""The benchmark harness: a reduced gmm-posterior run, resume after an interruption, the report."""
import json

import pytest

from diffguide.benchmarks.harness import run_benchmark
from diffguide.benchmarks.results import RESULTS, read_results, run_key
from diffguide.benchmarks.tasks.gmm_posterior import GMMPosterior
from diffguide.cli import main
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.dps import DPS

SOLVERS = {"dps": DPS(zeta=0.5), "ddim": DDIM()}


class Interrupted(GMMPosterior):
    """Stops the process (as Ctrl-C would) after ``allowed`` runs."""

    def __init__(self, allowed):
        super().__init__()
        self.allowed = allowed

    def run(self, *args):
        if self.allowed == 0:
            raise KeyboardInterrupt
        self.allowed -= 1
        return super().run(*args)


def test_reduced_task_records_every_run(tmp_path):
    written = run_benchmark(GMMPosterior(), SOLVERS, seeds=2, nfe=10, out=tmp_path, reduced=True)
    assert len(written) == len(GMMPosterior().instances(True)) * len(SOLVERS) * 2
    record = read_results(tmp_path)[0]
    for key in ("task", "instance", "solver", "config", "seed", "metrics", "nfe", "operator_evals", "grad_evals",
                "wall_seconds", "peak_rss_mb"):
        assert key in record
    assert record["nfe"] == 10
    for run in read_results(tmp_path):  # DPS uses the data: it is closer to the posterior than the prior is
        if run["solver"] == "dps" and run["instance"].startswith("d4"):
            assert run["metrics"]["mean_error"] < run["metrics"]["prior_mean_error"]


def test_resume_after_interruption_has_no_duplicates_and_no_gaps(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(Interrupted(allowed=3), SOLVERS, seeds=2, nfe=10, out=tmp_path, reduced=True)
    assert len(read_results(tmp_path)) == 3
    with open(tmp_path / RESULTS, "a") as stream:  # a kill in the middle of writing a line
        stream.write('{"task": "gmm-posterior", "instance"')
    run_benchmark(GMMPosterior(), SOLVERS, seeds=2, nfe=10, out=tmp_path, reduced=True)
    keys = [run_key(record) for record in read_results(tmp_path)]
    assert len(keys) == len(set(keys)) == len(GMMPosterior().instances(True)) * len(SOLVERS) * 2
    assert run_benchmark(GMMPosterior(), SOLVERS, seeds=2, nfe=10, out=tmp_path, reduced=True) == []


def test_cli_bench_and_report(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "gmm-posterior", "--reduced", "--solver", "dps", "--nfe", "5", "--nfe", "10",
                 "--out", str(out)]) == 0
    assert len(read_results(out)) == 4
    assert main(["bench", "report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| gmm-posterior | d2-k4-mask-s0.5 | dps | 5 |" in report and (out / "gmm_posterior_nfe.png").is_file()
    assert main(["bench", "nope", "--out", str(out)]) == 2
    assert json.loads((out / RESULTS).read_text().splitlines()[0])["task"] == "gmm-posterior"


def test_reduced_restore_task_scores_every_instance(tmp_path):
    from diffguide.benchmarks.tasks.restore import Restore

    written = run_benchmark(Restore(), {"dps": DPS()}, seeds=1, nfe=5, out=tmp_path, reduced=True)
    assert [record["instance"] for record in written] == Restore().instances(True)
    for record in written:
        assert record["nfe"] == 5 and record["grad_evals"] == 5
        assert 5 < record["metrics"]["psnr"] < 60 and 0 < record["metrics"]["data_consistency"] < 10


def test_deepinv_peers_run_in_the_same_results_at_the_same_budget(tmp_path):
    out = tmp_path / "peers"
    assert main(["bench", "restore", "--reduced", "--solver", "dps", "--solver", "deepinv-dps:weight=2",
                 "--solver", "deepinv-diffpir", "--nfe", "6", "--out", str(out)]) == 0
    records = read_results(out)
    assert {r["solver"] for r in records} == {"dps", "deepinv-dps:weight=2", "deepinv-diffpir"}
    assert all(r["nfe"] == 6 for r in records)  # equal budgets, counted on the prior's side
    assert all(5 < r["metrics"]["psnr"] < 60 for r in records)
    assert main(["bench", "restore", "--solver", "deepinv-dps:rho=1", "--out", str(out)]) == 2


def test_process_pool_gives_the_same_records_as_in_process(tmp_path):
    from diffguide.executors import ProcessPool

    serial = run_benchmark(GMMPosterior(), SOLVERS, seeds=1, nfe=8, out=tmp_path / "serial", reduced=True)
    pooled = run_benchmark(GMMPosterior(), SOLVERS, seeds=1, nfe=8, out=tmp_path / "pool", reduced=True,
                           executor=ProcessPool(2))
    by_key = {run_key(r): r["metrics"] for r in serial}
    assert {run_key(r): r["metrics"] for r in pooled} == by_key  # same seeds, same numbers, any order
