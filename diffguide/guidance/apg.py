"""Adaptive projected guidance, APG (Sadat, Hilliges & Weber, ICLR 2025, "Eliminating oversaturation
and artifacts of high guidance scales in diffusion models").

CFG's update ``d = p - n`` splits into a part parallel to the conditional prediction ``p``, which
mostly raises saturation, and an orthogonal part, which mostly improves quality. APG keeps the
orthogonal part and down-weights the parallel one:

    d_t  <- d_t + beta * d_{t-1}                      (reverse momentum, beta < 0, over the run's steps)
    d    <- d * min(1, r / ||d||)                     (norm threshold; here r = rms_threshold * sqrt(n))
    g     = p + (w - 1) * (d_perp + eta * d_par)       with d_par = <d, p> p / ||p||^2

per sample, on the clean estimate (``space="x0"``, as the paper recommends; diffusers' guider
applies it to the noise prediction). Defaults are the paper's: ``eta = 0``, ``beta = -0.5``,
``r = 15`` on SDXL's 4x128x128 latents, which is ``rms_threshold = 15 / 256 ~ 0.06`` per value (the
threshold is per value here so that it means the same at every image size). With ``eta = 1``, no
momentum and no threshold it is CFG. Two network passes per call.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ..validation import Number, non_negative
from .rule import GuidanceRule, per_sample_dot


@dataclasses.dataclass(frozen=True, kw_only=True)
class APG(GuidanceRule):
    """Adaptive projected guidance (Sadat et al. 2025): ``p + (scale - 1)(d_perp + eta d_par)`` with reverse
    ``momentum`` and a per-value norm threshold ``rms_threshold`` (0: none); rule in the module docstring."""

    limits = {"eta": non_negative, "momentum": Number(-1.0, 1.0).about("APG's momentum beta"),
              "rms_threshold": non_negative.about("the update's norm threshold per value (0: none)")}
    stateful: ClassVar[bool] = True

    scale: float = 3.0
    eta: float = 0.0
    momentum: float = -0.5
    rms_threshold: float = 0.06
    space: str = "x0"

    def combine(self, positive: torch.Tensor, negative: torch.Tensor, memory: dict) -> torch.Tensor:
        update = positive - negative
        if self.momentum != 0:
            update = update + self.momentum * memory.get("apg_average", 0.0)
            memory["apg_average"] = update
        if self.rms_threshold > 0:
            norm = per_sample_dot(update, update).sqrt()
            limit = self.rms_threshold * update[0].numel() ** 0.5
            update = update * torch.clamp(limit / norm, max=1.0)
        parallel = per_sample_dot(update, positive) / per_sample_dot(positive, positive) * positive
        return positive + (self.scale - 1) * (update - parallel + self.eta * parallel)
