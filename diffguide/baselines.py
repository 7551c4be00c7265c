"""The classical estimate a restoration must beat: what the measurement alone gives.

``measurement_baseline(operator, y, shape)`` returns ``(name, x)`` with ``x`` of shape
(B, *shape), or ``None`` when there is no classical estimate (a nonlinear operator that
changes the shape):

- ``"interpolation"`` for inpainting: normalised convolution, ``G * (m y) / G * m`` with a
  Gaussian ``G``, on a pyramid of halved resolutions where a missing pixel has no observed
  neighbours; observed pixels are kept;
- ``"measurement"`` when ``y`` has the image's shape (blur, denoising): ``y`` itself, after the
  inverse of an outermost pixelwise response that has one (``Saturation.inverse``);
- ``"bicubic"`` for super-resolution (a ``Downsample`` outermost): bicubic upsampling of ``y``;
- ``"pseudo-inverse"`` for any other linear operator: the minimum-norm least-squares
  solution ``A^+ y`` (``LinearOperator.pseudo_inverse``: from the SVD, or by conjugate gradients
  on the normal equations ``A^T A x = A^T y``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .operators.base import LinearOperator, Operator, _uncounted
from .operators.blur import Blur
from .operators.composition import Composition
from .operators.downsample import Downsample
from .operators.inpaint import Inpaint

def measurement_baseline(operator: Operator, y: torch.Tensor, shape: tuple[int, ...]):
    """``(name, estimate)`` of the image from ``y`` alone, or ``None`` (see the module docstring)."""
    shape = tuple(shape)
    with torch.no_grad(), _uncounted():
        if isinstance(operator, Inpaint):
            return "interpolation", normalised_interpolation(y, operator.mask)
        outer = operator.outer if isinstance(operator, Composition) else operator
        if tuple(y.shape[1:]) == shape:
            return "measurement", outer.inverse(y) if hasattr(outer, "inverse") else y.clone()
        if isinstance(outer, Downsample) and len(shape) == 3:
            return "bicubic", F.interpolate(y, size=shape[1:], mode="bicubic", align_corners=False)
        if isinstance(operator, LinearOperator):
            return "pseudo-inverse", operator.pseudo_inverse(y).reshape(y.shape[0], *shape)
    return None


def normalised_interpolation(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Missing pixels (``mask == 0``) filled by Gaussian-weighted averages of the observed ones;
    observed pixels kept."""
    weight = mask.to(y.dtype).expand_as(y[0])[None].expand_as(y)
    return torch.where(weight > 0, y, _push_pull(y * weight, weight))


def _push_pull(weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Normalised convolution ``G * (w v) / G * w`` (``G``: Gaussian, std 1 pixel); where no observed
    pixel is near, the same at half the resolution, upsampled (a push-pull pyramid)."""
    channels = weighted.shape[1]
    kernel = Blur.gaussian(1.0, size=5).kernel.to(weighted)[None, None].expand(channels, 1, 5, 5)
    numerator = F.conv2d(weighted, kernel, padding=2, groups=channels)
    density = F.conv2d(weight, kernel, padding=2, groups=channels)
    estimate = numerator / density.clamp(min=1e-12)
    known = density > 1e-3
    if bool(known.all()) or max(weighted.shape[-2:]) <= 1 or not bool((weight > 0).any()):
        return estimate
    coarse = _push_pull(F.avg_pool2d(weighted, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True))
    coarse = F.interpolate(coarse, size=weighted.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(known, estimate, coarse)
