"""Classifier-free guidance, CFG (Ho & Salimans, NeurIPS workshop 2021 / arXiv 2022).

``g = n + w (p - n)`` for the conditional prediction ``p`` and the unconditional (negative) one
``n``: ``w = 1`` is the conditional model, ``w = 0`` the unconditional one, ``w > 1`` extrapolates
away from the unconditional prediction (diffusers' ``guidance_scale`` convention; the paper writes
``(1 + w') p - w' n``, i.e. ``w = 1 + w'``). Linear, so the same in x0 and epsilon space; guidance
rescale (Lin et al. 2024) acts in the rule's space. Requires a conditional prior; two network
passes per call (one while the guidance interval excludes the level).
"""
from __future__ import annotations

import dataclasses

import torch

from .rule import GuidanceRule


@dataclasses.dataclass(frozen=True, kw_only=True)
class CFG(GuidanceRule):
    """Classifier-free guidance ``n + scale (p - n)`` (Ho & Salimans 2022), with optional guidance
    ``rescale`` (Lin et al. 2024). Default scale 3; ``space`` only matters for the rescale."""

    scale: float = 3.0

    def combine(self, positive: torch.Tensor, negative: torch.Tensor, memory: dict) -> torch.Tensor:
        return negative + self.scale * (positive - negative)
