"""CFG++ (Chung, Kim, Park, Nam & Ye, ICLR 2025, "CFG++: manifold-constrained classifier free
guidance for diffusion models").

The clean estimate is guided with a scale ``lambda`` in [0, 1], an interpolation rather than an
extrapolation: ``x0_lambda = x0_n + lambda (x0_p - x0_n)``; the step then re-noises with the
*unconditional* noise estimate, ``x_next = x0_lambda + sigma_next * (x - x0_n) / sigma`` (DDIM),
which keeps the state on the data manifold at noise level ``sigma_next``. The paper sweeps
``lambda`` over [0, 1] (small values already guide as strongly as large CFG scales); the default
here is 0.6. Requires a conditional prior and a sampler that takes its
step's noise direction from the guidance layer (DDIM, DDPM): others refuse it.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ..validation import fraction
from .rule import GuidanceRule


@dataclasses.dataclass(frozen=True, kw_only=True)
class CFGPlusPlus(GuidanceRule):
    """CFG++ (Chung et al. 2025): ``x0 = n + scale (p - n)`` with ``scale = lambda`` in [0, 1] (default 0.6),
    the step re-noised with the unconditional prediction ``n``."""

    limits = {"scale": fraction.about("CFG++'s lambda")}
    renoises_with_negative: ClassVar[bool] = True

    scale: float = 0.6

    def combine(self, positive: torch.Tensor, negative: torch.Tensor, memory: dict) -> torch.Tensor:
        return negative + self.scale * (positive - negative)
