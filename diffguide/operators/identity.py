"""The identity operator: denoising, ``y = x + noise``."""
from __future__ import annotations

import torch

from .base import LinearOperator
from .svd import SingularValueDecomposition


class Identity(LinearOperator):
    """``y = x``: the operator of denoising. Its own adjoint."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def svd(self, input_shape):
        """``U = V = I``, every singular value 1."""
        def same(t):
            return t
        return SingularValueDecomposition(same, same, same, same, torch.ones(input_shape))
