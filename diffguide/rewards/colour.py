"""A reward that needs no network: how close an image's mean colour is to a target colour.

``r(x) = -||mean_pixels(x) - c||^2`` for images (B, C, H, W) and a target ``c`` in the images' value
range: one colour (C,) for every sample, or one per sample (B, C). Smooth, cheap and measurable, it stands in for a learned reward (a classifier, an
aesthetic head) where none can be loaded, e.g. to steer a Stable Diffusion pipeline's images
towards a colour with the gradient methods (``benchmarks.stable_diffusion``).
"""
from __future__ import annotations

import torch

from .base import Reward


class MeanColour(Reward):
    """``r(x) = -||mean over pixels of x - target||^2``: the mean colour's squared distance to ``target``,
    (C,) for all samples or (B, C), one per sample."""

    def __init__(self, target):
        super().__init__()
        target = torch.as_tensor(target, dtype=torch.float32)
        if target.ndim not in (1, 2) or not torch.isfinite(target).all():
            raise ValueError(f"target must be finite colours, (C,) or one per sample (B, C), got {target.tolist()}")
        self.register_buffer("target", target)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        colour = x0.mean(dim=(2, 3))
        return -(colour - self.target.to(x0.dtype)).pow(2).sum(1)

    def check(self, shape, dtype=torch.float32) -> None:
        channels = self.target.shape[-1]
        if len(shape) != 3 or shape[0] != channels:
            raise ValueError(f"MeanColour with a {channels}-channel target scores (C, H, W) images with "
                             f"C = {channels}, got samples of shape {tuple(shape)}")
