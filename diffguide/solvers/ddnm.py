"""Denoising Diffusion Null-space Models, DDNM and DDNM+ (Wang, Yu & Zhang, ICLR 2023).

Each step takes the clean estimate ``x0 = D(x_i, sigma_i)``, replaces its range-space part by the
measurement and keeps its null-space part (range-null-space decomposition, eq. 13):

    x0_hat = A^+ y + (I - A^+ A) x0 = x0 - A^+ (A x0 - y),

then steps to ``sigma' = sigma_{i+1}`` with ``x0_hat``, by one of two rules (``step``):

- ``"ddim"`` (default; the authors' released code, which notes that it departs from the paper here):
  the DDIM step with the network's own noise estimate ``eps = (x_i - x0) / sigma_i``,
  ``x_{i+1} = x0_hat + sqrt(1 - eta^2) sigma' eps + eta sigma' z``; ``eta`` is the share of fresh
  noise (the code's default 0.85). In the notation below ``a = 1``, ``sigma_up = eta sigma'``.
- ``"ddpm"`` (the paper's Algorithm 1): the DDPM posterior ``q(x_{i+1} | x_i, x0_hat)``,
  ``x_{i+1} = x0_hat + (sigma'^2 / sigma_i^2)(x_i - x0_hat) + sigma_up z`` with
  ``sigma_up = sigma' sqrt(1 - sigma'^2 / sigma_i^2)``; ``x0_hat`` enters with weight
  ``a = 1 - sigma'^2 / sigma_i^2``; ``eta`` is not used.

DDNM+ (``noise_aware=True``, Section 3.3, eqs. 17-19) for a noisy ``y = A x + sigma_y n``: in the SVD
``A = U diag(s) V^T`` the correction is scaled per singular value, ``x0_hat = x0 - V diag(lambda)
V^T A^+ (A x0 - y)``, and the fresh noise ``sigma_up z`` becomes ``V diag(sqrt(gamma)) V^T z``, so
that the measurement noise carried by ``x0_hat`` (std ``a lambda_i sigma_y / s_i`` in ``x_{i+1}``) and
the fresh noise make up the step's noise ``sigma_up``:

- ``sigma_up >= a sigma_y / s_i``: ``lambda_i = 1``, ``gamma_i = sigma_up^2 - (a sigma_y / s_i)^2``;
- otherwise: ``lambda_i = sigma_up s_i / (a sigma_y)``, ``gamma_i = 0``;
- unobserved (``s_i = 0``): no correction, ``gamma_i = sigma_up^2``.

Singular values below ``cutoff`` times the largest count as zero (null space): the authors'
deblurring operators (DDRM's code, reused by DDNM) zero those below 3e-2, the default here; without
it the correction ``1 / s_i`` amplifies the measurement noise of an ill-conditioned blur.
The SVD is the operator's ``decomposition`` (closed form, or dense for small inputs). An operator
without one gets the paper's own simplification (Section 3.3): scalar ``lambda`` and ``gamma`` from the
rule above with every singular value taken as 1 (``Sigma_t = lambda_t I``, ``Phi_t = gamma_t I``), and
``A^+`` by conjugate gradients (``operator.pseudo_inverse``). On the last step (``sigma_up = 0``)
DDNM+ applies no correction: the result is the last clean estimate. DDNM+ with ``step="ddim"``
needs ``eta > 0`` (it hides the measurement noise in the step's fresh noise).

Time travel (Section 3.4, off by default): after every ``travel_length``-th step ``L`` (except the last),
re-noise back ``L`` levels with the forward process, ``x <- x + sqrt(sigma_{i+1-L}^2 - sigma_{i+1}^2) z``,
and redo those ``L`` steps; ``travel_repeat`` ``r`` is the number of passes over each such segment
(``r = 1``: no time travel, as in the authors' code), costing ``(r - 1) L`` more denoiser calls each.

Hyper-parameters (the authors' defaults): ``step = "ddim"``, ``eta = 0.85``, ``noise_aware = True``
(DDNM+; ``False`` is plain DDNM, for noiseless measurements), ``travel_length = 1``,
``travel_repeat = 1``, ``cutoff = 0.03``.

Requires a ``GaussianLikelihood`` whose operator is a ``LinearOperator`` (any: the SVD where there
is one, conjugate gradients otherwise). Cost: one denoiser call per step (plus the time travel's),
no backward pass.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from ..validation import Number, flag, fraction, integer, one_of
from .base import Solver
from .likelihood_checks import require_linear_gaussian
from .steps import ancestral_sigmas, renoise
from .time_travel import time_travel


@dataclasses.dataclass(frozen=True, kw_only=True)
class DDNM(Solver):
    """DDNM / DDNM+ (Wang, Yu & Zhang, ICLR 2023): the clean estimate's range-space part replaced by
    the measurement's, then a DDIM or DDPM step; rule in the module docstring.

    Parameters: ``step`` (``"ddim"``, default, the authors' code; ``"ddpm"``, the paper's Algorithm 1),
    ``eta`` (default 0.85: the share of fresh noise of a ``"ddim"`` step), ``noise_aware`` (default
    True: DDNM+, the noise-aware scaling per singular value; False: plain DDNM), ``travel_length`` and
    ``travel_repeat`` (time travel: every ``L`` steps go back ``L`` levels, ``r`` passes in all;
    default 1 and 1, off) and ``cutoff`` (default 0.03: singular values below it times the largest
    count as zero). Requires a ``GaussianLikelihood`` with a linear operator. One denoiser call per
    step (and ``(r - 1) L`` per travelled segment), no backward pass.
    """

    needs = "any"
    limits = {"step": one_of("ddim", "ddpm"),
              "eta": fraction.about("the share of fresh noise of a DDIM step"),
              "travel_length": integer(1).about("steps gone back by a time travel"),
              "travel_repeat": integer(1).about("passes over each travelled segment, 1 = no time travel"),
              "cutoff": Number(0.0, 1.0, high_open=True).about("relative singular value treated as zero"),
              "noise_aware": flag}

    step: Literal["ddim", "ddpm"] = "ddim"
    eta: float = 0.85
    noise_aware: bool = True
    travel_length: int = 1
    travel_repeat: int = 1
    cutoff: float = 0.03

    def __post_init__(self):
        super().__post_init__()
        if self.noise_aware and self.step == "ddim" and self.eta == 0:
            raise ValueError("DDNM with noise_aware=True (DDNM+) hides the measurement noise in each step's fresh "
                             "noise and needs eta > 0, got eta=0; use noise_aware=False for deterministic steps")

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_linear_gaussian("DDNM", reward)

    def sample(self, run, reward, x):
        shape = tuple(x.shape[1:])  # without an SVD: A^+ by conjugate gradients, the scalar DDNM+ rule
        svd = reward.operator.decomposition(shape) if reward.operator.has_decomposition(shape) else None
        y = reward.y.to(x.dtype)
        length, n = self.travel_length, len(run.sigmas) - 1
        for i, sigma, sigma_next in run.steps():
            x, x0 = self._step(run, reward, svd, y, x, sigma, sigma_next)
            if self.travel_repeat > 1 and (i + 1) % length == 0 and i + 1 < n:
                start = i + 1 - length

                def segment(x):  # steps start .. i again
                    for j in range(start, i + 1):
                        x, x0 = self._step(run, reward, svd, y, x, run.sigmas[j], run.sigmas[j + 1])
                    return x, x0

                # the first pass was the main loop's: back L levels, then the r - 1 passes left
                x = renoise(x, run.sigmas[start], sigma_next, run.noise_like(x))
                x, x0 = time_travel(segment, x, run.sigmas[start], sigma_next, self.travel_repeat - 1, run)
            run.record(i, sigma_next, x, x0)
        return x

    def _step(self, run, reward, svd, y, x, sigma, sigma_next):
        """One DDNM(+) step from ``sigma`` to ``sigma_next``: ``(x_next, x0)``."""
        x0 = run.denoise(x, sigma)
        if self.step == "ddim":
            sigma_down, sigma_up = math.sqrt(1 - self.eta**2) * sigma_next, self.eta * sigma_next
            a = torch.ones_like(sigma)
        else:
            sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_next, 1.0)
            a = 1 - sigma_down / sigma
        noise = run.noise_like(x)
        if svd is None:
            residual = reward.operator.pseudo_inverse(reward.operator(x0) - y)
            scale, fresh = self._noise_aware_scales(torch.ones_like(a), a, sigma_up, reward.sigma_y)
            x0_hat = x0 - scale * residual
            fresh_noise = fresh.sqrt() * noise
        else:
            z0 = svd.v_transpose(x0)
            y_coefficients = svd.u_transpose(y)
            s = svd.s_like(z0)
            observed = s > self.cutoff * s.max()
            safe_s = torch.where(observed, s, 1)
            scale, fresh = self._noise_aware_scales(safe_s, a, sigma_up, reward.sigma_y)
            scale = torch.where(observed, scale, 0)
            fresh = torch.where(observed, fresh, sigma_up**2)
            x0_hat = svd.v(z0 - scale * (z0 - y_coefficients / safe_s))
            fresh_noise = svd.v(fresh.sqrt() * svd.v_transpose(noise))
        reference = x0 if self.step == "ddim" else x0_hat  # whose noise estimate the step keeps
        return x0_hat + sigma_down * (x - reference) / sigma + fresh_noise, x0

    def _noise_aware_scales(self, s, a, sigma_up, sigma_y):
        """``(lambda, gamma)`` per singular value ``s`` (eq. 19); plain DDNM: ``(1, sigma_up^2)``."""
        if not self.noise_aware:
            return torch.ones_like(s), sigma_up**2 * torch.ones_like(s)
        carried = a * sigma_y / s  # the std the measurement noise would have in x_next with lambda = 1
        enough = sigma_up >= carried
        scale = torch.where(enough, torch.ones_like(s), sigma_up / carried)
        fresh = torch.where(enough, (sigma_up**2 - carried**2).clamp(min=0), torch.zeros_like(s))
        return scale, fresh
