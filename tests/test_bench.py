"""The benchmark harness: a reduced gmm-posterior run, resume after an interruption, the report."""
import json
import shutil

import pytest
import torch

from diffguide.benchmarks.harness import run_benchmark
from diffguide.benchmarks.peers import DeepinvPeer
from diffguide.benchmarks.report import write_report
from diffguide.benchmarks.results import RESULTS, load_images, read_results, run_key
from diffguide.benchmarks.tasks.gmm_posterior import GMMPosterior
from diffguide.cli import main
from diffguide.metrics import sliced_wasserstein
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
    written = run_benchmark(GMMPosterior(), SOLVERS, seeds=2, steps=10, out=tmp_path, reduced=True)
    assert len(written) == len(GMMPosterior().instances(True)) * len(SOLVERS) * 2
    record = read_results(tmp_path)[0]
    for key in ("task", "instance", "solver", "config", "seed", "metrics", "nfe", "operator_evals", "grad_evals",
                "wall_seconds", "peak_memory_mb", "peak_rss_mb"):
        assert key in record
    assert record["nfe"] == 10
    for run in read_results(tmp_path):  # DPS uses the data: it is closer to the posterior than the prior is
        if run["solver"] == "dps" and run["instance"].startswith("d4"):
            assert run["metrics"]["mean_error"] < run["metrics"]["prior_mean_error"]


