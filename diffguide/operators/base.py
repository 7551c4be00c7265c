"""Forward models ``A(x) -> y``: batch-first, pure, composable with ``@``.

``Operator.differentiable = False`` marks a black box: nothing may backpropagate
through it. ``LinearOperator`` adds ``adjoint(y)``; subclasses give it in closed
form where they can, otherwise the autograd fallback computes ``A^T y`` as the
gradient of ``<A x, y>``. It also gives the linear algebra restoration solvers need:
``svd(shape)`` (a closed-form ``SingularValueDecomposition`` or None), ``decomposition(shape)``
(that, or a dense SVD for small inputs), ``pseudo_inverse(y)`` and
``regularised_solve(y, x, rho) = (A^T A + rho I)^{-1} (A^T y + rho x)``, in closed form from
the SVD where there is one and by conjugate gradients on the normal equations otherwise.

Every top-level call counts ``operator_evals`` (one per sample, see
``diffguide.counting``); calls nested inside another operator (a composition) do not.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import nn

from ..counting import count
from .normal_equations import conjugate_gradient_normal
from .svd import SingularValueDecomposition, dense_svd, dense_svd_fits, per_sample

_inside_operator: contextvars.ContextVar[bool] = contextvars.ContextVar("inside_operator", default=False)


@contextlib.contextmanager
def _uncounted():
    """Evaluations inside (shape probes, adjoints, matrices) count no ``operator_evals``."""
    token = _inside_operator.set(True)
    try:
        yield
    finally:
        _inside_operator.reset(token)


class Operator(nn.Module):
    """A forward model. Subclasses implement ``forward(x)`` for a (B, *shape) batch."""

    differentiable: bool = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if _inside_operator.get():
            return super().__call__(x)
        count("operator_evals", x.shape[0])
        token = _inside_operator.set(True)
        try:
            return super().__call__(x)
        finally:
            _inside_operator.reset(token)

    def __matmul__(self, other: "Operator") -> "Operator":
        from .composition import compose

        return compose(self, other)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample measurement shape for a per-sample input shape.

        By default found by one uncounted evaluation on zeros (in the dtype and on the
        device of the operator's own tensors); operators that know their shapes override it."""
        with _uncounted(), torch.no_grad():
            return tuple(self.forward(torch.zeros(1, *input_shape, **self._probe_kwargs())).shape[1:])

    def _probe_kwargs(self) -> dict:
        """The widest floating dtype among the parameters and buffers, and their device
        (torch defaults if there are none)."""
        tensors = [t for t in (*self.parameters(), *self.buffers()) if t.is_floating_point()]
        if not tensors:
            return {}
        return {"dtype": max((t.dtype for t in tensors), key=lambda d: torch.finfo(d).bits),
                "device": tensors[0].device}


class LinearOperator(Operator):
    """A linear forward model with an adjoint."""

    def input_shape(self, output_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample input shape for a measurement shape (shape-preserving by default)."""
        return tuple(output_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y`` by autograd: the gradient of ``<A x, y>`` with respect to ``x``."""
        x = torch.zeros((y.shape[0], *self.input_shape(tuple(y.shape[1:]))), dtype=y.dtype, device=y.device)
        with _uncounted(), torch.enable_grad():
            x.requires_grad_(True)
            (adj,) = torch.autograd.grad(self.forward(x), x, y)
        return adj

    def matrix(self, input_shape: tuple[int, ...], dtype=torch.float64) -> torch.Tensor:
        """The dense (m, n) matrix of the operator on flattened inputs of ``input_shape``."""
        n = int(torch.tensor(input_shape).prod())
        basis = torch.eye(n, dtype=dtype, device=self._probe_kwargs().get("device")).reshape(n, *input_shape)
        with _uncounted():
            return self.forward(basis).reshape(n, -1).T.contiguous()

    def svd(self, input_shape: tuple[int, ...]) -> SingularValueDecomposition | None:
        """The closed-form SVD for inputs of per-sample ``input_shape``; None when none is known."""
        return None

    def has_decomposition(self, input_shape: tuple[int, ...]) -> bool:
        """Whether ``decomposition`` can give one: a closed form, or inputs small enough for a dense SVD."""
        return dense_svd_fits(tuple(input_shape)) or self.svd(tuple(input_shape)) is not None

    def decomposition(self, input_shape: tuple[int, ...]) -> SingularValueDecomposition:
        """The closed-form SVD, else a dense one from ``matrix`` for inputs of at most
        ``svd.DENSE_SVD_LIMIT`` entries; ``ValueError`` when neither is available."""
        svd = self.svd(tuple(input_shape))
        if svd is not None:
            return svd
        if dense_svd_fits(tuple(input_shape)):
            return dense_svd(self, tuple(input_shape))
        raise self.no_decomposition(input_shape)

    def no_decomposition(self, input_shape: tuple[int, ...]) -> ValueError:
        """The error of an operator without an SVD on inputs of ``input_shape``."""
        return ValueError(f"no singular value decomposition is known for {self.description()} on inputs of "
                          f"shape {tuple(input_shape)} (too large for a dense one); a closed form exists for "
                          "Identity, Inpaint, Downsample, Matrix and Blur with circular padding")

    def description(self) -> str:
        """The operator's name for messages (subclasses add what decides their linear algebra)."""
        return type(self).__name__

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``A^+ y``, the minimum-norm least-squares solution: from the SVD, else by conjugate gradients."""
        svd = self.svd(self.input_shape(tuple(y.shape[1:])))
        if svd is not None:
            return svd.pseudo_inverse(y)
        with _uncounted():
            return conjugate_gradient_normal(self, self.adjoint(y))

    def regularised_solve(self, y: torch.Tensor, x: torch.Tensor, rho) -> torch.Tensor:
        """``(A^T A + rho I)^{-1} (A^T y + rho x)``, the proximal step of a Gaussian likelihood
        (``rho > 0``: a number or a (B,) tensor): from the SVD, else by conjugate gradients."""
        svd = self.svd(tuple(x.shape[1:]))
        if svd is not None:
            return svd.regularised_solve(y, x, rho)
        with _uncounted():
            return conjugate_gradient_normal(self, self.adjoint(y) + per_sample(rho, x) * x, rho, x)
