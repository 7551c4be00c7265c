"""Adaptive guidance (Castillo, Kohler, Perez, Perez, Pumarola, Ghanem, Arbelaez & Thabet, arXiv 2023,
"Adaptive guidance: training-free acceleration of conditional diffusion models").

Late in sampling the guided and the conditional predictions point the same way, and the
unconditional pass stops paying for itself. Adaptive guidance runs CFG, ``g = n + w (p - n)``,
until the cosine similarity of ``g`` and ``p`` (per sample) reaches ``threshold`` for every sample
of the batch, and from then on, for the rest of the run, returns the conditional prediction alone:
one network pass per call instead of two. The run's network-pass count shows the saving. Default
``threshold = 0.991``.

The cosine is taken on the clean estimates (``space="x0"``). In noise space it says nothing for
a schedule that starts from almost pure noise: on the ``digits`` prior (sigma_max 80, CFG scale 3,
25 DDIM steps) the noise estimates' cosine is above 0.995 at every level, so guidance would stop
after the first step, while the clean estimates' cosine rises steadily from 0.87 to 1 as the image
forms, which is the behaviour the paper's criterion relies on.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ..validation import Number
from .cfg import CFG
from .rule import per_sample_dot


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaptiveCFG(CFG):
    """CFG that stops its unconditional pass for the rest of the run once ``cos(g, p) >= threshold`` for
    every sample (Castillo et al. 2023)."""

    limits = {"threshold": Number(-1.0, 1.0).about("the cosine at which guidance stops")}
    stateful: ClassVar[bool] = True

    threshold: float = 0.991
    space: str = "x0"

    def needs_negative(self, memory: dict) -> bool:
        return super().needs_negative(memory) and not memory.get("adaptive_stopped", False)

    def combine(self, positive: torch.Tensor, negative: torch.Tensor, memory: dict) -> torch.Tensor:
        guided = super().combine(positive, negative, memory)
        cosine = per_sample_dot(guided, positive) / (per_sample_dot(guided, guided) * per_sample_dot(positive, positive)).sqrt()
        memory["adaptive_stopped"] = bool(cosine.min() >= self.threshold)
        return guided
