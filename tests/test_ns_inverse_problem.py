"""The Navier-Stokes inverse problem: its black-box forward model, EnKG on it with the shipped prior,
and the ``navier-stokes`` bench task."""
import json

import pytest
import torch

from diffguide.benchmarks.tasks.navier_stokes import NavierStokes, prior_mean
from diffguide.cli import main
from diffguide.counting import counting
from diffguide.executors import ProcessPool
from diffguide.metrics import relative_l2
from diffguide.priors.embedded import load
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import prior_sigmas
from diffguide.solvers.enkg import EnKG

INSTANCE = "subgrid2-T0.25"


@pytest.fixture(scope="module")
def problem():
    return NavierStokes().problem(INSTANCE, reduced=True)


def test_black_box_simulator_gives_the_differentiable_operators_values(problem):
    _, operator, _, _ = problem
    x = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    exact = operator(x)
    assert torch.allclose(operator.black_box(chunk=2)(x), exact, rtol=1e-6, atol=1e-5)
    with ProcessPool(2) as pool:
        assert torch.allclose(operator.black_box(executor=pool)(x), exact, rtol=1e-6, atol=1e-5)
    black_box = operator.black_box()
    assert not black_box.differentiable
    with pytest.raises(RuntimeError, match="cannot backpropagate"):
        black_box(x.requires_grad_(True)).sum().backward()


def test_small_enkg_run_on_navier_stokes_beats_the_prior_mean(problem):
    """32 particles, 10 steps, the simulator as a black box: the ensemble's mean is far closer to the
    true field than the prior mean is (0.73 against 0.92 when written)."""
    truth, operator, y, noise = problem
    prior = load("ns-vorticity")
    likelihood = GaussianLikelihood(operator.black_box(), y, noise)
    sigmas = prior_sigmas(prior, 10)
    g = torch.Generator().manual_seed(0)
    x = sigmas[0] * torch.randn(32, 1, 64, 64, generator=g)
    with counting() as counts:
        particles = EnKG(guidance_scale=1.0)(prior, likelihood, x, sigmas, generator=g)
    assert counts.operator_evals == 32 * 2 * 9  # 2 updates on the 9 guided steps of 10
    error, baseline = float(relative_l2(particles.mean(0, keepdim=True), truth)), float(relative_l2(prior_mean(), truth))
    assert error < baseline - 0.1, (error, baseline)


def test_prior_mean_is_a_profile_in_y_with_the_forcings_period():
    mean = prior_mean()[0, 0]
    assert torch.allclose(mean, mean[:, :1].expand_as(mean))  # constant along x
    assert torch.allclose(mean, mean.roll(16, dims=0), atol=1e-6)  # period pi/2 in y on 64 points
    profile = float(2 * (mean[:, 0] * torch.cos(4 * torch.arange(64) * 2 * torch.pi / 64)).mean())
    assert -0.45 < profile < -0.2  # the data's cos(4y) amplitude is -0.32


def test_cli_bench_navier_stokes_records_misfit_and_forward_evaluations(tmp_path):
    out = tmp_path / "ns"
    assert main(["bench", "navier-stokes", "--reduced", "--solver", "enkg", "--solver", "dps:zeta=0.3",
                 "--solver", "scg:candidates=2", "--nfe", "4", "--out", str(out)]) == 0
    records = {r["solver"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(records) == {"enkg", "dps:zeta=0.3", "scg:candidates=2"}
    assert records["enkg"]["operator_evals"] == 4 * 2 * 3  # 4 particles, 2 updates on 3 guided steps
    assert records["scg:candidates=2"]["operator_evals"] == 4 * 2 * 2  # 4 samples, 2 candidates on steps 1, 2 of 4
    assert records["dps:zeta=0.3"]["grad_evals"] > 0  # the privileged reference differentiates the solver
    for record in records.values():
        metrics = record["metrics"]
        assert 0 < metrics["rel_l2_of_mean"] <= metrics["rel_l2"] + 1e-6  # the mean is no worse than a sample on average
        assert metrics["misfit"] > 0 and 0.5 < metrics["rel_l2_prior_mean"] < 1
