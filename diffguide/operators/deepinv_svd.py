"""diffguide's linear operators as ``deepinv.physics.DecomposablePhysics``, for deepinv's solvers
that need the singular value decomposition ``A = U diag(s) V^T`` (its DDRM).

The decomposition is the operator's own (``LinearOperator.decomposition``: closed form, or dense
for small inputs); deepinv's ``mask`` is the singular values laid out as the coefficients.
The measurement noise is diffguide's likelihood's; it is passed to deepinv's ``GaussianNoise``
because its solvers read the noise level from the physics.
"""
from __future__ import annotations

import torch

from ..validation import non_negative


def to_deepinv_decomposable(operator, shape: tuple[int, ...], noise_sigma: float = 0.0, device=None):
    """``operator`` (for inputs of per-sample ``shape``) as a ``deepinv.physics.DecomposablePhysics``;
    ``device`` is where its mask goes (default: the operator's)."""
    import deepinv

    noise = deepinv.physics.GaussianNoise(sigma=non_negative("noise_sigma", noise_sigma))
    svd = operator.decomposition(tuple(shape))
    probe = operator._probe_kwargs()
    coefficients = svd.v_transpose(torch.zeros(1, *shape, **probe))
    mask = svd.s_like(coefficients).expand_as(coefficients).contiguous()
    return deepinv.physics.DecomposablePhysics(U=svd.u, U_adjoint=svd.u_transpose, V=svd.v, V_adjoint=svd.v_transpose,
                                               mask=mask if device is None else mask.to(device), noise_model=noise)
