"""Gaussian-mixture prior with a closed-form denoiser, exact sampling and exact posterior.

Prior ``p(x0) = sum_k w_k N(x0; mu_k, C_k)``. With ``C_k = U_k diag(l_k) U_k^T``:

- Denoiser: ``x = x0 + sigma n`` is a mixture with covariances ``C_k + sigma^2 I``, so
  ``E[x0 | x] = sum_k r_k(x) (mu_k + C_k (C_k + sigma^2 I)^{-1} (x - mu_k))`` with
  responsibilities ``r_k ∝ w_k N(x; mu_k, C_k + sigma^2 I)``.
- Posterior for ``y = A x0 + sigma_y n`` with linear ``A``: again a mixture, component by
  component ``S_k = A C_k A^T + sigma_y^2 I``, ``K_k = C_k A^T S_k^{-1}``,
  ``mu_k' = mu_k + K_k (y - A mu_k)``, ``C_k' = C_k - K_k A C_k`` and
  ``w_k' ∝ w_k N(y; A mu_k, S_k)``.

This is the exact answer that solvers are tested and benchmarked against.
Computation is in float64; results come back in the input's dtype.

The constructor refuses what is not a mixture of Gaussians: weights that are negative or do not
sum to 1 (zero weights are kept: a posterior's can underflow), NaN/Inf anywhere, covariances that
are not symmetric or not positive semi-definite (beyond rounding, ``COV_TOLERANCE`` relative to
the largest eigenvalue), shapes that do not agree.
"""
from __future__ import annotations

import math

import torch

from ..noise import randn
from ..types import sigma_batch
from ..validation import Number, finite_tensor, integer, non_negative

#: relative asymmetry and negative eigenvalues (of the largest eigenvalue) a covariance may have from rounding
COV_TOLERANCE = 1e-5


