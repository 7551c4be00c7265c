"""Guidance away from a degraded prediction of the same model: the rule of PAG, SEG, skip-layer
guidance, self-attention guidance and autoguidance.

``g = p + s (p - n)`` for the conditional prediction ``p`` and the prediction ``n`` of a perturbed or
weaker network (``negatives.py``, ``self_attention_blur.py``): ``s = 0`` is the model alone, and the
papers' scales are in this convention (PAG's ``s``, SAG's ``s``, SEG's ``gamma``; autoguidance's
``w = 1 + s``). It is CFG's rule at scale ``1 + s``. Works for unconditional priors too (the
negative branch changes the network, not the condition). Two network passes per call.
"""
from __future__ import annotations

import dataclasses

import torch

from .rule import GuidanceRule


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerturbationGuidance(GuidanceRule):
    """``p + scale (p - n)`` away from a perturbed network's prediction (default scale 3; 0 = no guidance)."""

    scale: float = 3.0

    @property
    def passes_through(self) -> bool:
        return self.scale == 0.0

    def combine(self, positive: torch.Tensor, negative: torch.Tensor, memory: dict) -> torch.Tensor:
        return positive + self.scale * (positive - negative)
