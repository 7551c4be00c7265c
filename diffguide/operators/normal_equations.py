"""Conjugate gradients on the normal equations: the fallback for linear operators without an SVD.

Solves ``(A^T A + rho I) x = b`` per sample (``rho >= 0``, a number or a (B,) tensor) with the
operator's forward and adjoint only. From ``x = 0`` with ``rho = 0`` and ``b = A^T y`` the iterates
stay in the range of ``A^T``, so they approach the minimum-norm least-squares solution, the
pseudo-inverse; stopping early regularises it.
"""
from __future__ import annotations

import torch

from .svd import per_sample

#: iterations and relative residual at which the solve stops
MAX_ITERATIONS = 100
TOLERANCE = 1e-6


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def conjugate_gradient_normal(operator, b: torch.Tensor, rho=0.0, x: torch.Tensor | None = None,
                              max_iterations: int = MAX_ITERATIONS, tolerance: float = TOLERANCE) -> torch.Tensor:
    """``(A^T A + rho I)^{-1} b`` by conjugate gradients from ``x`` (default zeros), per sample."""
    rho = per_sample(rho, b)
    x = torch.zeros_like(b) if x is None else x.clone()

    def normal(v):
        return operator.adjoint(operator.forward(v)) + rho * v

    residual = b - normal(x)
    direction = residual.clone()
    squared = _dot(residual, residual)
    stop = tolerance**2 * _dot(b, b).clamp(min=torch.finfo(b.dtype).tiny)
    for _ in range(max_iterations):
        if bool((squared <= stop).all()):
            break
        product = normal(direction)
        curvature = _dot(direction, product)
        alpha = torch.where(squared > stop, squared / torch.where(curvature > 0, curvature, 1), 0)
        alpha = alpha.reshape(-1, *([1] * (b.ndim - 1)))
        x = x + alpha * direction
        residual = residual - alpha * product
        new_squared = _dot(residual, residual)
        beta = (new_squared / squared.clamp(min=torch.finfo(b.dtype).tiny)).reshape(-1, *([1] * (b.ndim - 1)))
        direction = residual + beta * direction
        squared = new_squared
    return x
