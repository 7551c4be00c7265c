"""RED-diff against the exact Gaussian posterior, on a nonlinear operator, its cost and its errors."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.function import FunctionOperator
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.red_diff import REDDiff

from problems import ZeroReward
from test_universal_guidance import gaussian_problem, sample


def nonlinear_problem():
    prior, _, _ = gaussian_problem()
    g = torch.Generator().manual_seed(5)
    matrix = torch.randn(4, 8, generator=g, dtype=torch.float64) / 8**0.5
    operator = FunctionOperator(lambda x: torch.tanh(2 * x @ matrix.T.to(x.dtype)))
    return prior, GaussianLikelihood.simulate(operator, prior.sample(1, g), 0.05, g)


def test_mean_converges_near_the_exact_posterior_mode():
    """The Gaussian posterior's mode is its mean. Measured at 200 steps: the average of the runs' ``mu``
    is 0.11 from it (norm 1.56), the regularised pseudo-inverse it starts from 0.42. Each run's ``mu``
    keeps the noise of its stochastic steps (0.5 from the mean on average)."""
    prior, likelihood, posterior = gaussian_problem()
    start = likelihood.operator.regularised_solve(likelihood.y, torch.zeros_like(likelihood.y.new_zeros(1, 8)),
                                                  likelihood.sigma_y**2)
    result = sample(REDDiff(), prior, likelihood, n=256, steps=200)
    error = (result.mean(0) - posterior.mean()).norm()
    assert error < 0.2
    assert error < 0.5 * (start[0] - posterior.mean()).norm()


def test_nonlinear_operator_fits_the_measurement():
    prior, likelihood = nonlinear_problem()
    operator = likelihood.operator
    unguided = likelihood.distance(operator(sample(DDIM(), prior, None, n=64)))
    guided = likelihood.distance(operator(sample(REDDiff(), prior, likelihood, n=64, steps=100)))
    assert guided.mean() < 3 * likelihood.noise_norm
    assert guided.mean() < 0.3 * unguided.mean()


def test_cost_one_forward_pass_per_step():
    prior, likelihood, _ = gaussian_problem()
    with counting() as counts:
        sample(REDDiff(), prior, likelihood, n=5, steps=10)
    assert (counts.nfe, counts.backward_passes, counts.grad_evals, counts.operator_evals) == (10, 0, 10, 50)
    prior, likelihood = nonlinear_problem()
    with counting() as counts:  # the start is the denoiser's estimate: one more forward pass
        sample(REDDiff(), prior, likelihood, n=5, steps=10)
    assert (counts.nfe, counts.backward_passes) == (11, 0)


def test_rejects_what_it_cannot_use():
    for bad in (dict(lam=-1.0), dict(lr=0.0), dict(beta1=1.0), dict(beta2=-0.1)):
        with pytest.raises(ValueError, match="REDDiff"):
            REDDiff(**bad)
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(REDDiff(), prior, ZeroReward(), n=2, steps=3)
    likelihood.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        sample(REDDiff(), prior, likelihood, n=2, steps=3)
