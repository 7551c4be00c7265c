"""Variants of classifier-free guidance that change its combination by a line or two.

- **CFG-Zero*** (Fan, Chen, Luo, Li & Zhang, arXiv 2025, "CFG-Zero*: improved classifier-free
  guidance for flow matching models"): the unconditional prediction is first scaled by the
  least-squares factor ``a = <p, n> / ||n||^2`` (per sample), ``g = a n + w (p - a n)``; and the
  first ``zero_init_steps`` levels of a run output a zero noise (velocity) estimate, i.e. ``x0 = x``.
  In noise space, as the paper (on velocities) and diffusers' guider.
- **Tangential CFG** (Kwon, Kwon, Lee & Kim, CVPR 2025, "TCFG: tangential damping classifier-free
  guidance"): the unconditional prediction keeps only its component along the first right
  singular vector of the stacked ``[p; n]`` (per sample), ``n' = n v1 v1^T``, then ``g = n' + w (p - n')``.
- **Magnitude-aware CFG** (MAMBO-G, as in diffusers' ``MagnitudeAwareGuidance``): the scale shrinks
  where the update is large relative to the unconditional prediction,
  ``w' = 1 + (w - 1) exp(-alpha ||p - n|| / ||n||)``, ``g = n + w' (p - n)``.

Each needs a conditional prior and two network passes per call.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ..validation import integer, non_negative
from .cfg import CFG
from .rule import per_sample_dot


@dataclasses.dataclass(frozen=True, kw_only=True)
class CFGZeroStar(CFG):
    """CFG-Zero* (Fan et al. 2025): optimised unconditional scale ``a = <p, n> / ||n||^2`` and
    ``zero_init_steps`` (default 1) zero-velocity levels at the start of a run."""

    limits = {"zero_init_steps": integer(0)}
    stateful: ClassVar[bool] = True

    zero_init_steps: int = 1

    def guide(self, positive, negative, x, sigma, memory):
        levels = memory.setdefault("levels", [])
        level = float(sigma.max())
        if level not in levels:
            levels.append(level)
        if levels.index(level) < self.zero_init_steps:
            return x.clone()  # a zero noise estimate: the state is its own clean estimate
        return super().guide(positive, negative, x, sigma, memory)

    def combine(self, positive, negative, memory):
        negative = per_sample_dot(positive, negative) / (per_sample_dot(negative, negative) + 1e-8) * negative
        return super().combine(positive, negative, memory)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TangentialCFG(CFG):
    """Tangential damping CFG (Kwon et al. 2025): the unconditional prediction projected on the first
    right singular vector of ``[p; n]`` before CFG."""

    def combine(self, positive, negative, memory):
        stacked = torch.stack([positive.flatten(1), negative.flatten(1)], dim=1).double()
        first = torch.linalg.svd(stacked, full_matrices=False).Vh[:, :1]  # (B, 1, n)
        along = (negative.flatten(1).double()[:, None] @ first.transpose(1, 2)) @ first
        return super().combine(positive, along.reshape(negative.shape).to(negative.dtype), memory)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MagnitudeAwareCFG(CFG):
    """Magnitude-aware CFG: scale ``1 + (scale - 1) exp(-alpha ||p - n|| / ||n||)`` per sample (default alpha 8)."""

    limits = {"alpha": non_negative}

    alpha: float = 8.0

    def combine(self, positive, negative, memory):
        update = positive - negative
        ratio = (per_sample_dot(update, update) / per_sample_dot(negative, negative)).sqrt()
        return negative + (1 + (self.scale - 1) * torch.exp(-self.alpha * ratio)) * update
