"""DPS against the exact Gaussian posterior; its cost and its errors."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.identity import Identity
from diffguide.operators.base import LinearOperator
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.base import Reward
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.dps import DPS
from diffguide.types import GuidanceDivergedError


class Mask(LinearOperator):
    """Observe the first ``m`` coordinates."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return x[:, : self.m]


def gaussian_problem(dim=8, observed=4, sigma_y=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    prior = GaussianPrior(torch.zeros(dim), factor @ factor.T + 0.1 * torch.eye(dim, dtype=torch.float64))
    truth = prior.sample(1, g)
    likelihood = GaussianLikelihood.simulate(Mask(observed), truth, sigma_y, g)
    return prior, likelihood, truth, g


def run_dps(prior, likelihood, solver, n=256, steps=100, g=None):
    sigmas = karras_sigmas(steps, 1e-3, 40.0).double()
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
    return solver(prior, likelihood, x, sigmas, generator=g)


@pytest.mark.parametrize("solver", [DPS(), DPS(step_size="paper", zeta=0.5), DPS(step_size="constant", zeta=0.003)])
def test_dps_mean_error_well_below_prior(solver):
    prior, likelihood, truth, g = gaussian_problem()
    posterior = prior.posterior(likelihood.operator, likelihood.y, likelihood.sigma_y)
    samples = run_dps(prior, likelihood, solver, g=g)
    dps_error = (samples.mean(0) - posterior.mean()).norm()
    prior_error = (prior.mean() - posterior.mean()).norm()
    assert dps_error < 0.25 * prior_error


@pytest.mark.parametrize("solver,tolerance", [
    # weight sigma_y^2: the step is -(x0 - y) pulled back through the denoiser
    (DPS(step_size="constant", zeta=1e-6), 0.01),
    # the paper's normalised step has length about zeta whatever the residual, so it
    # settles within about zeta of the truth
    (DPS(step_size="paper", zeta=0.1), 0.2),
])
def test_dps_recovers_truth_under_identity_with_tiny_noise(solver, tolerance):
    g = torch.Generator().manual_seed(1)
    prior = GaussianPrior(torch.zeros(6), torch.eye(6))
    truth = prior.sample(1, g)
    likelihood = GaussianLikelihood.simulate(Identity(), truth, 1e-3, g)
    samples = run_dps(prior, likelihood, solver, n=16, g=g)
    assert (samples - truth).abs().max() < tolerance
    assert (prior.sample(16, g) - truth).abs().max() > 10 * tolerance  # the prior alone does not


def test_dps_costs_one_forward_and_one_backward_per_step():
    prior, likelihood, _, g = gaussian_problem()
    with counting() as counts:
        run_dps(prior, likelihood, DPS(), n=8, steps=30, g=g)
    assert counts.nfe == 30 and counts.grad_evals == 30 and counts.operator_evals == 30 * 8


def test_dps_rejects_what_it_cannot_use():
    prior, likelihood, _, g = gaussian_problem()

    class Score(Reward):
        def forward(self, x0):
            return -x0.pow(2).sum(1)

    with pytest.raises(ValueError, match="needs a Likelihood"):
        run_dps(prior, Score(), DPS(), n=2, steps=3)
    with pytest.raises(ValueError, match="needs a reward"):
        run_dps(prior, None, DPS(), n=2, steps=3)
    black_box = GaussianLikelihood(Mask(4), likelihood.y, 0.1)
    black_box.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        run_dps(prior, black_box, DPS(), n=2, steps=3)
    wrong_y = GaussianLikelihood(Mask(4), torch.zeros(1, 5), 0.1)
    with pytest.raises(ValueError, match="measurement y has shape"):
        run_dps(prior, wrong_y, DPS(), n=2, steps=3)


def test_dps_divergence_reports_the_step():
    prior, likelihood, _, g = gaussian_problem()
    with pytest.raises(GuidanceDivergedError, match="step"):
        run_dps(prior, likelihood, DPS(step_size="constant", zeta=1e6), n=4, steps=50, g=g)
