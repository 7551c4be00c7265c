"""DDRM: the paper's per-coefficient rule against an independent moment recursion, what is exact on a
Gaussian prior (data consistency, the posterior mean), the closed-form SVDs, the errors and the cost.

DDRM is not an exact posterior sampler: on a Gaussian prior it under-disperses (eta = 1 gives about
half the posterior variance on an unobserved coordinate, measured below), so its variance is tested
against the moments its own rule implies, computed here from the paper's equations, and its
mean against the exact posterior."""
import math

import pytest
import torch

from diffguide.counting import counting
from diffguide.operators.blur import Blur
from diffguide.operators.downsample import Downsample
from diffguide.operators.function import as_operator
from diffguide.operators.inpaint import Inpaint
from diffguide.operators.matrix import Matrix
from diffguide.priors.embedded import load
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.ddrm import DDRM

from problems import ZeroReward
from test_universal_guidance import gaussian_problem

#: a diagonal Gaussian prior measured on its first three coordinates with gains 1, 0.5 and 2; the
#: fourth is unobserved. In the SVD basis every coordinate is its own coefficient.
MEAN = [0.3, -0.5, 1.0, 0.2]
VARIANCE = [0.5, 1.0, 2.0, 0.7]
GAINS = [1.0, 0.5, 2.0]


def diagonal_problem(sigma_y, seed=0):
    variance = torch.tensor(VARIANCE, dtype=torch.float64)
    prior = GaussianPrior(torch.tensor(MEAN, dtype=torch.float64), torch.diag(variance))
    a = torch.zeros(len(GAINS), len(MEAN), dtype=torch.float64)
    a[range(len(GAINS)), range(len(GAINS))] = torch.tensor(GAINS, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    likelihood = GaussianLikelihood.simulate(Matrix(a), prior.sample(1, g), sigma_y, g)
    return prior, likelihood, prior.posterior(likelihood.operator, likelihood.y, sigma_y)


def measured_coordinates(likelihood):
    """``(y_bar, tau)`` per coordinate: ``y_i / s_i`` and ``sigma_y / s_i``; ``(0, inf)`` unobserved."""
    y = likelihood.y[0].tolist()
    y_bar = [yi / s for yi, s in zip(y, GAINS)] + [0.0] * (len(MEAN) - len(GAINS))
    tau = [likelihood.sigma_y / s for s in GAINS] + [math.inf] * (len(MEAN) - len(GAINS))
    return y_bar, tau


def schedule(steps):
    return karras_sigmas(steps, 1e-3, 40.0).double()


def sample(solver, prior, reward, n=4000, steps=30, seed=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    sigmas = schedule(steps).to(dtype)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=dtype)
    return solver(prior, reward, x, sigmas, generator=g)


def ddrm_moments(mu, c, y_bar, tau, sigmas, eta, eta_b):
    """Mean and variance of one coordinate after DDRM, from the paper's eqs. 7-8 on the prior
    ``N(mu, c)`` (denoiser ``mu + r (x - mu)``, ``r = c / (c + sigma^2)``): every step is
    ``x' = k x + const + noise``."""
    sigmas = sigmas.tolist()
    keep = math.sqrt(1 - eta**2)
    mean, var = (y_bar, sigmas[0] ** 2 - tau**2) if tau <= sigmas[0] else (0.0, sigmas[0] ** 2)
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:]):
        r = c / (c + sigma**2)
        offset = mu * (1 - r)  # x0 = offset + r x
        if math.isinf(tau):
            w = keep * nxt / sigma
            k, const, noise = r + w * (1 - r), offset * (1 - w), (eta * nxt) ** 2
        elif nxt < tau:
            w = keep * nxt / tau
            k, const, noise = r * (1 - w), offset * (1 - w) + w * y_bar, (eta * nxt) ** 2
        else:
            k, const, noise = (1 - eta_b) * r, (1 - eta_b) * offset + eta_b * y_bar, nxt**2 - (eta_b * tau) ** 2
        mean, var = k * mean + const, k**2 * var + noise
    return mean, var


def assert_moments(samples, expected):
    n = samples.shape[0]
    for i, (mean, var) in enumerate(expected):
        assert abs(float(samples[:, i].mean()) - mean) < 5 * math.sqrt(var / n) + 1e-9, i
        assert abs(float(samples[:, i].var()) - var) < 5 * math.sqrt(2 / n) * var + 1e-12, i


@pytest.mark.parametrize("eta, eta_b", [(0.85, 1.0), (1.0, 1.0), (0.5, 0.6)])
def test_follows_the_papers_rule_coefficient_by_coefficient(eta, eta_b):
    """The three cases (unobserved; observed below and above the measurement's noise level) and the
    initialisation, against the moments the paper's equations give on a diagonal problem."""
    prior, likelihood, _ = diagonal_problem(sigma_y=0.1)
    y_bar, tau = measured_coordinates(likelihood)
    samples = sample(DDRM(eta=eta, eta_b=eta_b), prior, likelihood)
    assert_moments(samples, [ddrm_moments(m, c, yb, t, schedule(30), eta, eta_b)
                             for m, c, yb, t in zip(MEAN, VARIANCE, y_bar, tau)])


