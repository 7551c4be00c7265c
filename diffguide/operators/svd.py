"""The singular value decomposition view of a linear operator: ``A = U diag(s) V^T``.

The view works on batches in a *coefficient* layout that each operator chooses (for example
the image itself for inpainting, the Fourier half-plane for a circular blur):

- ``v_transpose(x)``: the coefficients of ``x`` in the orthonormal basis ``V`` (an isometry,
  ``v(v_transpose(x)) == x``);
- ``v(z)``: back to the input space;
- ``u_transpose(y)``: the measurement in the basis ``U``, laid out as coefficients (zero where
  ``s`` is zero); ``u(z)``: back to measurement space;
- ``singular_values``: ``s >= 0``, broadcastable over a batch of coefficients.

The layout may hold more slots than the input has entries; slots that ``v`` ignores are *dead*:
``v_transpose`` puts zeros there and ``s`` is zero on them. A method that draws noise in the
coefficient domain draws it as ``v_transpose(noise in input space)``, which is white on the live
slots and zero on the dead ones, so the algebra there is that of a true orthonormal basis.

``pseudo_inverse`` and ``regularised_solve`` follow in closed form. The same layout serves
deepinv's ``DecomposablePhysics`` (``deepinv_svd.to_deepinv_decomposable``).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

#: a dense SVD (from ``LinearOperator.matrix``) is the fallback up to this many input entries
DENSE_SVD_LIMIT = 4096

Transform = Callable[[torch.Tensor], torch.Tensor]


class SingularValueDecomposition:
    """``A = U diag(s) V^T`` as four batch transforms and the singular values; see the module
    docstring for the coefficient layout and the rule for noise in it."""

    def __init__(self, v_transpose: Transform, v: Transform, u_transpose: Transform, u: Transform,
                 singular_values: torch.Tensor):
        self.v_transpose, self.v, self.u_transpose, self.u = v_transpose, v, u_transpose, u
        self.singular_values = singular_values

    def s_like(self, z: torch.Tensor) -> torch.Tensor:
        """The singular values in ``z``'s dtype and device, broadcastable against it."""
        return self.singular_values.to(device=z.device, dtype=z.real.dtype)

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``A^+ y = V diag(1/s) U^T y`` on the non-zero singular values (the minimum-norm
        least-squares solution)."""
        z = self.u_transpose(y)
        s = self.s_like(z)
        return self.v(torch.where(s > 0, z / torch.where(s > 0, s, 1), 0))

    def regularised_solve(self, y: torch.Tensor, x: torch.Tensor, rho) -> torch.Tensor:
        """``(A^T A + rho I)^{-1} (A^T y + rho x)``: in coefficients ``(s U^T y + rho V^T x) / (s^2 + rho)``.

        ``rho > 0`` is a number or a per-sample tensor (B,)."""
        z_y, z_x = self.u_transpose(y), self.v_transpose(x)
        s = self.s_like(z_x)
        rho = per_sample(rho, z_x)
        return self.v((s * z_y + rho * z_x) / (s**2 + rho))


def per_sample(value, like: torch.Tensor) -> torch.Tensor:
    """A number or a (B,) tensor, shaped to broadcast over ``like``'s per-sample dimensions."""
    value = torch.as_tensor(value, dtype=like.real.dtype, device=like.device)
    return value.reshape(-1, *([1] * (like.ndim - 1))) if value.ndim else value


def dense_svd(operator, input_shape: tuple[int, ...]) -> SingularValueDecomposition:
    """The SVD of ``operator.matrix(input_shape)`` (float64): coefficients are (n,) per sample with
    ``s`` padded with zeros past ``min(m, n)``."""
    a = operator.matrix(tuple(input_shape))
    m, n = a.shape
    u, s, vh = torch.linalg.svd(a, full_matrices=True)
    k = min(m, n)
    singular = torch.zeros(n, dtype=a.dtype, device=a.device)
    singular[:k] = s[:k]
    output_shape = operator.output_shape(tuple(input_shape))

    def u_transpose(y):
        z = y.flatten(1) @ u[:, :k].to(y.dtype)
        return torch.nn.functional.pad(z, (0, n - k))

    def u_(z):
        return (z[:, :k] @ u[:, :k].T.to(z.dtype)).reshape(z.shape[0], *output_shape)

    return SingularValueDecomposition(
        v_transpose=lambda x: x.flatten(1) @ vh.T.to(x.dtype),
        v=lambda z: (z @ vh.to(z.dtype)).reshape(z.shape[0], *input_shape),
        u_transpose=u_transpose, u=u_, singular_values=singular)


def dense_svd_fits(input_shape: tuple[int, ...]) -> bool:
    return math.prod(input_shape) <= DENSE_SVD_LIMIT
