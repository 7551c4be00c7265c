"""Likelihoods: the reward of an inverse problem, ``r(x0) = log p(y | A(x0))``.

``log_prob`` works in measurement space and is cheap and differentiable even when
the operator is a black box, which is all a derivative-free method needs.
"""
from __future__ import annotations

import abc
import copy
import math
import warnings
from typing import Callable

import torch

from ..noise import randn
from ..operators.base import Operator
from ..operators.function import as_operator
from ..validation import positive
from .base import Reward


class Likelihood(Reward, abc.ABC):
    """``operator`` and measurement ``y`` (batch 1, broadcast, or one per sample).

    ``operator`` is an ``Operator`` or any callable ``f(x) -> y`` on torch batches (wrapped by
    ``operators.function.as_operator``, differentiable)."""

    def __init__(self, operator: Operator | Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor):
        super().__init__()
        if not torch.isfinite(y).all():
            raise ValueError("the measurement y contains NaN or Inf; expected finite values")
        self.operator = as_operator(operator)
        self.register_buffer("y", y)

    @property
    def differentiable(self) -> bool:
        return self.operator.differentiable

    def with_operator(self, operator: Operator) -> "Likelihood":
        """This likelihood (its class, measurement and noise model) of another operator; ``self`` is unchanged."""
        other = copy.copy(self)
        other._modules, other._buffers, other._parameters = dict(self._modules), dict(self._buffers), dict(self._parameters)
        other.operator = as_operator(operator)
        return other

    @abc.abstractmethod
    def log_prob(self, y_pred: torch.Tensor) -> torch.Tensor:
        """Log-density of ``y`` given predicted measurements, (B,)."""

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.log_prob(self.operator(x0))

    def distance(self, y_pred: torch.Tensor) -> torch.Tensor:
        """Per-sample residual norm ``||y - y_pred||`` (the DPS step-size denominator)."""
        return (self.y - y_pred).flatten(1).norm(dim=1)

    def check(self, shape, dtype=torch.float32) -> None:
        try:
            out_shape = tuple(self.operator.output_shape(tuple(shape)))
        except Exception as err:  # an operator that cannot take this shape says why
            raise ValueError(f"operator {type(self.operator).__name__} cannot take samples of shape {tuple(shape)}: {err}") from err
        if out_shape != tuple(self.y.shape[1:]):
            raise ValueError(
                f"operator {type(self.operator).__name__} maps prior samples of shape {tuple(shape)} "
                f"to {out_shape}, but the measurement y has shape {tuple(self.y.shape[1:])}"
            )
        check_measurement = getattr(self.operator, "check_measurement", None)
        if check_measurement is not None:  # e.g. a deepinv physics: warns on a y made in another range
            check_measurement(self.y, tuple(shape))


class GaussianLikelihood(Likelihood):
    """``y = A(x0) + sigma_y * n`` with standard normal ``n``:
    ``log p(y | x0) = -||y - A(x0)||^2 / (2 sigma_y^2)`` (constant dropped).

    ``sigma_y=None`` takes the operator's ``noise_sigma`` (e.g. a deepinv physics' ``GaussianNoise``)."""

    def __init__(self, operator: Operator, y: torch.Tensor, sigma_y: float | None = None):
        super().__init__(operator, y)
        noise_sigma = getattr(self.operator, "noise_sigma", None)
        if sigma_y is None:
            if noise_sigma is None:
                raise ValueError(f"give sigma_y: operator {type(self.operator).__name__} has no noise_sigma")
            sigma_y = noise_sigma
        elif noise_sigma is not None and abs(sigma_y - noise_sigma) > 0.01 * noise_sigma:
            warnings.warn(f"sigma_y={sigma_y:g} differs from the operator's noise_sigma={noise_sigma:g}; using sigma_y")
        self.sigma_y = float(positive("sigma_y (the noise level)", sigma_y))

    @property
    def noise_norm(self) -> float:
        """``sigma_y sqrt(m)``, the typical norm of the noise on ``m`` measurements: the residual
        ``||y - A(x0)||`` of a good fit."""
        return self.sigma_y * math.sqrt(self.y[0].numel())

    def log_prob(self, y_pred: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self.y - y_pred).flatten(1).pow(2).sum(dim=1) / self.sigma_y**2

    @classmethod
    def simulate(cls, operator: Operator, x: torch.Tensor, sigma_y: float, generator: torch.Generator | None = None):
        """Measure ``x`` through ``operator`` with Gaussian noise and return the likelihood."""
        with torch.no_grad():
            clean = operator(x)
            noise = randn(clean.shape, generator, dtype=clean.dtype, device=clean.device)
        return cls(operator, clean + sigma_y * noise, sigma_y)
