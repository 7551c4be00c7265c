"""Motion-guidance reward (Geng & Owens, "Motion Guidance: Diffusion-Based Image Editing
with Differentiable Motion Estimators", ICLR 2024).

Given a source image ``x*``, a target flow ``f`` (where each source pixel should move) and
a differentiable flow estimator ``F``, the paper's guidance energy (Sec. 3) is

    L(x) = lambda_flow  * || F(x*, x) - f ||_1
         + lambda_color * || m_color * (x* - warp(x, F(x*, x))) ||_1,

and the reward is ``r(x0) = -L(x0)``. The flow term asks the edited image to show the
motion ``f`` relative to the source; the colour term asks each source pixel ``p`` to keep
its colour where it went, ``x(p + F(p)) ~ x*(p)`` (``warp`` of
:mod:`diffguide.operators.flow_warp`). ``m_color`` removes the occluded source pixels:
static pixels (zero flow) that moving pixels land on, whose colour cannot survive the
edit. As in the authors' code, they are found by scattering the moving pixels along
``f`` (here: the exact adjoint of :class:`FlowWarp`), and pixels that move are never
masked. Norms are means over pixels (and channels), colours in [0, 1] (images in
[-1, 1] are mapped by ``x / 2 + 1/2``), flows in pixels; the weights are the authors'
defaults, ``lambda_flow = 3`` and ``lambda_color = 100``.

``warp_by`` picks the flow the colour term warps by. ``"estimated"`` is ``F(x*, x)`` as
written above and the default of the authors' code; the unedited source then has zero
colour loss (``F(x*, x*) = 0``), so with a coarse estimator it can outscore a correct
edit. ``"target"`` (the default here; the authors' "oracle" option) warps by ``f``:
the colour term compares each source pixel with where ``f`` sends it, ``x(p + f(p))``,
through a fixed linear map (the warp of :class:`FlowWarp`), and only a correct edit scores 0.
``edit_mask`` (True where the edit may change the image), when given, restricts the
flow term to the mask. The paper applies its edit mask in the sampler instead (outside
the mask it copies the noised source into the state, as in RePaint), and adds recursive
denoising and gradient clipping; those are solver matters, not part of this reward.

The flow estimator defaults to the weight-free Horn-Schunck of
:mod:`diffguide.models.optical_flow` (the paper uses RAFT); any differentiable
``estimator(source, target) -> flow`` may replace it. Cost: one flow estimation and one
warp per call.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch

from ..models.optical_flow import estimate_flow
from ..operators.flow_warp import FlowWarp, warp
from ..validation import finite_tensor, non_negative, one_of
from .base import Reward


class MotionReward(Reward):
    """``source`` (S, C, H, W) in [-1, 1] and ``target_flow`` (S, 2, H, W): one edit shared by
    every sample (S = 1) or one per sample (S = B); ``edit_mask`` (S, 1, H, W) or None."""

    differentiable = True

    def __init__(self, source: torch.Tensor, target_flow: torch.Tensor, edit_mask: torch.Tensor | None = None, *,
                 flow_weight: float = 3.0, color_weight: float = 100.0,
                 warp_by: Literal["estimated", "target"] = "target",
                 flow_estimator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = estimate_flow):
        super().__init__()
        finite_tensor("source", source)
        finite_tensor("target_flow", target_flow)
        if source.ndim != 4:
            raise ValueError(f"source must be images of shape (S, C, H, W), got {tuple(source.shape)}")
        n, size = source.shape[0], tuple(source.shape[2:])
        if tuple(target_flow.shape) != (n, 2, *size):
            raise ValueError(f"target_flow must have shape (S, 2, H, W) = {(n, 2, *size)} for a source of shape "
                             f"{tuple(source.shape)}, got {tuple(target_flow.shape)}")
        if edit_mask is not None and tuple(edit_mask.shape) != (n, 1, *size):
            raise ValueError(f"edit_mask must have shape (S, 1, H, W) = {(n, 1, *size)}, got {tuple(edit_mask.shape)}")
        one_of("estimated", "target")("warp_by", warp_by)
        non_negative("flow_weight", flow_weight)
        non_negative("color_weight", color_weight)
        self.flow_weight, self.color_weight, self.warp_by = float(flow_weight), float(color_weight), warp_by
        self.flow_estimator = flow_estimator
        self.register_buffer("source", source)
        self.register_buffer("target_flow", target_flow)
        self.register_buffer("edit_mask", None if edit_mask is None else edit_mask.to(source.dtype))
        self.register_buffer("color_mask", self.unoccluded(target_flow).to(source.dtype))

    @staticmethod
    def unoccluded(target_flow: torch.Tensor) -> torch.Tensor:
        """``m_color`` (S, 1, H, W): False on static source pixels that a moving pixel lands on."""
        moving = target_flow.abs().sum(1, keepdim=True) > 0
        landed = FlowWarp(target_flow).adjoint(moving.to(target_flow.dtype)) > 0
        return moving | ~landed

    def flow_loss(self, flow: torch.Tensor) -> torch.Tensor:
        """``||F(x*, x) - f||_1`` per sample, the mean over pixels (inside the edit mask if one is given)."""
        error = (flow - self.target_flow).abs().mean(1, keepdim=True)
        if self.edit_mask is None:
            return error.flatten(1).mean(1)
        return (error * self.edit_mask).flatten(1).sum(1) / self.edit_mask.flatten(1).sum(1).clamp(min=1)

    def color_loss(self, x0: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """``||m_color (x* - warp(x, flow))||_1`` per sample, the mean over pixels and channels, colours in [0, 1]."""
        warped = warp(x0 / 2 + 0.5, flow, padding="border")
        return (self.color_mask * (self.source / 2 + 0.5 - warped)).abs().flatten(1).mean(1)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        if self.source.shape[0] not in (1, x0.shape[0]):
            raise ValueError(f"MotionReward holds {self.source.shape[0]} source images but got a batch of "
                             f"{x0.shape[0]} samples; give one source, or one per sample")
        flow = self.flow_estimator(self.source, x0)
        warp_flow = flow if self.warp_by == "estimated" else self.target_flow
        return -(self.flow_weight * self.flow_loss(flow) + self.color_weight * self.color_loss(x0, warp_flow))

    def check(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        if tuple(shape) != tuple(self.source.shape[1:]):
            raise ValueError(f"MotionReward holds a source image of shape {tuple(self.source.shape[1:])}, "
                             f"but the prior's samples have shape {tuple(shape)}")
        if not dtype.is_floating_point:
            raise ValueError(f"MotionReward scores floating-point images, but the prior's dtype is {dtype}")
