"""Rewards ``r(x0) -> (B,)``, higher is better.

``differentiable`` says whether gradient-based solvers may backpropagate through
the reward; derivative-free solvers only ever call it.
"""
from __future__ import annotations

import torch
from torch import nn


class Reward(nn.Module):
    """Subclasses implement ``forward(x0) -> (B,)`` and set ``differentiable`` honestly."""

    differentiable: bool = True

    def check(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        """Raise ``ValueError`` early if this reward cannot score samples of ``shape``."""
