"""The guidance objective of a likelihood, normalised so that one step size serves every problem.

A Gaussian likelihood's log-density ``-||y - A(x0)||^2 / (2 sigma_y^2)`` has gradients that grow
as ``1 / sigma_y^2`` and with the residual, so a step size tuned on one operator and noise level
diverges on another. DPS (Chung et al., ICLR 2023) normalises by the residual norm: its step
``zeta' / ||y - A(x0)||`` on the squared residual is a step ``2 zeta'`` along
``grad ||y - A(x0)||``, whatever ``sigma_y``. That still depends on the image size (a step of
fixed norm moves each of ``n`` pixels by about ``1 / sqrt(n)``) and on the number of steps ``N``
(the guidance adds up over the steps). The normalised objective removes both:

    r_norm(x0) = -(sqrt(n) / N) ||y - A(x0)||,

with ``n`` the number of values in one sample. A step size ``zeta`` on it is DPS's
``zeta' = zeta sqrt(n) / N`` (``DPS(step_size="paper")``). Rewards that are not likelihoods
are used as they are: their scale is the user's.

A normalised step has a fixed length, so near the end of sampling, where the residual is down
to the noise, it would overshoot. ``limited_step`` caps it per sample so that the linear
prediction of the objective's increase, ``step ||grad||^2``, never exceeds the gap between the
objective and its value at the noise level (``-(sqrt(n) / N) sigma_y sqrt(m)`` for a Gaussian
likelihood with ``m`` measurements, 0 otherwise): a step never aims past the data. TDS caps its
proposal the same way on the raw log-density (``log_density_noise_level``).
"""
from __future__ import annotations

import math

import torch

from ..rewards.likelihood import GaussianLikelihood, Likelihood
from ..types import per_sample


class NormalisedLikelihood:
    """``r_norm(x0) = -scale ||y - A(x0)||`` with ``scale = sqrt(n) / N``; ``floor`` is its value
    at a residual of the noise level."""

    def __init__(self, likelihood: Likelihood, scale: float):
        self.likelihood, self.scale = likelihood, scale
        self.floor = -scale * likelihood.noise_norm if isinstance(likelihood, GaussianLikelihood) else 0.0

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        return -self.scale * self.likelihood.distance(self.likelihood.operator(x0))


def guidance_objective(reward, run, normalize: bool = True, per_step: bool = True):
    """``r_norm`` above for a ``Likelihood`` when ``normalize``; otherwise ``reward`` itself.

    ``per_step=False`` leaves out the ``1 / N``: for guidance that shifts the clean estimate a
    DDIM step moves towards (universal guidance's forward guidance), whose total effect does not
    add up over the steps."""
    if not normalize or not isinstance(reward, Likelihood):
        return reward
    steps = len(run.sigmas) - 1 if per_step else 1
    return NormalisedLikelihood(reward, math.sqrt(math.prod(run.denoiser.shape)) / steps)


def noise_level_value(objective) -> float | None:
    """The value a guidance objective takes at a residual of the noise level: ``floor`` of a
    ``NormalisedLikelihood``; ``None`` for anything else (the raw rewards of the papers' step
    rules, which are not capped)."""
    return objective.floor if isinstance(objective, NormalisedLikelihood) else None


def log_density_noise_level(likelihood) -> float | None:
    """``-m / 2``, a Gaussian likelihood's log-density at a residual of the noise level (``m``
    measurements); ``None`` for other rewards."""
    return -0.5 * likelihood.y[0].numel() if isinstance(likelihood, GaussianLikelihood) else None


def limited_step(step, floor: float | None, values: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per-sample step sizes, shaped to broadcast against ``grad``: ``step``, capped at
    ``(floor - values)_+ / ||grad||^2`` when a ``floor`` (the objective's value at the noise level)
    is given, so that the linear prediction of the objective's increase stops at the noise level."""
    step = torch.as_tensor(step, dtype=grad.dtype, device=grad.device).expand(grad.shape[0])
    if floor is not None:
        gap = (floor - values.detach().to(grad.dtype)).clamp(min=0)
        step = torch.minimum(step, gap / grad.flatten(1).pow(2).sum(1).clamp(min=torch.finfo(grad.dtype).tiny))
    return per_sample(step, grad)
