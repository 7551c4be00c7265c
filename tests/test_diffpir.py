"""DiffPIR: the data step is the closed-form proximal point (SVD and conjugate-gradient paths) and,
at the Bayesian weight, the exact posterior denoiser; the re-noising mix; limits; samples against
the exact posterior; cost; errors."""
import math

import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.matrix import Matrix
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.diffpir import DiffPIR

from problems import ZeroReward
from test_pigdm import MatrixWithoutSVD, first_steps
from test_universal_guidance import gaussian_problem, sample


def proximal_point(a, y, sigma_y, x0, mu):
    """``argmin ||y - A x||^2 / (2 sigma_y^2) + (mu / sigma_y^2) ||x - x0||^2 / 2`` by a dense solve."""
    normal = a.T @ a + mu * torch.eye(a.shape[1], dtype=a.dtype)
    return torch.linalg.solve(normal, (a.T @ y.reshape(-1, 1) + mu * x0.T)).T


@pytest.mark.parametrize("operator_class,tolerance", [(Matrix, 1e-10), (MatrixWithoutSVD, 1e-6)])
def test_data_step_is_the_closed_form_proximal_point(operator_class, tolerance):
    prior, likelihood, _ = gaussian_problem(sigma_y=0.2)
    operator = operator_class(likelihood.operator.a)
    likelihood = GaussianLikelihood(operator, likelihood.y, likelihood.sigma_y)
    sigmas = torch.tensor([5.0, 1.0, 0.2, 0.0], dtype=torch.float64)
    solver = DiffPIR(lam=3.0, zeta=0.4)
    states, records = first_steps(solver, prior, likelihood, sigmas)
    for x, sigma, record in zip(states, sigmas, records):
        x0 = prior(x, sigma.expand(len(x)))
        expected = proximal_point(operator.a, likelihood.y, likelihood.sigma_y, x0, 3.0 * 0.2**2 / sigma**2)
        assert torch.allclose(record.x0, expected, rtol=tolerance, atol=tolerance)


def test_bayesian_weight_gives_the_exact_posterior_denoiser():
    """For data N(mu, c I), p(x0 | x_t) = N(D(x_t), r^2 I) with r^2 = c sigma^2 / (c + sigma^2): the data
    step is E[x0 | x_t, y] exactly when lambda sigma_y^2 / sigma^2 = sigma_y^2 / r^2, lambda = (c + sigma^2) / c."""
    c, sigma = 2.0, 1.5
    g = torch.Generator().manual_seed(0)
    prior = GaussianPrior(torch.randn(6, generator=g, dtype=torch.float64), c * torch.eye(6, dtype=torch.float64))
    operator = Matrix(torch.randn(3, 6, generator=g, dtype=torch.float64))
    likelihood = GaussianLikelihood.simulate(operator, prior.sample(1, g), 0.3, g)
    posterior = prior.posterior(operator, likelihood.y, 0.3)
    sigmas = torch.tensor([sigma, 0.0], dtype=torch.float64)
    (x,), (record,) = first_steps(DiffPIR(lam=(c + sigma**2) / c), prior, likelihood, sigmas)
    assert torch.allclose(record.x0, posterior(x, sigmas[0].expand(len(x))), rtol=1e-10, atol=1e-10)


def test_renoising_mixes_the_effective_noise_with_fresh_noise():
    prior, likelihood, _ = gaussian_problem()
    sigmas = torch.tensor([3.0, 1.2, 0.0], dtype=torch.float64)
    zeta = 0.3
    records = []
    g = torch.Generator().manual_seed(5)
    x = sigmas[0] * torch.randn(4, prior.dim, generator=g, dtype=torch.float64)
    DiffPIR(zeta=zeta)(prior, likelihood, x, sigmas, generator=g, callback=records.append)
    replay = torch.Generator().manual_seed(5)
    torch.randn(4, prior.dim, generator=replay, dtype=torch.float64)  # the initial state
    fresh = torch.randn(4, prior.dim, generator=replay, dtype=torch.float64)
    x0_hat = records[0].x0
    expected = x0_hat + 1.2 * (math.sqrt(1 - zeta) * (x - x0_hat) / 3.0 + math.sqrt(zeta) * fresh)
    assert torch.allclose(records[0].x, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(records[-1].x, records[-1].x0)  # the last step returns the clean estimate


def test_a_huge_weight_on_the_prior_is_ddim():
    """lambda -> inf leaves the denoiser's estimate alone: zeta = 0 is deterministic DDIM."""
    prior, likelihood, _ = gaussian_problem()
    diffpir = sample(DiffPIR(lam=1e15, zeta=0.0), prior, likelihood, n=16)
    assert torch.allclose(diffpir, sample(DDIM(eta=0.0), prior, None, n=16), rtol=1e-6, atol=1e-6)


def test_a_tiny_weight_on_the_prior_fits_the_measurement():
    """lambda -> 0 makes the data step the least-squares fit: the result reproduces y exactly."""
    prior, likelihood, _ = gaussian_problem(sigma_y=0.1)
    draws = sample(DiffPIR(lam=1e-9), prior, likelihood, n=16)
    assert torch.allclose(likelihood.operator(draws), likelihood.y.expand(16, -1), atol=1e-6)


def test_mean_moves_to_the_exact_posterior():
    prior, likelihood, posterior = gaussian_problem()
    unguided = (sample(DDIM(eta=0.0), prior, None).mean(0) - posterior.mean()).norm()
    guided = (sample(DiffPIR(lam=1.0), prior, likelihood).mean(0) - posterior.mean()).norm()
    assert guided < 0.3 * unguided


def test_float32_state_stays_float32():
    prior, likelihood, posterior = gaussian_problem()
    sigmas = karras_sigmas(20, 1e-3, 40.0)
    x = sigmas[0] * torch.randn(256, prior.dim, generator=torch.Generator().manual_seed(0))
    draws = DiffPIR(lam=1.0)(prior, likelihood.to(torch.float32), x, sigmas,
                                 generator=torch.Generator().manual_seed(1))
    assert draws.dtype == torch.float32
    assert (draws.double().mean(0) - posterior.mean()).norm() < 0.3


def test_cost_is_one_forward_per_step_and_no_backward():
    prior, likelihood, _ = gaussian_problem()
    with counting() as counts:
        sample(DiffPIR(), prior, likelihood, n=8, steps=10)
    assert counts.nfe == 10
    assert counts.backward_passes == 0
    assert counts.grad_evals == 0


def test_rejects_what_it_cannot_use():
    prior, likelihood, _ = gaussian_problem()
    with pytest.raises(ValueError, match="GaussianLikelihood"):
        sample(DiffPIR(), prior, ZeroReward(), n=2, steps=2)
    nonlinear = GaussianLikelihood(lambda x: x**2, likelihood.y.new_zeros(1, prior.dim), 0.1)
    with pytest.raises(ValueError, match="linear operator"):
        sample(DiffPIR(), prior, nonlinear, n=2, steps=2)


@pytest.mark.parametrize("settings,word", [({"lam": 0.0}, "lam"), ({"zeta": 1.5}, "zeta"),
                                           ({"zeta": -0.1}, "zeta")])
def test_rejects_bad_settings(settings, word):
    with pytest.raises(ValueError, match=word):
        DiffPIR(**settings)
