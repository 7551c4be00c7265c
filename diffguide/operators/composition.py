"""Composition of operators: ``(A @ B)(x) = A(B(x))``; linear when both parts are."""
from __future__ import annotations

import torch

from .base import LinearOperator, Operator


class Composition(Operator):
    """``outer @ inner``: ``x -> outer(inner(x))``, differentiable when both parts are. Built by
    ``compose`` or the ``@`` operator; counts one evaluation per sample, not one per part.
    """

    def __init__(self, outer: Operator, inner: Operator):
        super().__init__()
        self.outer, self.inner = outer, inner
        self.differentiable = outer.differentiable and inner.differentiable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.inner(x))

    def output_shape(self, input_shape):
        return self.outer.output_shape(self.inner.output_shape(input_shape))


class LinearComposition(Composition, LinearOperator):
    """The composition of two linear operators, with adjoint ``inner.adjoint(outer.adjoint(y))``."""

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))

    def input_shape(self, output_shape):
        return self.inner.input_shape(self.outer.input_shape(output_shape))


def compose(outer: Operator, inner: Operator) -> Composition:
    both_linear = isinstance(outer, LinearOperator) and isinstance(inner, LinearOperator)
    return (LinearComposition if both_linear else Composition)(outer, inner)
