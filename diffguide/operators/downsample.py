"""Downsampling (super-resolution): average over non-overlapping ``factor`` x ``factor`` blocks.

``y[c, i, j] = (1 / f^2) sum_{0 <= p, q < f} x[c, f i + p, f j + q]`` maps (C, H, W) to
(C, H / f, W / f); H and W must be divisible by ``f``. The adjoint spreads each
low-resolution pixel back over its block: ``(A^T y)[c, f i + p, f j + q] = y[c, i, j] / f^2``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..validation import integer
from .base import LinearOperator


class Downsample(LinearOperator):
    """Average over ``factor`` x ``factor`` blocks (a positive integer): (C, H, W) -> (C, H/f, W/f),
    with H and W divisible by ``factor``. Linear, with the exact adjoint (each low-resolution
    pixel spread over its block, divided by ``f^2``).
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = int(integer(1)("Downsample factor", factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output_shape(tuple(x.shape[1:]))
        return F.avg_pool2d(x, self.factor)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / f**2

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Downsample needs images (..., H, W), got samples of shape {tuple(input_shape)}")
        *rest, h, w = input_shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"Downsample by factor {self.factor} needs an image size divisible by it, "
                             f"got {h} x {w}")
        return (*rest, h // self.factor, w // self.factor)

    def input_shape(self, output_shape):
        *rest, h, w = output_shape
        return (*rest, h * self.factor, w * self.factor)