class GaussianMixturePrior(torch.nn.Module):
    """A Gaussian mixture ``sum_k w_k N(mu_k, C_k)`` as a denoiser with a closed form (module docstring).

    ``weights`` (K,), non-negative and summing to 1, ``means`` (K, d), ``covs`` (K, d, d), symmetric
    positive semi-definite; ``shape`` is the per-sample shape (default ``(d,)``), ``sigma_min`` /
    ``sigma_max`` the reported noise range (default 1e-3 and inf: the closed form is exact at every
    noise level, so a solver refuses no schedule for starting too high).
    ``data_range`` is unbounded (assign a box to clip); ``state_scale``, the largest mean coordinate's
    magnitude plus two standard deviations of the widest direction, over the components, is what the
    divergence checks take as the data's scale instead. ``sample(n)`` draws exactly;
    ``posterior(operator, y, sigma_y)`` is the exact posterior for a linear operator (it uses
    ``operator.matrix``) and Gaussian noise. Computes in float64, returns the input's dtype. Its
    tensors are buffers, so ``prior.to(device)`` moves it (keep them float64).
    """

    def __init__(self, weights, means, covs, *, shape: tuple[int, ...] | None = None,
                 sigma_min: float = 1e-3, sigma_max: float = math.inf):
        super().__init__()
        self.register_buffer("weights", finite_tensor("mixture weights", weights, torch.float64))
        self.register_buffer("means", finite_tensor("mixture means", means, torch.float64))
        self.register_buffer("covs", finite_tensor("mixture covariances", covs, torch.float64))
        if self.means.ndim != 2 or 0 in self.means.shape:
            raise ValueError(f"mixture means must be (K, d) with K, d >= 1, got shape {tuple(self.means.shape)}")
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(f"expected weights ({k},) and covs ({k}, {d}, {d}) for means ({k}, {d}), "
                             f"got {tuple(self.weights.shape)} and {tuple(self.covs.shape)}")
        if (self.weights < 0).any() or not math.isclose(float(self.weights.sum()), 1.0, rel_tol=1e-6):
            raise ValueError(f"mixture weights must be non-negative and sum to 1, got {self.weights.tolist()} "
                             f"(sum {float(self.weights.sum()):.6g})")
        eigvals, eigvecs = _psd_eigen(self.covs)
        self.register_buffer("eigvals", eigvals)
        self.register_buffer("eigvecs", eigvecs)
        self.covs = 0.5 * (self.covs + self.covs.transpose(1, 2))
        self.shape = tuple(integer(1)("shape entries", size) for size in shape) if shape is not None else (d,)
        if math.prod(self.shape) != d:
            raise ValueError(f"shape {self.shape} does not hold {d} dimensions")
        non_negative("sigma_min", sigma_min)
        Number(sigma_min, low_open=True, allow_inf=True)("sigma_max (above sigma_min)", sigma_max)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.data_range = (-math.inf, math.inf)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def state_scale(self) -> float:
        """``max_k (max_i |mu_ki| + 2 sqrt(largest eigenvalue of C_k))`` (class docstring)."""
        return float((self.means.abs().amax(1) + 2 * self.eigvals.clamp(min=0).amax(1).sqrt()).max())

    def mean(self) -> torch.Tensor:
        """Mixture mean, shape ``self.shape``."""
        return (self.weights @ self.means).reshape(self.shape)

    def covariance(self) -> torch.Tensor:
        """Mixture covariance (d, d)."""
        m = self.weights @ self.means
        second = torch.einsum("k,kij->ij", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - m[:, None] * m[None, :]

    def forward(self, x: torch.Tensor, sigma, /, **cond) -> torch.Tensor:
        s2 = sigma_batch(sigma, x).to(torch.float64).pow(2)[:, None, None]  # (B, 1, 1)
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        z = torch.einsum("kji,bkj->bki", self.eigvecs, flat[:, None, :] - self.means[None])  # U_k^T (x - mu_k)
        var = (self.eigvals[None] + s2).clamp(min=1e-300)  # eigenvalues of C_k + sigma^2 I
        log_n = -0.5 * ((z**2 / var).sum(-1) + var.log().sum(-1) + self.dim * math.log(2 * math.pi))
        resp = torch.softmax(self.weights.log()[None] + log_n, dim=1)  # (B, K)
        shrunk = torch.einsum("kij,bkj->bki", self.eigvecs, self.eigvals[None] / var * z)
        x0 = torch.einsum("bk,bki->bi", resp, self.means[None] + shrunk)
        return x0.reshape(x.shape).to(x.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None, dtype=torch.float64) -> torch.Tensor:
        """``n`` exact samples, shape (n, *shape)."""
        draw_on = generator.device if generator is not None else self.weights.device
        comp = torch.multinomial(self.weights.to(draw_on), n, replacement=True, generator=generator).to(self.means.device)
        eps = randn((n, self.dim), generator, dtype=torch.float64, device=self.means.device)
        x = self.means[comp] + torch.einsum("nij,nj->ni", self.eigvecs[comp], self.eigvals[comp].sqrt() * eps)
        return x.reshape(n, *self.shape).to(dtype)

    def posterior(self, operator, y: torch.Tensor, sigma_y: float) -> "GaussianMixturePrior":
        """The exact posterior given one measurement ``y = operator(x0) + sigma_y n``."""
        a = operator.matrix(self.shape).to(device=self.means.device, dtype=torch.float64)  # (m, d)
        y = y.reshape(-1).to(device=self.means.device, dtype=torch.float64)
        if y.numel() != a.shape[0]:
            raise ValueError(f"operator maps to {a.shape[0]} values but y has {y.numel()}")
        ac = a @ self.covs  # (K, m, d)
        s = ac @ a.T + sigma_y**2 * torch.eye(a.shape[0], dtype=torch.float64, device=a.device)  # S_k
        resid = y[None] - self.means @ a.T  # y - A mu_k
        gain = torch.linalg.solve(s, ac).transpose(1, 2)  # K_k = C_k A^T S_k^{-1} (S_k symmetric)
        means = self.means + torch.einsum("kdm,km->kd", gain, resid)
        covs = self.covs - gain @ ac
        chol = torch.linalg.cholesky(s)
        white = torch.linalg.solve_triangular(chol, resid[:, :, None], upper=False)[:, :, 0]
        log_n = -0.5 * (white.pow(2).sum(1) + 2 * chol.diagonal(dim1=1, dim2=2).log().sum(1))
        weights = torch.softmax(self.weights.log() + log_n, dim=0)
        return GaussianMixturePrior(weights, means, covs, shape=self.shape,
                                    sigma_min=self.sigma_min, sigma_max=self.sigma_max)


def _psd_eigen(covs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (clamped at 0) and eigenvectors of symmetric positive semi-definite (K, d, d)
    covariances; ``ValueError`` for one that is not, beyond ``COV_TOLERANCE``."""
    scale = covs.abs().amax(dim=(1, 2)).clamp(min=torch.finfo(covs.dtype).tiny)
    asymmetry = (covs - covs.transpose(1, 2)).abs().amax(dim=(1, 2)) / scale
    if bool((asymmetry > COV_TOLERANCE).any()):
        k = int(asymmetry.argmax())
        raise ValueError(f"covariance {k} is not symmetric (largest |C - C^T| is {float(asymmetry[k]):.3g} of its "
                         "largest entry); expected a symmetric positive semi-definite matrix")
    # in float64: a float32 eigensolver's own error (about d * 1e-7 of the largest eigenvalue) would
    # make a PSD matrix with a small jitter look indefinite
    eigvals, eigvecs = torch.linalg.eigh(0.5 * (covs + covs.transpose(1, 2)).double())
    lowest = eigvals[:, 0] / eigvals.abs().amax(dim=1).clamp(min=torch.finfo(torch.float64).tiny)
    if bool((lowest < -COV_TOLERANCE).any()):
        k = int(lowest.argmin())
        raise ValueError(f"covariance {k} is not positive semi-definite (smallest eigenvalue "
                         f"{float(eigvals[k, 0]):.3g}); expected a symmetric positive semi-definite matrix")
    return eigvals.clamp(min=0).to(covs.dtype), eigvecs.to(covs.dtype)
