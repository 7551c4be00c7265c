"""Noise-aware classifier reward: ``log p(label | x, sigma)`` on the noisy state, for classifier guidance.

Rewards score clean estimates ``x0`` and know nothing of sigma. Classifier
guidance (Dhariwal & Nichol 2021) instead differentiates a classifier trained on noisy
images at the current noise level. ``NoisyClassifierReward`` is both:

- as a ``Reward``, ``reward(x0)`` is the noise-aware classifier read as clean
  (``sigma=None``), so it is an ordinary, differentiable clean-x0 reward any solver may use;
- ``reward.log_prob(x, sigma)`` is ``log p(label | x, sigma)`` on a noisy state ``x`` at
  ``sigma``; only solvers that ask for it (``solvers.classifier_guidance``) call it.

The classifier is any module ``classifier(x, sigma) -> logits (B, n_classes)`` with
``n_classes``, ``input_shape`` and ``noise_aware = True`` (``DigitClassifier(noise_aware=True)``,
or an analytic one in the tests).
"""
from __future__ import annotations

import torch
from torch import nn

from .classifier import ClassifierReward


class NoisyClassifierReward(ClassifierReward):
    """A noise-aware classifier's ``log p(label | x, sigma)`` for classifier guidance.

    ``classifier(x, sigma) -> logits`` must have ``noise_aware = True``, ``n_classes`` and
    ``input_shape``; ``label`` is an int or one per sample. As a ``Reward`` it scores clean
    estimates (the classifier read as clean); ``log_prob(x, sigma)`` scores noisy states and
    is what ``ClassifierGuidance`` differentiates.
    """

    def __init__(self, classifier: nn.Module, label: int | torch.Tensor):
        if not getattr(classifier, "noise_aware", False):
            raise ValueError(f"NoisyClassifierReward needs a noise-aware classifier (classifier(x, sigma), noise_aware=True); "
                             f"{type(classifier).__name__} is not; use ClassifierReward for a clean classifier")
        super().__init__(classifier, label)

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``log p(label | x, sigma)`` for noisy states ``x`` (B, *shape) at ``sigma`` (B,), (B,)."""
        label = self.label.expand(x.shape[0]) if self.label.ndim == 0 else self.label
        if label.shape[0] != x.shape[0]:
            raise ValueError(f"NoisyClassifierReward holds {label.shape[0]} labels but got a batch of {x.shape[0]} states")
        log_probs = torch.log_softmax(self.classifier(x, sigma), dim=1)
        return log_probs.gather(1, label[:, None]).squeeze(1)
