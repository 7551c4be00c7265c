"""DAPS against the exact Gaussian posterior, on a nonlinear operator, its cost and its errors."""
import pytest
import torch

from diffguide.counting import Counters, counting
from diffguide.operators.function import FunctionOperator
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.daps import DAPS, langevin
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.run import Run

from problems import ZeroReward
from test_universal_guidance import gaussian_problem, sample


def test_mean_is_close_to_the_exact_posterior_mean():
    """Measured: 0.10 from the exact mean (norm 1.56), where unguided sampling is 1.67 away. DAPS is not
    exact (its N(x0_hat, r^2 I) stands in for p(x0 | x_t)): the covariance is not tested."""
    prior, likelihood, posterior = gaussian_problem()
    unguided = (sample(DDIM(), prior, None).mean(0) - posterior.mean()).norm()
    guided = (sample(DAPS(), prior, likelihood, n=512).mean(0) - posterior.mean()).norm()
    assert guided < 0.1 * unguided


def test_langevin_samples_the_gaussian_times_the_likelihood():
    """Many Langevin steps around a fixed centre sample ``N(c, r^2) p(y | x)``: the exact Gaussian
    posterior of the prior ``N(c, r^2 I)``."""
    prior, likelihood, _ = gaussian_problem()
    a, y, sigma_y, radius = likelihood.operator.matrix((8,)), likelihood.y[0], likelihood.sigma_y, 0.5
    center = torch.linspace(-1, 1, 8, dtype=torch.float64)
    precision = a.T @ a / sigma_y**2 + torch.eye(8, dtype=torch.float64) / radius**2
    cov = torch.linalg.inv(precision)
    mean = cov @ (a.T @ y / sigma_y**2 + center / radius**2)
    run = Run(prior, torch.tensor([1.0, 0.0]), Counters(), generator=torch.Generator().manual_seed(0))
    step = 0.2 / float(torch.linalg.eigvalsh(precision).max())
    x = langevin(run, likelihood, center.expand(4000, 8), radius, 600, step)
    assert (x.mean(0) - mean).norm() < 0.05 * mean.norm()
    assert (torch.cov(x.T) - cov).norm() < 0.15 * cov.norm()  # discretisation bias of order step


def test_nonlinear_operator_fits_the_measurement():
    prior, _, _ = gaussian_problem()
    g = torch.Generator().manual_seed(5)
    matrix = torch.randn(4, 8, generator=g, dtype=torch.float64) / 8**0.5
    operator = FunctionOperator(lambda x: torch.tanh(2 * x @ matrix.T.to(x.dtype)))
    likelihood = GaussianLikelihood.simulate(operator, prior.sample(1, g), 0.05, g)
    unguided = likelihood.distance(operator(sample(DDIM(), prior, None, n=64)))
    guided = likelihood.distance(operator(sample(DAPS(langevin_steps=20), prior, likelihood, n=64)))
    assert guided.mean() < 3 * likelihood.noise_norm
    assert guided.mean() < 0.3 * unguided.mean()


def test_cost_per_level():
    """``min(ode_steps, J - j)`` forward passes at annealing level ``j`` of ``J``, no backward pass through
    the network, one operator gradient per Langevin step; ``levels_per_step`` levels in each step but the
    last (to 0), which is one."""
    prior, likelihood, _ = gaussian_problem()
    for per_step, levels, nfe in ((1, 10, 8 * 3 + 2 + 1), (4, 9 * 4 + 1, 35 * 3 + 2 + 1)):
        with counting() as counts:
            sample(DAPS(levels_per_step=per_step, ode_steps=3, langevin_steps=7), prior, likelihood, n=5, steps=10)
        assert counts.nfe == nfe
        assert counts.backward_passes == 0
        assert counts.grad_evals == levels * 7
        assert counts.operator_evals == levels * 7 * 5


def test_one_record_per_step_of_the_schedule():
    prior, likelihood, _ = gaussian_problem()
    sigmas, records = karras_sigmas(6, 1e-3, 40.0).double(), []
    x = sigmas[0] * torch.randn(2, *prior.shape, dtype=torch.float64)
    DAPS(langevin_steps=3)(prior, likelihood, x, sigmas, generator=torch.Generator().manual_seed(0),
                           callback=records.append)
    assert [r.index for r in records] == list(range(6)) and records[-1].sigma == 0.0


def test_rejects_what_it_cannot_use():
    for bad in (dict(levels_per_step=0), dict(ode_steps=0), dict(langevin_steps=0), dict(step_size=0.0), dict(lr_min_ratio=-1.0)):
        with pytest.raises(ValueError, match="DAPS"):
            DAPS(**bad)
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(DAPS(), prior, ZeroReward(), n=2, steps=3)
    likelihood.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        sample(DAPS(), prior, likelihood, n=2, steps=3)
