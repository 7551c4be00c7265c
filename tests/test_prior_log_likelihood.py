"""The PF-ODE log-likelihood against closed-form Gaussian and Gaussian-mixture densities."""
import torch

from diffguide.prior_log_likelihood import bits_per_dim, prior_log_likelihood
from diffguide.priors.gaussian import GaussianPrior


def test_gaussian_exact_trace():
    mean = torch.tensor([0.5, -0.3], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    prior = GaussianPrior(mean, cov)
    x = torch.tensor([[0.2, 0.1], [1.5, -1.0], [-0.5, 0.4]], dtype=torch.float64)
    s = 1e-3
    ll = prior_log_likelihood(prior, x, sigma_min=s, sigma_max=1000.0, rtol=1e-8, atol=1e-8)
    exact = torch.distributions.MultivariateNormal(mean, cov + s**2 * torch.eye(2, dtype=torch.float64)).log_prob(x)
    assert torch.allclose(ll, exact, atol=1e-2), (ll, exact)
    g = torch.Generator().manual_seed(0)
    hutch = prior_log_likelihood(prior, x, sigma_min=s, sigma_max=1000.0, trace="hutchinson", probes=64, generator=g)
    assert ((hutch - exact).abs() / exact.abs()).max() < 0.1, (hutch, exact)
    assert bits_per_dim(ll, 2).shape == (3,)


def test_mixture_exact_trace():
    from problems import random_mixture
    prior = random_mixture(dim=2, components=3)
    g = torch.Generator().manual_seed(1)
    x = prior.sample(4, g)
    s = 1e-2
    ll = prior_log_likelihood(prior, x, sigma_min=s, sigma_max=1000.0, rtol=1e-8, atol=1e-8)
    comps = torch.distributions.MultivariateNormal(prior.means, prior.covs + s**2 * torch.eye(2, dtype=torch.float64))
    exact = torch.logsumexp(comps.log_prob(x[:, None]) + prior.weights.log(), 1)
    assert torch.allclose(ll, exact, atol=2e-2), (ll, exact)
