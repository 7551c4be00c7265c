"""Readout reward: a readout head and its target, ``r = -d(R(F(x, sigma), sigma), r*)``.

A readout head reads the *noisy* state through the prior's own features, so the
quantity Readout Guidance differentiates is not a function of ``x0`` alone. The
reward therefore carries the head, the target ``r*`` and the distance ``d`` (the
head's training loss), and two ways to use them:

- ``loss(readout)``: ``d(readout, r*)`` per sample, for a readout the caller got from
  the features of its own denoiser call at ``(x, sigma)``; this is what
  ``ReadoutGuidance`` differentiates through the UNet at every step.
- ``forward(x0)``: the ``Reward`` of a clean sample, ``-d`` of the head read at the
  prior's lowest noise level (one counted call of ``prior``). Any solver may use it,
  and it scores final samples.

Targets: a label (int or (B,)) for a ``"class"`` head; a {0, 1} mask of shape
(1, H, W) or (B, 1, H, W) for a ``"mask"`` head.
"""
from __future__ import annotations

import torch

from ..counting import count
from ..network_passes import backward_counted
from ..models.readout import ReadoutHead, denoise_with_features
from .base import Reward


class ReadoutReward(Reward):
    """``-head.loss(head(F(x0, sigma_min), sigma_min), target)`` per sample; ``prior`` is the
    denoiser whose features the head reads when scoring clean samples."""

    differentiable = True

    def __init__(self, head: ReadoutHead, target, prior):
        super().__init__()
        if head.task == "class":
            target = torch.as_tensor(target, dtype=torch.int64)
            if target.ndim > 1 or ((target < 0) | (target >= head.n_classes)).any():
                raise ValueError(f"a class readout target is a label in 0..{head.n_classes - 1} or a (B,) tensor of "
                                 f"them, got {target.tolist()}")
        else:
            target = torch.as_tensor(target, dtype=torch.float32)
            if target.ndim not in (3, 4) or target.shape[-3] != 1 or ((target != 0) & (target != 1)).any():
                raise ValueError(f"a mask readout target is a {{0, 1}} tensor of shape (1, H, W) or (B, 1, H, W), "
                                 f"got shape {tuple(target.shape)}")
        self.head, self.prior = head, prior
        self.register_buffer("target", target)

    def loss(self, readout: torch.Tensor) -> torch.Tensor:
        """``d(readout, r*)`` per sample, (B,), with the target broadcast to the batch."""
        batch = readout.shape[0]
        single = self.target.ndim == (0 if self.head.task == "class" else 3)
        target = self.target.expand(batch, *self.target.shape) if single else self.target
        if target.shape[0] != batch:
            raise ValueError(f"ReadoutReward holds {target.shape[0]} targets but got a batch of {batch} readouts")
        return self.head.loss(readout, target.to(readout.device))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        count("nfe")
        _, features = denoise_with_features(self.prior, x0, self.prior.sigma_min, self.head.blocks)
        return backward_counted(-self.loss(self.head(features, self.prior.sigma_min)))  # a gradient: one VJP

    def check(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        if tuple(shape[1:]) != self.head.resolution:
            raise ValueError(f"the readout head reads images of size {self.head.resolution}, but the prior's samples "
                             f"have shape {tuple(shape)}")
        if self.head.task == "mask" and tuple(self.target.shape[-2:]) != tuple(shape[1:]):
            raise ValueError(f"the target mask has shape {tuple(self.target.shape)}, but the prior's samples have "
                             f"shape {tuple(shape)}")
        if not dtype.is_floating_point:
            raise ValueError(f"readout heads take floating-point samples, but the prior's dtype is {dtype}")
