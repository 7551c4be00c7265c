"""Classifier reward: ``r(x0) = log p(label | x0)`` under a digit classifier.

The classifier is called on clean estimates ``x0`` only (rewards know nothing of
sigma); a noise-aware classifier then reads them as clean.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Reward


class ClassifierReward(Reward):
    """Log-softmax probability of ``label`` (an int, or one per sample as a (B,) tensor), (B,)."""

    differentiable = True

    def __init__(self, classifier: nn.Module, label: int | torch.Tensor):
        super().__init__()
        label = torch.as_tensor(label, dtype=torch.int64)
        if label.ndim > 1:
            raise ValueError(f"label must be an int or a (B,) tensor, got shape {tuple(label.shape)}")
        n_classes = classifier.n_classes
        if ((label < 0) | (label >= n_classes)).any():
            raise ValueError(f"label must lie in 0..{n_classes - 1}, got {label.tolist()}")
        self.classifier = classifier
        self.register_buffer("label", label)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        label = self.label.expand(x0.shape[0]) if self.label.ndim == 0 else self.label
        if label.shape[0] != x0.shape[0]:
            raise ValueError(f"ClassifierReward holds {label.shape[0]} labels but got a batch of {x0.shape[0]} samples")
        log_probs = torch.log_softmax(self.classifier(x0), dim=1)
        return log_probs.gather(1, label[:, None]).squeeze(1)

    def check(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        expected = tuple(self.classifier.input_shape)
        if tuple(shape) != expected:
            raise ValueError(
                f"{type(self.classifier).__name__} takes samples of shape {expected}, but the prior's samples have shape {tuple(shape)}"
            )
        if not dtype.is_floating_point:
            raise ValueError(f"{type(self.classifier).__name__} takes floating-point samples, but the prior's dtype is {dtype}")
