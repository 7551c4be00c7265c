"""Any ``deepinv.physics.Physics`` as a diffguide operator, on images in the prior's range.

diffguide's priors sample in ``prior_range`` (usually [-1, 1]); deepinv's physics expect
images in ``data_range`` (usually [0, 1]). The wrapper maps one to the other first,
``x_deepinv = scale * x + offset``, so ``forward(x) = physics.A(scale * x + offset)``
predicts a measurement made the deepinv way, ``y = physics(x_deepinv)``, in deepinv's units.

For a ``LinearPhysics`` that map is affine: ``A(scale x + offset) = scale A(x) + A(offset)``.
With a zero offset the wrapper is a ``DeepinvLinearPhysics`` (adjoint ``scale * A^T``; the SVD of
a ``DecomposablePhysics`` is deepinv's own, its mask's phase moved into ``U``);
otherwise it is a ``DeepinvAffinePhysics`` that keeps both terms explicit: its ``linear``
part (a ``DeepinvLinearPhysics``) and the constant ``measurement_offset(input_shape)``.

The operator is noise-free: the likelihood adds the noise. When ``physics.noise_model`` is
a ``GaussianNoise`` its level is ``noise_sigma``, which ``GaussianLikelihood`` takes as
``sigma_y``. deepinv is imported only by ``from_deepinv``; the classes take the physics as given.
"""
from __future__ import annotations

import warnings

import torch

from ..validation import finite
from .base import LinearOperator, Operator, _uncounted
from .svd import SingularValueDecomposition

NOISE_SIGMAS_OF_SLACK = 4  # how far past the reachable range a noisy measurement may lie


def range_map(data_range: tuple[float, float] | None, prior_range: tuple[float, float]) -> tuple[float, float]:
    """``(scale, offset)`` of the affine map from ``prior_range`` onto ``data_range`` (None: the identity)."""
    low, high = prior_range if data_range is None else data_range
    prior_low, prior_high = prior_range
    for value in (low, high, prior_low, prior_high):
        finite("data_range and prior_range entries", value)
    if not (high > low and prior_high > prior_low):
        raise ValueError(f"data_range {data_range} and prior_range {prior_range} must each be (low, high), low < high")
    scale = (high - low) / (prior_high - prior_low)
    return float(scale), float(low - prior_low * scale)


