"""DiffPIR, denoising diffusion models for plug-and-play image restoration (Zhu, Zhang, Liang, Cao,
Wen, Timofte & Van Gool, CVPR Workshops 2023).

Half-quadratic splitting with the diffusion denoiser as the prior step. Each step from ``sigma_t``
to ``sigma_{t-1}`` (VE form ``x = x0 + sigma eps``; the paper's ``sigma_bar_t = sqrt(1 - abar_t) /
sqrt(abar_t)`` is exactly this ``sigma_t``):

1. prior step: ``x0 = D(x_t, sigma_t)`` (clipped to the data range);
2. data step, the proximal point of the likelihood:
   ``x0_hat = argmin_x ||y - A x||^2 / (2 sigma_y^2) + (rho_t / 2) ||x - x0||^2`` with
   ``rho_t = lambda / sigma_t^2``, i.e. ``argmin ||y - A x||^2 + mu_t ||x - x0||^2`` with
   ``mu_t = sigma_y^2 rho_t = lambda sigma_y^2 / sigma_t^2``, the paper's ``rho_t``. Its minimiser is
   ``x0_hat = (A^T A + mu_t I)^{-1} (A^T y + mu_t x0)``, ``operator.regularised_solve(y, x0, mu_t)``
   (closed form from the operator's SVD, conjugate gradients otherwise);
3. re-noising with the effective noise ``eps_hat = (x_t - x0_hat) / sigma_t`` and fresh ``eps``:
   ``x_{t-1} = x0_hat + sigma_{t-1} (sqrt(1 - zeta) eps_hat + sqrt(zeta) eps)`` (the paper's
   VP update divided by ``sqrt(abar_{t-1})``); the last step (``sigma = 0``) returns ``x0_hat``.

``lambda = 1`` is the Bayesian weight when ``p(x0 | x_t)`` is ``N(x0, sigma_t^2 I)``: then ``x0_hat`` is
the mean of ``p(x0 | x_t, y)``. Units: here ``sigma_y`` and ``sigma_t`` are both in the data's units.
The authors' code measures ``sigma_y`` on [0, 1] images and ``sigma_t`` on the model's [-1, 1] scale, so
their ``lambda`` is 4 times the one here for [-1, 1] data: their defaults for deblurring and
super-resolution (``lambda = 1``, ``zeta = 0.1``, configs/deblur.yaml and sisr.yaml) are ``lambda = 0.25``
here (their inpainting setting: ``zeta = 1``).

Defaults: ``lambda = 0.25`` (the authors' ``lambda = 1`` in these units) and ``zeta = 1.0`` (the
authors' inpainting value: the re-noising draws fresh noise only). Chosen on the digits restore
problems (``python -m diffguide.benchmarks.defaults``): the worst gain over the classical baseline across
that grid was +3.98 dB with ``zeta = 1``, +0.60 with 0.5, +0.21 with 0.3 and -0.15 with 0.1 (random
inpainting; ``lambda = 0.25`` throughout).

Requires a ``GaussianLikelihood`` whose operator is a ``LinearOperator``; nonlinear operators are
refused (the paper's gradient-descent variant of the data step is not implemented). Cost: one
denoiser call per step, no backward pass.
"""
from __future__ import annotations

import dataclasses
import math

from ..validation import fraction, positive
from .base import Solver
from .likelihood_checks import require_linear_gaussian


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffPIR(Solver):
    """DiffPIR (Zhu et al., CVPR-W 2023): the denoiser's estimate, a closed-form proximal step on the
    Gaussian likelihood, and re-noising; rule in the module docstring.

    Parameters: ``lam`` (default 0.25, the weight of the denoiser's estimate in the data step,
    ``mu_t = lambda sigma_y^2 / sigma_t^2``) and ``zeta`` (default 1.0, the share of fresh noise in the
    re-noising). Requires a ``GaussianLikelihood`` with a ``LinearOperator``. One denoiser call per
    step, no backward pass.
    """

    needs = "any"
    limits = {"lam": positive.about("the weight of the denoiser's estimate in the data step"),
              "zeta": fraction.about("the share of fresh noise")}

    lam: float = 0.25
    zeta: float = 1.0

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_linear_gaussian("DiffPIR", reward)

    def sample(self, run, reward, x):
        operator, variance_y = reward.operator, reward.sigma_y**2
        y = reward.y.to(x.dtype)
        for i, sigma, sigma_next in run.steps():
            x0 = run.clip(run.denoise(x, sigma))
            x0_hat = operator.regularised_solve(y, x0, self.lam * variance_y / sigma**2)
            eps_hat = (x - x0_hat) / sigma
            mix = math.sqrt(1 - self.zeta) * eps_hat
            if self.zeta > 0:
                mix = mix + math.sqrt(self.zeta) * run.noise_like(x)
            x = x0_hat + sigma_next * mix
            run.record(i, sigma_next, x, x0_hat)
        return x
