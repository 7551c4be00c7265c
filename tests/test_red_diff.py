"""RED-diff against the exact Gaussian posterior, on a nonlinear operator, its cost and its errors."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.function import FunctionOperator
from diffguide.operators.inpaint import Inpaint
from diffguide.priors.gaussian import GaussianPrior
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
    """The Gaussian posterior's mode is its mean (norm 1.56). The wide matrix's only classical estimate is
    its pseudo-inverse, so ``mu`` starts at the denoiser's estimate (the prior mean) and every noise level
    from sigma_y = 0.1 up runs. Measured at 200 steps: the average of the runs' ``mu`` is 0.15 from the
    mode, the regularised solution nearest zero 0.42; each run's ``mu`` keeps the noise of its stochastic
    steps (0.29 from the mode on average)."""
    prior, likelihood, posterior = gaussian_problem()
    operator = likelihood.operator
    start = operator.regularised_solve(likelihood.y, torch.zeros(1, 8, dtype=torch.float64), likelihood.sigma_y**2)
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


def inpainting_problem():
    """A Gaussian prior over 2x4 images with half the pixels measured: an operator with a classical estimate."""
    prior, _, _ = gaussian_problem()
    prior = GaussianPrior(prior.mean(), prior.covariance(), shape=(1, 2, 4))
    g = torch.Generator().manual_seed(7)
    mask = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]])
    return prior, GaussianLikelihood.simulate(Inpaint(mask), prior.sample(1, g).reshape(1, 1, 2, 4), 0.1, g)


def test_cost_one_forward_pass_per_noise_level_run():
    """From the classical estimate the noise levels from sigma_y to ``start_sigma`` run; from the denoiser's
    estimate (a wide matrix, a nonlinear operator) every level from sigma_y up, and one pass more at the start."""
    sigmas = karras_sigmas(10, 1e-3, 40.0).double()
    levels = sigmas[:-1]
    prior, likelihood = inpainting_problem()
    above_noise = levels >= likelihood.sigma_y
    low = int((above_noise & (levels <= 1.0)).sum())
    assert 0 < low < int(above_noise.sum()) < 10
    for solver, steps_run in ((REDDiff(), low), (REDDiff(start_sigma=100.0), int(above_noise.sum()))):
        with counting() as counts:
            sample(solver, prior, likelihood, n=5, sigmas=sigmas)
        assert (counts.nfe, counts.backward_passes, counts.grad_evals, counts.operator_evals) == \
            (steps_run, 0, steps_run, 5 * steps_run)
    for prior, likelihood in (gaussian_problem()[:2], nonlinear_problem()):
        with counting() as counts:
            sample(REDDiff(), prior, likelihood, n=5, sigmas=sigmas)
        assert (counts.nfe, counts.backward_passes) == (int((levels >= likelihood.sigma_y).sum()) + 1, 0)


def test_a_schedule_with_no_level_to_run_is_refused_before_any_work():
    prior, likelihood = inpainting_problem()
    with counting() as counts, pytest.raises(ValueError, match="sigma_y = 0.1 up to 0.05 .* raise start_sigma"):
        sample(REDDiff(start_sigma=0.05), prior, likelihood, n=2, steps=10)
    assert counts.nfe == 0


def test_rejects_what_it_cannot_use():
    for bad in (dict(lam=-1.0), dict(lr=0.0), dict(start_sigma=0.0), dict(lr=-1.0), dict(beta1=1.0), dict(beta2=-0.1)):
        with pytest.raises(ValueError, match="REDDiff"):
            REDDiff(**bad)
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(REDDiff(), prior, ZeroReward(), n=2, steps=3)
    likelihood.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        sample(REDDiff(), prior, likelihood, n=2, steps=3)
