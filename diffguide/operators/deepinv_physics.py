"""Any ``deepinv.physics.Physics`` as a diffguide operator.

The operator is the noise-free forward model ``A(x) = physics.A(x)``: the measurement
noise of diffguide lives in the likelihood, so deepinv's noise and sensor models are
not applied. A ``deepinv.physics.LinearPhysics`` keeps its adjoint,
``A^T y = physics.A_adjoint(y)``. Inputs are whatever the physics expects, e.g.
(B, 2, H, W) real/imaginary images for ``MRI`` and (B, 1, H, W) for ``Tomography``.
deepinv is imported only by ``from_deepinv``; the classes take the physics as given.
"""
from __future__ import annotations

import torch

from .base import LinearOperator, Operator, _uncounted


class DeepinvPhysics(Operator):
    def __init__(self, physics):
        super().__init__()
        self.physics = physics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(x)


class DeepinvLinearPhysics(DeepinvPhysics, LinearOperator):
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.physics.A_adjoint(y)

    def input_shape(self, output_shape):
        """Found by one uncounted adjoint on zeros, as ``output_shape`` is by a forward."""
        with _uncounted(), torch.no_grad():
            return tuple(self.adjoint(torch.zeros(1, *output_shape, **self._probe_kwargs())).shape[1:])


def from_deepinv(physics) -> DeepinvPhysics:
    """Wrap ``physics``: a ``DeepinvLinearPhysics`` when it is a ``LinearPhysics``."""
    import deepinv

    if not isinstance(physics, deepinv.physics.Physics):
        raise TypeError(f"from_deepinv needs a deepinv.physics.Physics, got {type(physics).__name__}")
    linear = isinstance(physics, deepinv.physics.LinearPhysics)
    return (DeepinvLinearPhysics if linear else DeepinvPhysics)(physics)
