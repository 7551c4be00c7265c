"""diffguide's linear operators as ``deepinv.physics.DecomposablePhysics``, for solvers that
need the singular value decomposition ``A = U diag(s) V^T`` (deepinv's DDRM).

- ``Matrix``: the dense SVD; ``V`` is square (d x d) and ``s`` is padded with zeros to d, so
  the measured coordinates are the first ``m`` of ``V^T x``; ``U`` maps them to y.
- ``Inpaint``: ``U = V = I`` and ``s`` is the 0/1 mask, repeated over the channels.
- ``Blur`` with circular padding: deepinv's ``BlurFFT`` with the same kernel (``U``, ``V`` are
  unitary real FFTs, ``s`` the kernel's frequency response).
- ``Downsample`` by ``f``: every f x f block is averaged, i.e. ``(1/f^2) 1^T`` per block,
  whose one singular value is ``1/f`` with the constant vector ``1/f`` as its right singular
  vector. ``V^T`` is the orthonormal 2-D DCT-II of every block (its first basis vector is that
  constant), laid out as (B, C, f^2, H/f, W/f); ``s`` is ``1/f`` on coefficient 0 and 0 elsewhere.

The measurement noise is diffguide's likelihood's; it is passed to deepinv's ``GaussianNoise``
because its solvers read the noise level from the physics.
"""
from __future__ import annotations

import math

import torch

from ..validation import non_negative
from .blur import Blur
from .downsample import Downsample
from .inpaint import Inpaint
from .matrix import Matrix


def _dct_matrix(n: int, dtype) -> torch.Tensor:
    """Orthonormal DCT-II, rows are basis vectors; row 0 is constant ``1 / sqrt(n)``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    basis = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2 / n)
    basis[0] = 1 / math.sqrt(n)
    return basis.to(dtype)


def _block_dct(factor: int, dtype):
    """``(V^T, V)`` for f x f blocks: (B, C, H, W) <-> (B, C, f^2, H/f, W/f)."""
    d = _dct_matrix(factor, dtype)
    basis = torch.kron(d, d)  # (f^2, f^2): rows are the 2-D DCT basis over a block, row-major pixels

    def v_adjoint(x):
        b, c, h, w = x.shape
        blocks = x.reshape(b, c, h // factor, factor, w // factor, factor).permute(0, 1, 3, 5, 2, 4)
        return torch.einsum("kp,bcpij->bckij", basis.to(x), blocks.reshape(b, c, factor**2, h // factor, w // factor))

    def v(z):
        b, c, _, hf, wf = z.shape
        blocks = torch.einsum("kp,bckij->bcpij", basis.to(z), z)
        blocks = blocks.reshape(b, c, factor, factor, hf, wf).permute(0, 1, 4, 2, 5, 3)
        return blocks.reshape(b, c, hf * factor, wf * factor)

    return v_adjoint, v


def to_deepinv_decomposable(operator, shape: tuple[int, ...], noise_sigma: float = 0.0, device=None):
    """``operator`` (for inputs of per-sample ``shape``) as a ``deepinv.physics.DecomposablePhysics``
    on the operator's device; ``device`` is where the tensors it makes itself go (default: the CPU)."""
    import deepinv

    noise = deepinv.physics.GaussianNoise(sigma=non_negative("noise_sigma", noise_sigma))
    if isinstance(operator, Matrix):
        a = operator.a
        m, d = a.shape
        u, s, vh = torch.linalg.svd(a, full_matrices=True)
        singular = torch.zeros(1, d, dtype=a.dtype, device=a.device)
        singular[0, :min(m, d)] = s
        return deepinv.physics.DecomposablePhysics(
            U=lambda z: z[:, :m] @ u.T.to(z.dtype), U_adjoint=lambda y: torch.nn.functional.pad(y @ u.to(y.dtype), (0, d - m)),
            V=lambda z: (z @ vh.to(z.dtype)).reshape(z.shape[0], *shape), V_adjoint=lambda x: x.flatten(1) @ vh.T.to(x.dtype),
            mask=singular, noise_model=noise)
    if isinstance(operator, Inpaint):
        mask = operator.mask.to(torch.float32).expand(*shape)[None]  # per channel: DDRM indexes with it
        return deepinv.physics.DecomposablePhysics(mask=mask, noise_model=noise)
    if isinstance(operator, Blur) and operator.padding == "circular":
        return deepinv.physics.BlurFFT(tuple(shape), filter=operator.kernel[None, None], noise_model=noise)
    if isinstance(operator, Downsample):
        f = operator.factor
        c, h, w = shape
        v_adjoint, v = _block_dct(f, torch.float32)
        singular = torch.zeros(1, c, f * f, h // f, w // f, device=device)
        singular[:, :, 0] = 1 / f
        return deepinv.physics.DecomposablePhysics(
            U=lambda z: z[:, :, 0], U_adjoint=lambda y: torch.nn.functional.pad(y[:, :, None], (0, 0, 0, 0, 0, f * f - 1)),
            V=v, V_adjoint=v_adjoint, mask=singular, noise_model=noise)
    raise ValueError(f"no singular value decomposition is known for {type(operator).__name__}"
                     + (f" with {operator.padding} padding" if isinstance(operator, Blur) else "")
                     + "; DDRM needs Matrix, Inpaint, circular Blur or Downsample")