class DeepinvPhysics(Operator):
    """``physics.A(scale * x + offset)``: a deepinv physics on images in ``prior_range``, mapped
    onto the physics' ``data_range`` (None: taken as they are)."""

    def __init__(self, physics, data_range: tuple[float, float] | None = None,
                 prior_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__()
        self.physics = physics
        self.scale, self.offset = range_map(data_range, prior_range)
        self.data_range = tuple(prior_range if data_range is None else data_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(self.scale * x + self.offset)

    @property
    def noise_sigma(self) -> float | None:
        """The standard deviation of the physics' ``GaussianNoise`` in measurement units; None otherwise."""
        import deepinv

        noise = self.physics.noise_model
        if not isinstance(noise, deepinv.physics.GaussianNoise) or noise.sigma.unique().numel() != 1:
            return None
        return float(noise.sigma.flatten()[0])

    def check_measurement(self, y: torch.Tensor, input_shape: tuple[int, ...]) -> None:
        """Warn when ``y`` lies far outside what the physics makes of constant images in ``data_range``.

        The reachable range is that of ``A(low)`` and ``A(high)`` (constant images), widened by
        half its width and by 4 noise sigmas; a physics that maps both to one value is not checked."""
        with _uncounted(), torch.no_grad():
            ends = torch.cat([self.physics.A(torch.full((1, *input_shape), value, **self._probe_kwargs()))
                              for value in self.data_range])
        reach_low, reach_high = ends.min().item(), ends.max().item()
        if not reach_high > reach_low:
            return
        slack = 0.5 * (reach_high - reach_low) + NOISE_SIGMAS_OF_SLACK * (self.noise_sigma or 0.0)
        if y.min().item() < reach_low - slack or y.max().item() > reach_high + slack:
            warnings.warn(f"the measurement spans [{y.min().item():.3g}, {y.max().item():.3g}], far outside the "
                          f"[{reach_low:.3g}, {reach_high:.3g}] that {type(self.physics).__name__} makes of images "
                          "in its data_range; was it made from images in another range?")


class DeepinvLinearPhysics(DeepinvPhysics, LinearOperator):
    """``scale * physics.A(x)`` for a ``LinearPhysics`` whose range map has no offset, with the
    exact adjoint ``scale * A^T y``."""

    def __init__(self, physics, data_range: tuple[float, float] | None = None,
                 prior_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__(physics, data_range, prior_range)
        if self.offset != 0:
            raise ValueError(f"mapping {prior_range} onto {data_range} has an offset; use DeepinvAffinePhysics")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.scale * self.physics.A_adjoint(y)

    def input_shape(self, output_shape):
        """Found by one uncounted adjoint on zeros, as ``output_shape`` is by a forward."""
        with _uncounted(), torch.no_grad():
            return tuple(self.adjoint(torch.zeros(1, *output_shape, **self._probe_kwargs())).shape[1:])

    def description(self):
        return f"deepinv {type(self.physics).__name__}"

    def svd(self, input_shape):
        """deepinv's decomposition for a ``DecomposablePhysics`` (``s = scale |mask|``, the mask's
        phase moved into ``U``); None for other physics."""
        import deepinv

        if not isinstance(self.physics, deepinv.physics.DecomposablePhysics):
            return None
        physics = self.physics
        mask = torch.as_tensor(physics.mask)
        magnitude = mask.abs()
        phase = torch.where(magnitude > 0, mask / torch.where(magnitude > 0, magnitude, 1), 1)
        return SingularValueDecomposition(
            v_transpose=physics.V_adjoint, v=physics.V,
            u_transpose=lambda y: phase.conj().to(y.device) * physics.U_adjoint(y),
            u=lambda z: physics.U(phase.to(z.device) * z), singular_values=self.scale * magnitude)


class DeepinvAffinePhysics(DeepinvPhysics):
    """A ``LinearPhysics`` behind a range map with an offset: ``forward(x) = linear(x) + A(offset)``.

    Not a ``LinearOperator``; closed-form linear methods take ``linear`` (``scale * A``, exact
    adjoint) and the measurement less ``measurement_offset(input_shape)``."""

    def __init__(self, physics, data_range: tuple[float, float], prior_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__(physics, data_range, prior_range)
        # the linear part maps differences of images: widths of prior_range onto widths of data_range
        self.linear = DeepinvLinearPhysics(physics, (0.0, data_range[1] - data_range[0]),
                                           (0.0, prior_range[1] - prior_range[0]))

    def measurement_offset(self, input_shape: tuple[int, ...]) -> torch.Tensor:
        """``A(offset)`` for a constant image of ``input_shape``: (1, *output_shape)."""
        with _uncounted(), torch.no_grad():
            return self.physics.A(torch.full((1, *input_shape), self.offset, **self._probe_kwargs()))


def from_deepinv(physics, data_range: tuple[float, float] | None = (0.0, 1.0),
                 prior_range: tuple[float, float] = (-1.0, 1.0)) -> DeepinvPhysics:
    """Wrap ``physics`` for images in ``prior_range``, mapped to its ``data_range`` first.

    ``data_range=None`` (or equal to ``prior_range``) wraps ``physics.A`` as is."""
    import deepinv

    if not isinstance(physics, deepinv.physics.Physics):
        raise TypeError(f"from_deepinv needs a deepinv.physics.Physics, got {type(physics).__name__}")
    if not isinstance(physics, deepinv.physics.LinearPhysics):
        return DeepinvPhysics(physics, data_range, prior_range)
    _, offset = range_map(data_range, prior_range)
    return (DeepinvLinearPhysics if offset == 0 else DeepinvAffinePhysics)(physics, data_range, prior_range)