def test_tiny_noise_fits_the_data_and_gets_the_posterior_mean():
    """sigma_y -> 0 on the diagonal problem: the observed coordinates are y / s, the unobserved one
    has the exact posterior mean, and (not a posterior sampler) too little variance."""
    prior, likelihood, posterior = diagonal_problem(sigma_y=1e-4)
    y_bar, _ = measured_coordinates(likelihood)
    for eta in (1.0, 0.85):
        samples = sample(DDRM(eta=eta), prior, likelihood)
        observed = samples[:, :len(GAINS)]  # y / s up to the schedule's last noise level, 1e-3
        assert (observed - torch.tensor(y_bar[:len(GAINS)], dtype=torch.float64)).abs().max() < 6e-3
        assert (observed.mean(0) - posterior.mean()[:len(GAINS)]).abs().max() < 1e-4
        free, exact_var = samples[:, -1], float(posterior.covs[0][-1, -1])
        assert abs(float(free.mean()) - float(posterior.mean()[-1])) < 5 * math.sqrt(exact_var / len(free))
        assert float(free.var()) < 0.9 * exact_var  # under-dispersed: measured 0.48 (eta=1), 0.73 (eta=0.85)


def test_mean_approaches_the_exact_posterior_on_a_correlated_prior():
    """A full-covariance Gaussian prior through a random wide matrix, sigma_y tiny: consistent with y,
    and the mean is close to the exact posterior mean (measured 0.07 (eta=1) and 0.10 (eta=0.85) of the
    unguided error; DDRM's mean is not exact here)."""
    prior, likelihood, posterior = gaussian_problem(sigma_y=1e-3)
    unguided = (sample(DDIM(eta=1.0), prior, None, n=2000, steps=100).mean(0) - posterior.mean()).norm()
    for solver in (DDRM(eta=1.0), DDRM(eta=0.85), DDRM()):
        samples = sample(solver, prior, likelihood, n=2000, steps=100)
        residual = (likelihood.operator(samples) - likelihood.y).norm(dim=1)
        assert float(residual.max()) < 5 * likelihood.noise_norm
        assert (samples.mean(0) - posterior.mean()).norm() < 0.2 * unguided


def image_problem(operator, sigma_y=0.05, seed=0):
    """A smooth Gaussian prior on 1x8x8 images (squared-exponential covariance) and its exact posterior."""
    ij = torch.stack(torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij"), -1).reshape(-1, 2).double()
    cov = torch.exp(-torch.cdist(ij, ij) ** 2 / 8) + 0.05 * torch.eye(64, dtype=torch.float64)
    prior = GaussianPrior(torch.zeros(1, 8, 8, dtype=torch.float64), cov)
    g = torch.Generator().manual_seed(seed)
    likelihood = GaussianLikelihood.simulate(operator, prior.sample(1, g), sigma_y, g)
    return prior, likelihood, prior.posterior(operator, likelihood.y, sigma_y)


OPERATORS = {
    "inpaint": lambda: Inpaint.random_pixels((1, 8, 8), 0.5, generator=torch.Generator().manual_seed(1)),
    "downsample": lambda: Downsample(2),
    "blur": lambda: Blur.gaussian(1.0, dtype=torch.float64),  # circular: the closed-form Fourier SVD
}


@pytest.mark.parametrize("name", OPERATORS)
def test_closed_form_svds_give_consistent_restorations(name):
    operator = OPERATORS[name]()
    assert operator.svd((1, 8, 8)) is not None
    prior, likelihood, posterior = image_problem(operator)
    unguided = (sample(DDIM(eta=1.0), prior, None, n=200).mean(0) - posterior.mean()).norm()
    samples = sample(DDRM(), prior, likelihood, n=200)
    assert torch.isfinite(samples).all()
    residual = (operator(samples) - likelihood.y).flatten(1).norm(dim=1)
    assert float(residual.mean()) < 1.5 * likelihood.noise_norm
    assert (samples.mean(0) - posterior.mean()).norm() < 0.3 * unguided


def test_float32_runs_on_float32():
    prior, likelihood, _ = image_problem(Downsample(2))
    samples = sample(DDRM(), prior, likelihood.to(torch.float32), n=8, dtype=torch.float32)
    assert samples.dtype == torch.float32 and torch.isfinite(samples).all()


def test_rejects_what_it_cannot_use():
    prior, likelihood, _ = diagonal_problem(sigma_y=0.1)
    with pytest.raises(ValueError, match="needs a GaussianLikelihood"):
        sample(DDRM(), prior, ZeroReward(), n=2, steps=3)
    nonlinear = GaussianLikelihood(as_operator(lambda x: x[:, :3] ** 2), likelihood.y, 0.1)
    with pytest.raises(ValueError, match="needs a linear operator"):
        sample(DDRM(), prior, nonlinear, n=2, steps=3)
    with pytest.raises(ValueError, match="eta"):
        DDRM(eta=1.5)
    with pytest.raises(ValueError, match="eta_b"):
        DDRM(eta_b=-0.1)


def test_rejects_an_operator_without_a_decomposition():
    """Blur with reflect padding has no closed-form SVD, and 80x80 is too big for a dense one."""
    prior = load("digits").with_shape((1, 80, 80))
    likelihood = GaussianLikelihood(Blur.gaussian(1.0, padding="reflect"), torch.zeros(1, 1, 80, 80), 0.1)
    sigmas = karras_sigmas(3, 0.01, 10.0)
    with counting() as counts, pytest.raises(ValueError, match="no singular value decomposition"):
        DDRM()(prior, likelihood, sigmas[0] * torch.randn(1, 1, 80, 80), sigmas)
    assert counts.nfe == 0  # refused before any network pass


def test_costs_one_forward_pass_per_step_and_no_backward():
    prior, likelihood, _ = diagonal_problem(sigma_y=0.1)
    with counting() as counts:
        sample(DDRM(), prior, likelihood, n=8, steps=17)
    assert counts.nfe == 17 and counts.backward_passes == 0 and counts.grad_evals == 0
