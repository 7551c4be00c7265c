"""Gaussian prior ``N(mu, C)``: the one-component mixture, with a Gaussian posterior.

Denoiser ``E[x0 | x] = mu + C (C + sigma^2 I)^{-1} (x - mu)``; see ``gaussian_mixture``."""
from __future__ import annotations

import torch

from ..validation import finite_tensor
from .gaussian_mixture import GaussianMixturePrior


class GaussianPrior(GaussianMixturePrior):
    """The Gaussian prior ``N(mean, cov)``, a one-component ``GaussianMixturePrior``.

    ``mean`` has the per-sample shape (or pass ``shape``), ``cov`` is (d, d), symmetric positive
    semi-definite; ``sigma_min`` and ``sigma_max`` (keywords, defaults 1e-3 and inf: exact at every
    noise level) are the noise range it reports. Exact denoiser,
    exact samples, and ``posterior(operator, y, sigma_y)``, again a ``GaussianPrior``, for a linear
    operator.
    """

    def __init__(self, mean, cov, **kwargs):
        mean = finite_tensor("mean", mean, torch.float64)
        cov = finite_tensor("cov", cov, torch.float64)
        d = mean.numel()
        if tuple(cov.shape) != (d, d):
            raise ValueError(f"cov must be ({d}, {d}) for a mean of {d} values, got shape {tuple(cov.shape)}")
        shape = kwargs.pop("shape", tuple(mean.shape))
        super().__init__(torch.ones(1, dtype=torch.float64, device=mean.device), mean.reshape(1, -1), cov[None],
                         shape=shape, **kwargs)

    def posterior(self, operator, y, sigma_y) -> "GaussianPrior":
        post = super().posterior(operator, y, sigma_y)
        return GaussianPrior(post.means[0].reshape(self.shape), post.covs[0],
                             sigma_min=self.sigma_min, sigma_max=self.sigma_max)
