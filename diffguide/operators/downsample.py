"""Downsampling (super-resolution): average over non-overlapping ``factor`` x ``factor`` blocks.

``y[c, i, j] = (1 / f^2) sum_{0 <= p, q < f} x[c, f i + p, f j + q]`` maps (C, H, W) to
(C, H / f, W / f); H and W must be divisible by ``f``. The adjoint spreads each
low-resolution pixel back over its block: ``(A^T y)[c, f i + p, f j + q] = y[c, i, j] / f^2``.

Its SVD: each block's average is ``(1/f^2) 1^T``, whose one singular value is ``1/f`` with the
constant vector ``1/f`` as its right singular vector. ``V^T`` is the orthonormal 2-D DCT-II of every
block (its first basis vector is that constant), laid out as (C, f^2, H/f, W/f); ``s`` is ``1/f``
on coefficient 0 and 0 elsewhere, and ``U`` maps coefficient 0 to the low-resolution pixel.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..validation import integer
from .base import LinearOperator
from .svd import SingularValueDecomposition


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II (float64), rows are basis vectors; row 0 is the constant ``1 / sqrt(n)``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    basis = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2 / n)
    basis[0] = 1 / math.sqrt(n)
    return basis


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

    def svd(self, input_shape):
        """The block DCT as ``V`` (see the module docstring); for (C, H, W) inputs."""
        if len(input_shape) != 3:
            return None
        c, h, w = self.output_shape(tuple(input_shape))
        f = self.factor
        basis = torch.kron(dct_matrix(f), dct_matrix(f))  # rows: the 2-D DCT basis of a block, row-major pixels

        def v_transpose(x):
            blocks = x.reshape(x.shape[0], c, h, f, w, f).permute(0, 1, 3, 5, 2, 4).reshape(x.shape[0], c, f * f, h, w)
            return torch.einsum("kp,bcpij->bckij", basis.to(x), blocks)

        def v(z):
            blocks = torch.einsum("kp,bckij->bcpij", basis.to(z), z).reshape(z.shape[0], c, f, f, h, w)
            return blocks.permute(0, 1, 4, 2, 5, 3).reshape(z.shape[0], c, h * f, w * f)

        def u_transpose(y):
            return F.pad(y[:, :, None], (0, 0, 0, 0, 0, f * f - 1))

        singular = torch.zeros(c, f * f, h, w)
        singular[:, 0] = 1 / f
        return SingularValueDecomposition(v_transpose, v, u_transpose, lambda z: z[:, :, 0], singular)
