"""A dense linear operator ``y = A vec(x)`` for small problems (exact-posterior tests, benchmarks).

``A`` is (m, n); samples of any per-sample ``input_shape`` with n entries are flattened,
and the adjoint reshapes ``A^T y`` back to it."""
from __future__ import annotations

import math

import torch

from ..validation import finite_tensor
from .base import LinearOperator
from .svd import dense_svd


class Matrix(LinearOperator):
    """A dense (m, n) matrix ``a`` applied to flattened samples: ``y = a vec(x)``, (m,) per sample.

    ``input_shape`` (default ``(n,)``) is the per-sample shape the adjoint returns. For small
    problems: exact-posterior tests and the ``gmm-posterior`` benchmark.
    """

    def __init__(self, a: torch.Tensor, input_shape: tuple[int, ...] | None = None):
        super().__init__()
        a = finite_tensor("Matrix a", a)
        if a.ndim != 2 or a.numel() == 0:
            raise ValueError(f"Matrix needs a 2-D (m, n) matrix with m, n >= 1, got shape {tuple(a.shape)}")
        self.register_buffer("a", a)
        self.in_shape = tuple(input_shape) if input_shape is not None else (a.shape[1],)
        if math.prod(self.in_shape) != a.shape[1]:
            raise ValueError(f"input shape {self.in_shape} does not hold the matrix's {a.shape[1]} columns")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.a.to(x.dtype).T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.a.to(y.dtype)).reshape(y.shape[0], *self.in_shape)

    def output_shape(self, input_shape):
        if math.prod(input_shape) != self.a.shape[1]:
            raise ValueError(f"Matrix with {self.a.shape[1]} columns cannot take samples of shape {tuple(input_shape)}")
        return (self.a.shape[0],)

    def input_shape(self, output_shape):
        return self.in_shape

    def svd(self, input_shape):
        """The dense SVD of ``a`` (``V`` square, ``s`` padded with zeros to the input's size)."""
        return dense_svd(self, tuple(input_shape))
