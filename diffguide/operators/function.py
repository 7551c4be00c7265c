"""Your own forward model as an operator: any callable ``f(x) -> y`` on (B, *shape) torch tensors.

``FunctionOperator(f)`` gives a plain function (or an object with ``__call__``) everything an
``Operator`` has: the ``operator_evals`` count, ``output_shape`` by one uncounted probe, and
composition with ``@``. ``as_operator`` is what the library applies where an operator is
expected (``Likelihood``), so ``GaussianLikelihood(f, y, sigma_y=0.1)`` works as it is.

A forward model that runs on NumPy (a simulator, an external program) is a ``BlackBox``
(``diffguide.operators.black_box``): it converts the batch, runs on an executor, retries
and times out, and refuses backpropagation.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..validation import flag
from .base import Operator


class FunctionOperator(Operator):
    """A callable ``f`` on (B, *shape) torch batches as an ``Operator``.

    ``differentiable`` (default True) says whether gradient-based solvers may backpropagate
    through ``f``: keep it True only when ``f`` is made of differentiable torch operations;
    set it False for a torch function whose gradient is useless or missing (rounding,
    thresholds), so that only derivative-free solvers take it. A NumPy simulator belongs in
    ``BlackBox`` instead. The wrapper knows no adjoint: for a linear model that solvers or
    exact posteriors should treat as linear, subclass ``LinearOperator``.
    """

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor], differentiable: bool = True):
        super().__init__()
        if not callable(f):
            raise TypeError(f"FunctionOperator needs a callable f(x) -> y, got {type(f).__name__}")
        self.f = f
        self.differentiable = flag("FunctionOperator differentiable", differentiable)

    @property
    def name(self) -> str:
        return getattr(self.f, "__name__", None) or type(self.f).__name__

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.f(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"forward model {self.name} returned {type(y).__name__}, expected a torch tensor "
                            "(B, *output_shape); wrap a NumPy simulator in diffguide.operators.BlackBox")
        return y

    def extra_repr(self) -> str:
        return f"f={self.name}, differentiable={self.differentiable}"


def as_operator(obj, differentiable: bool | None = None) -> Operator:
    """``obj`` as an ``Operator``: an ``Operator`` unchanged, a callable wrapped in
    ``FunctionOperator`` (``differentiable`` default True), anything else a ``TypeError``.

    ``differentiable`` may only be given for a callable: an ``Operator`` states its own."""
    if isinstance(obj, Operator):
        if differentiable is not None and bool(differentiable) != obj.differentiable:
            raise ValueError(f"{type(obj).__name__} is an Operator with differentiable={obj.differentiable}; "
                             f"set the attribute on the class instead of passing differentiable={differentiable}")
        return obj
    if callable(obj):
        return FunctionOperator(obj, differentiable=True if differentiable is None else differentiable)
    raise TypeError(
        f"expected a forward model, got {type(obj).__name__}, which is not callable. Give a function f(x) -> y on "
        "(B, *shape) torch tensors, or subclass diffguide.operators.Operator and implement forward(x) "
        "(diffguide.operators.LinearOperator with adjoint(y) for a linear model); for a NumPy simulator use "
        "diffguide.operators.BlackBox(fn)")
