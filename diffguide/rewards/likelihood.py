"""Likelihoods: the reward of an inverse problem, ``r(x0) = log p(y | A(x0))``.

``log_prob`` works in measurement space and is cheap and differentiable even when
the operator is a black box, which is all a derivative-free method needs.
"""
from __future__ import annotations

import abc
from typing import Callable

import torch

from ..operators.base import Operator
from ..operators.function import as_operator
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


class GaussianLikelihood(Likelihood):
    """``y = A(x0) + sigma_y * n`` with standard normal ``n``:
    ``log p(y | x0) = -||y - A(x0)||^2 / (2 sigma_y^2)`` (constant dropped)."""

    def __init__(self, operator: Operator, y: torch.Tensor, sigma_y: float):
        super().__init__(operator, y)
        if not sigma_y > 0:
            raise ValueError(f"sigma_y must be positive, got {sigma_y}")
        self.sigma_y = float(sigma_y)

    def log_prob(self, y_pred: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self.y - y_pred).flatten(1).pow(2).sum(dim=1) / self.sigma_y**2

    @classmethod
    def simulate(cls, operator: Operator, x: torch.Tensor, sigma_y: float, generator: torch.Generator | None = None):
        """Measure ``x`` through ``operator`` with Gaussian noise and return the likelihood."""
        with torch.no_grad():
            clean = operator(x)
            noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
        return cls(operator, clean + sigma_y * noise, sigma_y)