def test_resume_after_interruption_has_no_duplicates_and_no_gaps(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(Interrupted(allowed=3), SOLVERS, seeds=2, steps=10, out=tmp_path, reduced=True)
    assert len(read_results(tmp_path)) == 3
    with open(tmp_path / RESULTS, "a") as stream:  # a kill in the middle of writing a line
        stream.write('{"task": "gmm-posterior", "instance"')
    run_benchmark(GMMPosterior(), SOLVERS, seeds=2, steps=10, out=tmp_path, reduced=True)
    keys = [run_key(record) for record in read_results(tmp_path)]
    assert len(keys) == len(set(keys)) == len(GMMPosterior().instances(True)) * len(SOLVERS) * 2
    assert run_benchmark(GMMPosterior(), SOLVERS, seeds=2, steps=10, out=tmp_path, reduced=True) == []


def test_cli_bench_and_report(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "gmm-posterior", "--reduced", "--solver", "dps", "--nfe", "5", "--nfe", "10",
                 "--out", str(out)]) == 0
    assert len(read_results(out)) == 4
    assert main(["bench", "report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| gmm-posterior | d2-k4-mask-s0.5 | dps | 5 |" in report and (out / "gmm_posterior_cost.png").is_file()
    assert main(["bench", "nope", "--out", str(out)]) == 2
    assert main(["bench", "gmm-posterior", "--reduced", "--instance", "d2-k9-mask-s0.5", "--out", str(out)]) == 2
    assert main(["bench", "gmm-posterior", "--reduced", "--instance", "d4-k1-ill-s0.1", "--nfe", "3", "--out", str(out)]) == 0
    assert [r["instance"] for r in read_results(out) if r["steps"] == 3] == ["d4-k1-ill-s0.1"]
    assert json.loads((out / RESULTS).read_text().splitlines()[0])["task"] == "gmm-posterior"


def test_reduced_restore_task_scores_every_instance(tmp_path):
    from diffguide.benchmarks.tasks.restore import Restore

    written = run_benchmark(Restore(), {"dps": DPS(), "ddim": DDIM()}, seeds=1, steps=5, out=tmp_path, reduced=True)
    guided = [record for record in written if record["solver"] == "dps"]
    assert [record["instance"] for record in guided] == Restore().instances(True)
    for record in guided:
        assert record["nfe"] == 5 and record["grad_evals"] == 5
        assert 5 < record["metrics"]["psnr"] < 60 and 0 < record["metrics"]["data_consistency"] < 10
    # the classical baseline comes from the measurement alone: the same next to every solver
    baselines = {}
    for record in written:
        assert 5 < record["metrics"]["baseline_psnr"] < 60 and 0 < record["metrics"]["baseline_ssim"] <= 1
        baselines.setdefault(record["instance"], set()).add(record["metrics"]["baseline_psnr"])
    assert all(len(values) == 1 for values in baselines.values())
    # a committed results folder has no images/ (it is not tracked): its report still comes out
    write_report(tmp_path)
    grid = tmp_path / "grids" / "restore--photos-sr2.png"
    drawn = grid.read_bytes()
    shutil.rmtree(tmp_path / "images")
    report = write_report(tmp_path).read_text()
    assert "photos-sr2 |" in report and "![restore--photos-sr2](grids/restore--photos-sr2.png)" in report
    assert grid.read_bytes() == drawn  # the grid drawn from the images is kept, not redrawn without them


def test_deepinv_peers_run_in_the_same_results_at_the_same_budget(tmp_path):
    out = tmp_path / "peers"
    solvers = ["dps", "deepinv-dps:weight=2", "deepinv-ddrm", "deepinv-diffpir"]
    assert main(["bench", "restore", "--reduced", *[a for s in solvers for a in ("--solver", s)], "--nfe", "6",
                 "--out", str(out)]) == 0
    records = read_results(out)
    assert {r["solver"] for r in records} == set(solvers)
    assert all(r["nfe"] == 6 for r in records)  # equal budgets, counted on the prior's side
    costs = {r["solver"]: r["network_passes"] for r in records}
    assert costs["dps"] == costs["deepinv-dps:weight=2"] == 18 and costs["deepinv-ddrm"] == 6  # DPS: 6 backward
    assert all(5 < r["metrics"]["psnr"] < 60 for r in records)
    ddrm = [r for r in records if r["solver"] == "deepinv-ddrm" and r["instance"] == "digits-blur"]
    assert ddrm[0]["metrics"]["psnr"] > 20  # DDRM with the exact SVD deblurs in 6 steps
    assert main(["bench", "restore", "--solver", "deepinv-dps:rho=1", "--out", str(out)]) == 2
    assert main(["bench", "report", str(out)]) == 0
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["restore--digits-blur.png", "restore--photos-sr2.png"]
    report = (out / "report.md").read_text()
    assert (out / "restore_cost.png").is_file() and "restore_cost.png" in report
    row = next(line for line in report.splitlines() if line.startswith("| digits-blur | 18 |"))
    assert row.count("(6 steps") == 2  # DPS and deepinv's DPS share the row of 18 passes; DDRM's is 6
    images = load_images(out, records[0])
    assert set(images) == {"truth", "measurement", "result"} and images["result"].ndim == 4
    assert "| digits-blur | 6 |" in (out / "report.md").read_text()
    assert main(["bench", "report", str(out), "--solver", "dps", "--solver", "deepinv-ddrm", "--name", "two.md"]) == 0
    assert "| instance | network passes | deepinv-ddrm | dps |" in (out / "two.md").read_text()


def test_deepinv_peers_on_the_exact_posterior_task(tmp_path):
    peers = {name: DeepinvPeer(method=name) for name in ("dps", "ddrm", "diffpir")}
    written = run_benchmark(GMMPosterior(), peers, seeds=1, steps=10, out=tmp_path, reduced=True)
    assert len(written) == 2 * 3 and all(r["nfe"] == 10 for r in written)
    for record in written:  # every peer uses the measurement: closer to the posterior than the prior is
        if record["instance"] == "d2-k4-mask-s0.5":  # (on the ill-conditioned one deepinv's default DPS is not)
            assert record["metrics"]["sliced_wasserstein"] < 0.8 * record["metrics"]["prior"], record


def test_exact_posterior_sampler_floor_shrinks_with_sample_size():
    """Two independent exact sample sets get closer as n grows, about as n^(-1/2); a posterior for
    another measurement stays away, so the check can fail."""
    task = GMMPosterior()
    _, likelihood, posterior = task.problem("d8-k4-wide-s0.1")
    other = task.problem("d8-k4-wide-s0.5")[2]
    g, projections = torch.Generator().manual_seed(0), torch.Generator()

    def floor(n, target=posterior):
        return sum(float(sliced_wasserstein(posterior.sample(n, g), target.sample(n, g), 128, projections.manual_seed(i)))
                   for i in range(6)) / 6

    small, large = floor(250), floor(4000)
    assert 2.5 < small / large < 6.5  # sqrt(16) = 4
    assert floor(4000, other) > 5 * large


def test_process_pool_gives_the_same_records_as_in_process(tmp_path):
    from diffguide.executors import ProcessPool

    serial = run_benchmark(GMMPosterior(), SOLVERS, seeds=1, steps=8, out=tmp_path / "serial", reduced=True)
    pooled = run_benchmark(GMMPosterior(), SOLVERS, seeds=1, steps=8, out=tmp_path / "pool", reduced=True,
                           executor=ProcessPool(2))
    by_key = {run_key(r): r["metrics"] for r in serial}
    assert {run_key(r): r["metrics"] for r in pooled} == by_key  # same seeds, same numbers, any order


def test_cli_bench_runs_on_a_dask_scheduler_address(tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "dask"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        assert main(["bench", "gmm-posterior", "--reduced", "--solver", "dps:zeta=0.5", "--solver", "ddim", "--nfe", "8",
                     "--scheduler", cluster.scheduler_address, "--out", str(out)]) == 0
    serial = run_benchmark(GMMPosterior(), SOLVERS, seeds=1, steps=8, out=tmp_path / "serial", reduced=True)
    by_key = {(r["instance"], r["solver"].split(":")[0]): r["metrics"] for r in serial}
    remote = {(r["instance"], r["solver"].split(":")[0]): r["metrics"] for r in read_results(out)}
    assert remote == by_key  # the cluster's workers ran the same runs with the same numbers
    assert main(["bench", "gmm-posterior", "--reduced", "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)]) == 2


def test_the_weights_digest_of_a_run_key_changes_with_the_weights_not_with_their_evidence(tmp_path, monkeypatch):
    from diffguide.benchmarks import settings
    card = tmp_path / "toy" / "card.json"
    card.parent.mkdir()
    monkeypatch.setattr(settings, "WEIGHTS_DIR", tmp_path)

    def digest(**fields):
        card.write_text(json.dumps(fields))
        settings.weights_digest.cache_clear()
        return settings.weights_digest()

    try:
        first = digest(weights_sha256="aa", evidence={"mse": 1.0})
        assert digest(weights_sha256="aa", evidence={"mse": 2.0, "note": "re-measured"}) == first
        assert digest(weights_sha256="bb", evidence={"mse": 1.0}) != first
    finally:
        settings.weights_digest.cache_clear()
