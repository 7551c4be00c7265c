"""Closed-form denoisers and posteriors against Monte-Carlo and importance sampling."""
import math

import pytest
import torch

from diffguide.operators.identity import Identity
from diffguide.priors.gaussian import GaussianPrior
from diffguide.priors.gaussian_mixture import GaussianMixturePrior
from diffguide.operators.matrix import Matrix

from problems import random_mixture


def monte_carlo_denoiser(prior, x, sigma, n, generator):
    """E[x0 | x] by self-normalised importance sampling with the prior as proposal."""
    x0 = prior.sample(n, generator)
    logw = -0.5 * ((x[:, None] - x0[None]) ** 2).sum(-1) / sigma**2
    w = torch.softmax(logw, dim=1)
    return w @ x0


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_mixture_denoiser_matches_monte_carlo(sigma):
    g = torch.Generator().manual_seed(1)
    prior = random_mixture(dim=2, components=3)
    x = prior.sample(8, g) + sigma * torch.randn(8, 2, generator=g, dtype=torch.float64)
    exact = prior(x, sigma)
    estimate = monte_carlo_denoiser(prior, x, sigma, 400_000, g)
    assert torch.allclose(exact, estimate, atol=0.03 * (1 + sigma))


def test_gaussian_denoiser_is_linear_shrinkage():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    mean = torch.tensor([1.0, -1.0], dtype=torch.float64)
    prior = GaussianPrior(mean, cov)
    x = torch.randn(5, 2, dtype=torch.float64)
    sigma = torch.rand(5, dtype=torch.float64) + 0.1
    expected = torch.stack([mean + cov @ torch.linalg.solve(cov + s**2 * torch.eye(2, dtype=torch.float64), xi - mean)
                            for xi, s in zip(x, sigma)])
    assert torch.allclose(prior(x, sigma), expected, atol=1e-12)


def test_exact_sampling_moments():
    g = torch.Generator().manual_seed(2)
    prior = random_mixture(dim=3, components=4)
    x = prior.sample(200_000, g)
    assert torch.allclose(x.mean(0), prior.mean(), atol=0.05)
    assert torch.allclose(torch.cov(x.T), prior.covariance(), atol=0.1)


@pytest.mark.parametrize("operator_kind", ["identity", "wide", "mask"])
def test_mixture_posterior_matches_importance_sampling(operator_kind):
    g = torch.Generator().manual_seed(3)
    dim = 3
    prior = random_mixture(dim=dim, components=3)
    if operator_kind == "identity":
        op = Identity()
    elif operator_kind == "wide":
        op = Matrix(torch.randn(2, dim, generator=g, dtype=torch.float64))
    else:
        op = Matrix(torch.eye(dim, dtype=torch.float64)[:1])
    sigma_y = 0.5
    truth = prior.sample(1, g)
    y = op(truth) + sigma_y * torch.randn(op(truth).shape, generator=g, dtype=torch.float64)
    post = prior.posterior(op, y, sigma_y)

    x0 = prior.sample(1_000_000, g)
    logw = -0.5 * ((op(x0) - y) ** 2).sum(-1) / sigma_y**2
    w = torch.softmax(logw, 0)
    is_mean = w @ x0
    is_cov = (w[:, None] * (x0 - is_mean)).T @ (x0 - is_mean)
    assert torch.allclose(post.mean(), is_mean, atol=0.03)
    assert torch.allclose(post.covariance(), is_cov, atol=0.05)
    assert math.isclose(float(post.weights.sum()), 1.0, rel_tol=1e-9)


def test_gaussian_posterior_closed_form():
    prior = GaussianPrior(torch.zeros(2), torch.eye(2))
    post = prior.posterior(Identity(), torch.tensor([2.0, -2.0]), sigma_y=1.0)
    assert isinstance(post, GaussianPrior)
    assert torch.allclose(post.mean(), torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert torch.allclose(post.covariance(), 0.5 * torch.eye(2, dtype=torch.float64))


def test_image_shaped_prior_and_bad_arguments():
    prior = random_mixture(dim=16, components=2, shape=(1, 4, 4))
    assert prior.sample(3).shape == (3, 1, 4, 4)
    assert prior(prior.sample(3), 0.5).shape == (3, 1, 4, 4)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixturePrior([0.5, 0.6], torch.zeros(2, 2), torch.stack([torch.eye(2)] * 2))
    with pytest.raises(ValueError, match="does not hold"):
        random_mixture(dim=4, components=1, shape=(3,))
