"""Non-differentiable shape rewards for digit images (the ``digits`` prior: (1, 16, 16) in [-1, 1], ink high).

A pixel is ink where its value (the mean over channels) exceeds ``threshold`` (0: the middle of
the data range). Both rewards count pixels after thresholding, so their gradient is zero almost
everywhere: ``differentiable = False``, for derivative-free solvers (SCG, best-of-N) only.

- ``ComponentCountReward(target)``: ``-|c - target|`` with ``c`` the number of connected ink
  components (``scipy.ndimage.label``; 8-connectivity by default, 4 on request). A sample with no
  ink has ``c = 0``.
- ``InkFractionReward(target, region)``: ``-|f - target|`` with ``f`` the fraction of ink pixels in
  ``region = (row_start, row_stop, col_start, col_stop)`` (Python slice bounds; the whole image by
  default). With ``softness = w > 0`` each pixel counts ``sigmoid((v - threshold) / w)`` instead of
  0 or 1: a smooth surrogate of the same count, differentiable, for gradient-based solvers.

Both return (B,) in the input's dtype and on its device; higher is better, 0 is the target met.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..validation import finite, fraction, integer, non_negative
from .base import Reward


def ink_mask(x0: torch.Tensor, threshold: float) -> np.ndarray:
    """(B, H, W) boolean ink mask of image samples (B, C, H, W), as NumPy."""
    return (x0.detach().mean(1) > threshold).cpu().numpy()


def _check_image_shape(reward: Reward, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise ValueError(f"{type(reward).__name__} scores images of shape (C, H, W), but the prior's samples have shape {tuple(shape)}")


class ComponentCountReward(Reward):
    """``-|c - target|`` with ``c`` the number of connected ink components of each image.

    Ink is where the channel mean exceeds ``threshold`` (default 0.0); ``connectivity`` is 8
    (default) or 4. Not differentiable: for derivative-free solvers (SCG, best-of-N). Scores
    (C, H, W) images.
    """

    differentiable = False

    def __init__(self, target: int, *, threshold: float = 0.0, connectivity: int = 8):
        super().__init__()
        integer(0)("target (a number of components)", target)
        finite("threshold", threshold)
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8 (neighbouring pixels), got {connectivity!r}")
        self.target, self.threshold, self.connectivity = int(target), float(threshold), int(connectivity)

    def counts(self, x0: torch.Tensor) -> torch.Tensor:
        """The number of connected ink components of each sample, (B,) int64."""
        structure = ndimage.generate_binary_structure(2, 1 if self.connectivity == 4 else 2)
        return torch.tensor([ndimage.label(mask, structure=structure)[1] for mask in ink_mask(x0, self.threshold)],
                            dtype=torch.int64)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return -(self.counts(x0) - self.target).abs().to(device=x0.device, dtype=x0.dtype)

    def check(self, shape, dtype=torch.float32) -> None:
        _check_image_shape(self, shape)


class InkFractionReward(Reward):
    """``-|f - target|`` with ``f`` the fraction of ink pixels in ``region``.

    ``target`` in [0, 1]; ``region = (row_start, row_stop, col_start, col_stop)`` (default: the
    whole image); ink is where the channel mean exceeds ``threshold`` (default 0.0). With the default
    ``softness = 0`` the count is not differentiable (derivative-free solvers only); ``softness > 0``
    counts each pixel as ``sigmoid((v - threshold) / softness)``, differentiable. Scores (C, H, W)
    images.
    """

    def __init__(self, target: float, region: tuple[int, int, int, int] | None = None, *, threshold: float = 0.0,
                 softness: float = 0.0):
        super().__init__()
        fraction("target (an ink fraction)", target)
        finite("threshold", threshold)
        non_negative("softness (the sigmoid's width; 0: a hard count)", softness)
        self.softness = float(softness)
        self.differentiable = self.softness > 0
        for bound in region or ():
            integer(0)("region bounds", bound)
        if region is not None and (len(region) != 4 or region[0] >= region[1] or region[2] >= region[3]):
            raise ValueError(f"region must be (row_start, row_stop, col_start, col_stop) with start < stop, got {region}")
        self.target, self.threshold = float(target), float(threshold)
        self.region = None if region is None else tuple(int(v) for v in region)

    def fractions(self, x0: torch.Tensor) -> torch.Tensor:
        """The ink fraction of the region in each sample, (B,): float64 on the CPU for the hard count,
        in ``x0``'s dtype and device (and differentiable) for the soft one."""
        if self.softness > 0:
            ink = torch.sigmoid((x0.mean(1) - self.threshold) / self.softness)
        else:
            ink = torch.from_numpy(ink_mask(x0, self.threshold)).double()
        if self.region is not None:
            top, bottom, left, right = self.region
            ink = ink[:, top:bottom, left:right]
        return ink.flatten(1).mean(1)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return -(self.fractions(x0) - self.target).abs().to(device=x0.device, dtype=x0.dtype)

    def check(self, shape, dtype=torch.float32) -> None:
        _check_image_shape(self, shape)
        if self.region is not None:
            top, bottom, left, right = self.region
            height, width = shape[1], shape[2]
            if not (0 <= top < bottom <= height and 0 <= left < right <= width):
                raise ValueError(f"InkFractionReward's region {self.region} does not fit in images of {height}x{width}")
