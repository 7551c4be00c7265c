"""RED-diff against the exact Gaussian posterior, on a nonlinear operator, its cost and its errors."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.function import FunctionOperator
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
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
    """The Gaussian posterior's mode is its mean (norm 1.56). Measured at 200 steps: the average of the
    runs' ``mu`` is 0.17 from it, the start (the regularised solution nearest the pseudo-inverse) 0.41;
    each run's ``mu`` keeps the noise of its stochastic steps (0.27 from the mean on average)."""
    prior, likelihood, posterior = gaussian_problem()
    operator = likelihood.operator
    start = operator.regularised_solve(likelihood.y, operator.pseudo_inverse(likelihood.y), likelihood.sigma_y**2)
    result = sample(REDDiff(), prior, likelihood, n=256, steps=200)
    error = (result.mean(0) - posterior.mean()).norm()
    assert error < 0.2
    assert error < 0.5 * (start[0] - posterior.mean()).norm()
    assert (result - posterior.mean()).norm(dim=1).mean() < 0.8 * (start[0] - posterior.mean()).norm()


def test_nonlinear_operator_fits_the_measurement():
    prior, likelihood = nonlinear_problem()
    operator = likelihood.operator
    unguided = likelihood.distance(operator(sample(DDIM(), prior, None, n=64)))
    guided = likelihood.distance(operator(sample(REDDiff(), prior, likelihood, n=64, steps=100)))
    assert guided.mean() < 3 * likelihood.noise_norm
    assert guided.mean() < 0.3 * unguided.mean()


def test_cost_one_forward_pass_per_step_run():
    """From the measurement's estimate only the noise levels at or below ``start_sigma`` run."""
    prior, likelihood, _ = gaussian_problem()
    sigmas = karras_sigmas(10, 1e-3, 40.0).double()
    low = int((sigmas[:-1] <= 1.0).sum())
    assert 0 < low < 10
    for solver, steps_run in ((REDDiff(), low), (REDDiff(start_sigma=100.0), 10)):
        with counting() as counts:
            sample(solver, prior, likelihood, n=5, sigmas=sigmas)
        assert (counts.nfe, counts.backward_passes, counts.grad_evals, counts.operator_evals) == \
            (steps_run, 0, steps_run, 5 * steps_run)
    prior, likelihood = nonlinear_problem()
    with counting() as counts:  # no classical estimate: the start is the denoiser's, the whole schedule runs
        sample(REDDiff(), prior, likelihood, n=5, steps=10)
    assert (counts.nfe, counts.backward_passes) == (11, 0)


def test_rejects_what_it_cannot_use():
    for bad in (dict(lam=-1.0), dict(lr=0.0), dict(start_sigma=0.0), dict(beta1=1.0), dict(beta2=-0.1)):
        with pytest.raises(ValueError, match="REDDiff"):
            REDDiff(**bad)
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(REDDiff(), prior, ZeroReward(), n=2, steps=3)
    likelihood.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        sample(REDDiff(), prior, likelihood, n=2, steps=3)
