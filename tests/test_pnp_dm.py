"""PnP-DM: its two conditionals and the whole sampler against exact Gaussian answers, a nonlinear operator
(Langevin likelihood step), its cost and its errors."""
import pytest
import torch

from diffguide.counting import Counters, counting
from diffguide.operators.function import FunctionOperator
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.pnp_dm import PnPDM, exact_decomposition, gaussian_likelihood_step, prior_step
from diffguide.solvers.run import Run

from problems import ZeroReward
from test_universal_guidance import gaussian_problem, sample


def relaxed_posterior(prior, likelihood, rho):
    """The exact ``x``-marginal of PnP-DM's target: the Gaussian posterior for noise
    ``sigma_y^2 I + rho^2 A A^T``."""
    a, y = likelihood.operator.matrix((8,)), likelihood.y[0]
    cov, mean = prior.covs[0], prior.means[0]
    gain = cov @ a.T @ torch.linalg.inv(a @ cov @ a.T + likelihood.sigma_y**2 * torch.eye(len(y), dtype=y.dtype)
                                        + rho**2 * a @ a.T)
    return mean + gain @ (y - a @ mean), cov - gain @ a @ cov


def test_likelihood_step_draws_the_exact_gaussian_conditional():
    prior, likelihood, _ = gaussian_problem()
    a, y, sigma_y, rho = likelihood.operator.matrix((8,)), likelihood.y[0], likelihood.sigma_y, 0.3
    x = torch.linspace(-1, 1, 8, dtype=torch.float64).expand(20000, 8)
    cov = torch.linalg.inv(a.T @ a / sigma_y**2 + torch.eye(8, dtype=torch.float64) / rho**2)
    mean = cov @ (a.T @ y / sigma_y**2 + x[0] / rho**2)
    run = Run(prior, torch.tensor([1.0, 0.0]), Counters(), generator=torch.Generator().manual_seed(0))
    z = gaussian_likelihood_step(run, likelihood, exact_decomposition(likelihood, (8,)), x, rho)
    assert (z.mean(0) - mean).norm() < 0.01 * mean.norm()
    assert (torch.cov(z.T) - cov).norm() < 0.03 * cov.norm()


def test_prior_step_draws_the_denoising_posterior():
    """On a fine schedule, the ancestral steps from ``z`` at level ``rho`` draw ``p(x | z)``."""
    prior, _, _ = gaussian_problem()
    rho, cov = 0.5, prior.covs[0]
    z = torch.linspace(-1, 1, 8, dtype=torch.float64)
    gain = cov @ torch.linalg.inv(cov + rho**2 * torch.eye(8, dtype=torch.float64))
    sigmas = karras_sigmas(400, 1e-4, 1.0).double()
    run = Run(prior, sigmas, Counters(), generator=torch.Generator().manual_seed(1))
    x = prior_step(run, z.expand(20000, 8), rho, 400)
    assert (x.mean(0) - gain @ z).norm() < 0.02 * (gain @ z).norm()
    assert (torch.cov(x.T) - (cov - gain @ cov)).norm() < 0.06 * (cov - gain @ cov).norm()


def test_samples_match_the_exact_relaxed_posterior():
    """Measured with 20 prior levels at 100 steps: mean 0.08 from the exact one (norm 1.56), covariance
    0.18 from it (relative; total variance 2.6 against 3.2). With the default 5 prior levels the coarse
    ancestral steps under-disperse more (0.35-0.39)."""
    prior, likelihood, _ = gaussian_problem()
    mean, cov = relaxed_posterior(prior, likelihood, 0.05)
    out = sample(PnPDM(rho_min=0.05, prior_steps=20), prior, likelihood, n=1024, steps=100)
    assert (out.mean(0) - mean).norm() < 0.2
    assert (torch.cov(out.T) - cov).norm() < 0.25 * cov.norm()


def test_nonlinear_operator_fits_the_measurement():
    """Langevin likelihood steps on ``tanh(A x)``. With ``tanh(2 A x)`` the residual stays at 7x the noise
    (measured): the prior step's draws at large ``rho`` land where the tanh saturates, and Langevin
    steps sized for a unit-Lipschitz operator barely move there."""
    prior, _, _ = gaussian_problem()
    g = torch.Generator().manual_seed(5)
    matrix = torch.randn(4, 8, generator=g, dtype=torch.float64) / 8**0.5
    operator = FunctionOperator(lambda x: torch.tanh(x @ matrix.T.to(x.dtype)))
    likelihood = GaussianLikelihood.simulate(operator, prior.sample(1, g), 0.05, g)
    unguided = likelihood.distance(operator(sample(DDIM(), prior, None, n=64)))
    guided = likelihood.distance(operator(sample(PnPDM(langevin_steps=20), prior, likelihood, n=64)))
    assert guided.mean() < 3 * likelihood.noise_norm
    assert guided.mean() < 0.3 * unguided.mean()


def test_cost():
    """At most ``prior_steps`` forward passes per iteration (the levels below ``rho_i`` and ``rho_i``
    itself), no backward pass; Langevin only for operators without an SVD."""
    prior, likelihood, _ = gaussian_problem()
    solver = PnPDM(prior_steps=3)
    sigmas = karras_sigmas(10, 1e-3, 40.0).double()
    expected = sum(min(3, int((sigmas < rho).sum())) for rho in solver.couplings(float(sigmas[0]), 10))
    with counting() as counts:
        sample(solver, prior, likelihood, n=5, sigmas=sigmas)
    assert (counts.nfe, counts.backward_passes, counts.grad_evals) == (expected, 0, 0)
    assert expected > 10


def test_couplings_anneal_geometrically_to_rho_min():
    rhos = PnPDM(rho_min=0.1, anneal=0.5).couplings(80.0, 11)
    assert rhos[0] == 80.0 and rhos[5:] == [pytest.approx(0.1)] * 6
    ratios = torch.tensor(rhos[1:6]) / torch.tensor(rhos[:5])
    assert torch.allclose(ratios, ratios[0].expand(5))


def test_rejects_what_it_cannot_use():
    for bad in (dict(rho_min=0.0), dict(anneal=0.0), dict(anneal=1.5), dict(prior_steps=0), dict(step_size=0.0)):
        with pytest.raises(ValueError, match="PnPDM"):
            PnPDM(**bad)
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(PnPDM(), prior, ZeroReward(), n=2, steps=3)
    operator = FunctionOperator(lambda x: x.sin(), differentiable=False)
    with pytest.raises(ValueError, match="not differentiable"):
        sample(PnPDM(), prior, GaussianLikelihood(operator, likelihood.y.new_zeros(1, 8), 0.1), n=2, steps=3)
