"""Gaussian random fields on the periodic square [0, 2π)², the initial conditions of the flows.

The field is mean-zero Gaussian with covariance operator ``C = sigma² (-Δ + tau² I)^(-alpha)``,
whose eigenfunctions are the Fourier modes ``e^{i k·x}`` (``k`` integer, ``-Δ`` eigenvalue
``|k|²``)::

    w(x) = sum_{k != 0} sqrt(lambda_k) xi_k e^{i k·x},   lambda_k = sigma² (|k|² + tau²)^(-alpha)

with standard complex normal ``xi_k`` (``xi_{-k}`` the conjugate of ``xi_k``, so ``w`` is real).
``lambda_k`` is the variance of the Fourier coefficient of mode ``k``; the variance of
``w(x)`` is ``sum_k lambda_k``, independent of the grid once it resolves the decay. For
``|k| >> tau`` the power falls as ``|k|^(-2 alpha)``. The defaults ``alpha = 2.5``,
``tau = 7`` and ``sigma = tau^(alpha - 1)`` are those of the Navier-Stokes data of the
Fourier Neural Operator (Li et al., ICLR 2021) and of its Kolmogorov-flow data on
[0, 2π)² (Li et al., physics-informed neural operator, 2021).

Sampling colours white noise on the grid in Fourier space: ``w = N irfft2(sqrt(lambda) rfft2(z))``
for ``z`` standard normal on the ``N x N`` grid, whose ``rfft2`` has ``E|z_k|² = N²``.
"""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianRandomField:
    """Mean-zero Gaussian random field on the periodic square [0, 2π)² with covariance
    ``sigma² (-Δ + tau² I)^(-alpha)``, sampled on a ``resolution`` x ``resolution`` grid.

    Defaults ``alpha = 2.5``, ``tau = 7``, ``sigma = tau^(alpha - 1)`` (None) are those of the
    Fourier Neural Operator's Navier-Stokes data (Li et al., ICLR 2021); computed in ``dtype``
    (float64). ``sample(n, generator)`` draws (n, N, N) fields.
    """

    resolution: int
    alpha: float = 2.5
    tau: float = 7.0
    sigma: float | None = None  # None: tau^(alpha - 1), the FNO normalisation in 2D
    dtype: torch.dtype = torch.float64

    def __post_init__(self):
        if int(self.resolution) != self.resolution or self.resolution < 2:
            raise ValueError(f"resolution must be an integer >= 2, got {self.resolution}")
        if not (self.alpha > 1 and self.tau > 0):
            raise ValueError(f"need alpha > 1 (a finite point variance) and tau > 0, got alpha={self.alpha}, tau={self.tau}")

    @property
    def amplitude(self) -> float:
        """``sigma``, or its default ``tau^(alpha - 1)``."""
        return self.tau ** (self.alpha - 1) if self.sigma is None else float(self.sigma)

    def variance(self) -> torch.Tensor:
        """``lambda_k`` on the ``rfft2`` layout (N, N//2 + 1): rows ``k_y``, columns ``k_x >= 0``; 0 at k = 0."""
        n = self.resolution
        ky = torch.fft.fftfreq(n, 1 / n, dtype=self.dtype)[:, None]
        kx = torch.fft.rfftfreq(n, 1 / n, dtype=self.dtype)[None, :]
        k2 = kx**2 + ky**2
        return torch.where(k2 > 0, self.amplitude**2 * (k2 + self.tau**2) ** (-self.alpha), 0.0)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` independent fields, (n, N, N), from ``generator`` alone."""
        size = self.resolution
        white = torch.randn(n, size, size, generator=generator, dtype=self.dtype)
        return size * torch.fft.irfft2(self.variance().sqrt() * torch.fft.rfft2(white), s=(size, size))

    def point_variance(self) -> float:
        """``sum_k lambda_k`` over the grid's modes: the variance of ``w(x)`` at any point."""
        lam = self.variance()
        # rfft2 stores each conjugate pair once; the k_x = 0 and (even N) Nyquist columns are their own pairs.
        weight = torch.full_like(lam, 2.0)
        weight[:, 0] = 1.0
        if self.resolution % 2 == 0:
            weight[:, -1] = 1.0
        return float((weight * lam).sum())

