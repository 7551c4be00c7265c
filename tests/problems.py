"""Small exact problems shared by the tests: mixture priors whose posteriors are known, and a
class-conditional pair of Gaussians for guidance."""
from __future__ import annotations

import torch

from diffguide.priors.gaussian_mixture import GaussianMixturePrior
from diffguide.rewards.base import Reward
from diffguide.schedules import karras_sigmas


def solve(solver, prior, reward, n, steps, seed=0):
    """``n`` float64 samples of ``solver`` from seeded noise on a Karras schedule (2e-3 to 80) of ``steps``."""
    sigmas = karras_sigmas(steps, 2e-3, 80.0).double()
    g = torch.Generator().manual_seed(seed)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
    return solver(prior, reward, x, sigmas, generator=g)


def random_mixture(dim: int, components: int, seed: int = 0, spread: float = 3.0, scale: float = 0.3,
                   shape=None) -> GaussianMixturePrior:
    g = torch.Generator().manual_seed(seed)
    factors = torch.randn(components, dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    covs = scale * (factors @ factors.transpose(1, 2) + 0.2 * torch.eye(dim, dtype=torch.float64))
    means = spread * torch.randn(components, dim, generator=g, dtype=torch.float64)
    weights = torch.softmax(torch.randn(components, generator=g, dtype=torch.float64), 0)
    return GaussianMixturePrior(weights, means, covs, shape=shape)


class ZeroReward(Reward):
    """``r(x0) = 0`` with a gradient graph: every guided solver must reduce to its unguided sampler."""

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return 0.0 * x0.flatten(1).sum(1)


class ConditionalGaussians(torch.nn.Module):
    """A class-conditional prior with closed forms: ``conditional`` given any label, ``unconditional``
    without (``class_labels=None``)."""

    def __init__(self, conditional: GaussianMixturePrior, unconditional: GaussianMixturePrior):
        super().__init__()
        self.conditional, self.unconditional = conditional, unconditional
        self.shape, self.data_range = conditional.shape, conditional.data_range
        self.sigma_min, self.sigma_max = conditional.sigma_min, conditional.sigma_max

    def forward(self, x, sigma, class_labels=None):
        return (self.unconditional if class_labels is None else self.conditional)(x, sigma)
