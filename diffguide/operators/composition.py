"""Composition of operators: ``(A @ B)(x) = A(B(x))``; linear when both parts are.

A linear composition has a closed-form SVD where one is exact: with the identity on either side
(the other part's), of two inpaintings (the product of the masks) and of two circular blurs
(the product of the frequency responses)."""
from __future__ import annotations

import torch

from .base import LinearOperator, Operator
from .blur import Blur
from .fourier_svd import fourier_svd
from .identity import Identity
from .inpaint import Inpaint


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

    def description(self):
        return f"{self.outer.description()} @ {self.inner.description()}"

    def svd(self, input_shape):
        outer, inner = self.outer, self.inner
        if isinstance(outer, Identity):
            return inner.svd(input_shape)
        if isinstance(inner, Identity):
            return outer.svd(input_shape)
        if isinstance(outer, Inpaint) and isinstance(inner, Inpaint):
            return Inpaint((outer.mask & inner.mask).float()).svd(input_shape)
        if isinstance(outer, Blur) and isinstance(inner, Blur) and outer.padding == inner.padding == "circular":
            _, h, w = self.output_shape(tuple(input_shape))
            return fourier_svd(outer.frequency_response((h, w)) * inner.frequency_response((h, w)), (h, w))
        return None


def compose(outer: Operator, inner: Operator) -> Composition:
    both_linear = isinstance(outer, LinearOperator) and isinstance(inner, LinearOperator)
    return (LinearComposition if both_linear else Composition)(outer, inner)
