"""Pseudoinverse-guided diffusion models, PiGDM (Song, Vahdat, Mardani & Kautz, ICLR 2023).

PiGDM approximates ``p(x0 | x_t)`` by ``N(x0_hat, r_t^2 I)`` around the Tweedie estimate
``x0_hat = D(x_t, sigma_t)``. For a Gaussian likelihood ``y = A x0 + sigma_y n`` this gives
``p(y | x_t) ~ N(A x0_hat, r_t^2 A A^T + sigma_y^2 I)`` and the likelihood score, a vector-Jacobian
product through the denoiser (residual held fixed):

    g = grad_x [ (y - A x0_hat)^T (r_t^2 A A^T + sigma_y^2 I)^{-1} A x0_hat(x) ]
      = (d x0_hat / d x)^T A^T (r_t^2 A A^T + sigma_y^2 I)^{-1} (y - A x0_hat).

The paper works in VP variables ``z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` and sets
``r_t^2 = 1 - abar_t``, the posterior variance of ``x0`` when the data are ``N(mu, I)``. With
``sigma_t^2 = (1 - abar_t) / abar_t`` (the VE state ``x = z / sqrt(abar)``) that is

    r_t^2 = sigma_t^2 / (1 + sigma_t^2),

again ``Var[x0 | x]`` for data ``N(mu, I)`` and ``x = x0 + sigma_t eps``. The inverse is taken in the
operator's SVD basis ``A = U diag(s) V^T``: ``A^T (r^2 A A^T + sigma_y^2 I)^{-1} = V diag(s / (r^2 s^2 +
sigma_y^2)) U^T``; for a linear operator without a closed-form SVD it is
``(A^T A + (sigma_y^2 / r^2) I)^{-1} A^T / r^2`` (the same matrix, by the push-through identity),
solved by conjugate gradients on the normal equations.

The step: the guided score ``grad log p(x | y) = grad log p(x) + g`` has, by Tweedie's formula, the
clean estimate (``weighting="tweedie"``, the default)

    x0_y = x0_hat + scale * sigma_t^2 * g,

which is exactly ``E[x0 | x_t, y]`` when the data are ``N(mu, I)`` (then ``p(x0 | x_t)`` is the Gaussian
PiGDM assumes; in general ``sigma_t^2 d x0_hat / dx = Cov[x0 | x_t]``, so the correction is
Gaussian conditioning with the denoiser's own covariance in place of ``r_t^2 I`` on one side).
It replaces ``x0_hat`` in a DDIM step (``steps.ddim_step``: ``x_{i+1} = x0_y + sigma_down (x_i - x0_y) /
sigma_i + sigma_up z``, the noise estimate recomputed from ``x0_y``). ``weighting="paper"`` uses the
weight of the authors' released implementation (NVlabs RED-diff, ``algos/pgdm.py``): the VP
guidance term ``sqrt(abar_t) grad_z [(A^+ y - A^+ A x0_hat)^T x0_hat]`` added to the clean estimate,
which in VE form is ``x0_y = x0_hat + scale * r_t^2 * g`` (their noiseless ``A^+`` residual is
``r_t^2`` times ours); it is weaker than the Tweedie weight by ``1 / (1 + sigma_t^2)``, the same for
``sigma_t << 1``. The clean estimate is clipped to the prior's data range before the step.

Hyper-parameters: ``scale = 1`` (the derivation's weight; ``grad_term_weight`` in the authors'
code), ``eta = 1`` (DDIM noise share: 1 is DDPM-like ancestral sampling) and ``weighting``. The
defaults were checked on the digits restore problems (``python -m diffguide.benchmarks.defaults``):
they beat the classical baseline on every case (worst +0.37 dB, 4x super-resolution at 100 steps and
noise 0.2), where ``weighting="paper"`` fell 2.7 dB below it and ``scale = 0.5`` tied it; ``eta = 0``
was better there but lost 2.2 dB on box inpainting. Requires a
``GaussianLikelihood`` whose operator is a ``LinearOperator``. Cost: one denoiser forward and one
backward per step, one operator evaluation per sample and step.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from ..operators.base import LinearOperator
from ..validation import fraction, non_negative, one_of
from .base import Solver
from .likelihood_checks import require_linear_gaussian
from .steps import ddim_step


def weighted_residual(operator: LinearOperator, y: torch.Tensor, x0: torch.Tensor, r2, variance_y: float) -> torch.Tensor:
    """``A^T (r2 A A^T + variance_y I)^{-1} (y - A x0) = (A^T A + variance_y / r2)^{-1} A^T (y - A x0) / r2``,
    the operator's regularised solve from zero (in the SVD basis, or by conjugate gradients)."""
    residual = y - operator(x0)
    return operator.regularised_solve(residual, torch.zeros_like(x0), variance_y / r2) / r2


@dataclasses.dataclass(frozen=True, kw_only=True)
class PiGDM(Solver):
    """PiGDM (Song et al., ICLR 2023): DDIM on the pseudoinverse-guided clean estimate; rule in the
    module docstring.

    Parameters: ``scale`` (default 1.0, the weight of the guidance), ``eta`` (default 1.0, DDIM
    stochasticity) and ``weighting`` (``"tweedie"``, default: ``sigma_t^2 g``, exact for ``N(mu, I)``
    data; ``"paper"``: ``r_t^2 g``, the authors' code). Requires a ``GaussianLikelihood`` with a
    ``LinearOperator``. One denoiser forward and one backward per step.
    """

    needs = "any"
    limits = {"scale": non_negative.about("the weight of the guidance"), "eta": fraction,
              "weighting": one_of("tweedie", "paper")}

    scale: float = 1.0
    eta: float = 1.0
    weighting: Literal["tweedie", "paper"] = "tweedie"

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_linear_gaussian("PiGDM", reward)

    def sample(self, run, reward, x):
        operator, variance_y = reward.operator, reward.sigma_y**2
        y = reward.y.to(x.dtype)
        for i, sigma, sigma_next in run.steps():
            r2 = sigma**2 / (1 + sigma**2)

            def objective(x0):
                w = weighted_residual(operator, y, x0.detach(), r2, variance_y)
                return (w * x0).flatten(1).sum(1)

            x0, _, grad = run.denoise_with_grad(x, sigma, objective)
            weight = sigma**2 if self.weighting == "tweedie" else r2
            guided = x0 + self.scale * weight * grad
            noise = run.noise_like(x) if self.eta > 0 else None
            x = ddim_step(x, run.clip(guided), sigma, sigma_next, self.eta, noise)
            run.record(i, sigma_next, x, guided)
        return x
