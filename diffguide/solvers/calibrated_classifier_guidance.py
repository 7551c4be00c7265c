"""Calibrated classifier guidance with an off-the-shelf classifier (Ma, Hu, Wang & Sun, ICLR 2024,
"Elucidating the design space of classifier-guided diffusion generation"; EluCD).

A classifier trained on clean images only is run on the clean estimate ``x0 = D(x, sigma)``, and its
gradient in ``x0`` (not through the denoiser) steers each ancestral step. Three pre-conditionings
calibrate it:

- **Temperatures.** The log-probability is ``tau_1 f_c(x0) - log sum_k exp(tau_2 f_k(x0))`` for logits
  ``f``: a joint temperature ``tau_1`` on the class's logit and a sharper-or-softer one on the
  normaliser, ``tau_2 = tau_1 * margin_discount`` (the paper's DDPM setting: ``tau_1 = 1``,
  ``margin_discount = 0.5``).
- **Smooth activations.** Every ``nn.ReLU`` of the classifier becomes ``nn.Softplus(beta)`` (the
  paper: ``beta = 3``), so its input gradient is smooth; ``beta = inf`` keeps the classifier as it is,
  and a classifier without ReLU modules (the shipped digit classifier uses SiLU) is unchanged.
- **A sine schedule.** The DDPM mean moves by ``s (Sigma_t + gamma sin(pi t / T) max_{t' >= t} Sigma_t') g``
  with ``g = grad_{x0} log p~(c | x0)``, the step's posterior variance ``Sigma_t``, the running maximum
  of the variances seen so far in the run, and ``gamma`` (the paper: 0.3) boosting the middle of the run.

In this package's VE variables the step is the DDPM ancestral step from ``x0`` (``steps.ddim_step``,
``eta = 1``) plus that VP mean shift, moved to the VE state by ``steps.vp_scale(sigma_next)``; the VP
posterior variance of the step ``sigma -> sigma_next`` is
``Sigma = sigma_next^2 (sigma^2 - sigma_next^2) / (sigma^2 (1 + sigma_next^2))``. Requires a
``ClassifierReward`` (its classifier and label). Cost per step: one denoiser pass and one classifier
forward and backward; no backward pass through the denoiser.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn

from ..rewards.classifier import ClassifierReward
from ..validation import Number, non_negative, positive
from .base import Solver
from .steps import ddim_step, vp_scale


def calibrated_log_prob(logits: torch.Tensor, label: torch.Tensor, joint_temperature: float,
                        margin_temperature: float) -> torch.Tensor:
    """``tau_1 f_label - logsumexp(tau_2 f)`` per sample (B,) from logits (B, K)."""
    chosen = logits.gather(1, label[:, None]).squeeze(1)
    return joint_temperature * chosen - torch.logsumexp(margin_temperature * logits, dim=1)


def smoothed(classifier: nn.Module, beta: float) -> nn.Module:
    """A copy of ``classifier`` with each ``nn.ReLU`` replaced by ``nn.Softplus(beta)`` (itself when ``beta`` is
    infinite or it has no ReLU modules)."""
    if math.isinf(beta) or not any(isinstance(module, nn.ReLU) for module in classifier.modules()):
        return classifier
    smooth = copy.deepcopy(classifier)
    for parent in list(smooth.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Softplus(beta=beta))
    return smooth


@dataclasses.dataclass(frozen=True, kw_only=True)
class CalibratedClassifierGuidance(Solver):
    """EluCD's off-the-shelf classifier guidance (module docstring): DDPM steps whose mean moves along the
    calibrated clean classifier's gradient at the clean estimate. Parameters: ``scale`` (1.0),
    ``joint_temperature`` (1.0), ``margin_discount`` (0.5), ``softplus_beta`` (3.0), ``gamma`` (0.3), the
    paper's DDPM settings. Requires a ``ClassifierReward``."""

    needs = "gradient"
    #: what the reward must be: a classifier (its logits are calibrated), not any reward of ``x0``
    reward_input: ClassVar[str] = "classifier"
    limits = {"scale": non_negative, "joint_temperature": positive, "margin_discount": positive,
              "softplus_beta": Number(0.0, low_open=True, allow_inf=True).about("the Softplus beta"),
              "gamma": non_negative}

    scale: float = 1.0
    joint_temperature: float = 1.0
    margin_discount: float = 0.5
    softplus_beta: float = 3.0
    gamma: float = 0.3

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if not isinstance(reward, ClassifierReward):
            raise ValueError(f"CalibratedClassifierGuidance calibrates a classifier's logits and needs a "
                             f"ClassifierReward (a classifier and a label); got {type(reward).__name__}")

    def sample(self, run, reward, x):
        classifier = smoothed(reward.classifier, self.softplus_beta)
        label = reward.label.to(x.device).expand(x.shape[0])
        steps = len(run.sigmas) - 1
        peak = 0.0

        def log_prob(x0):
            return calibrated_log_prob(classifier(x0), label, self.joint_temperature,
                                       self.joint_temperature * self.margin_discount)

        for i, sigma, sigma_next in run.steps():
            x0 = run.denoise(x, sigma)
            _, grad = run.gradient(log_prob, x0)
            variance = float(sigma_next**2 * (sigma**2 - sigma_next**2) / (sigma**2 * (1 + sigma_next**2)))
            peak = max(peak, variance)
            boost = self.gamma * max(math.sin(math.pi * (steps - 1 - i) / steps), 0.0) * peak
            x = ddim_step(x, x0, sigma, sigma_next, 1.0, run.noise_like(x))
            x = x + self.scale * (variance + boost) * vp_scale(sigma_next) * grad
            run.record(i, sigma_next, x, x0)
        return x
