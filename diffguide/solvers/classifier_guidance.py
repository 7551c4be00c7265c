"""Classifier guidance (Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021).

A classifier ``p(c | x, sigma)`` trained on noisy images tilts the score towards class ``c``:
``grad log p_s(x | c) = grad log p(x) + s grad_x log p(c | x, sigma)`` with the classifier
scale ``s``. Algorithm 2 (DDIM) writes this as a shifted noise prediction
``eps_hat = eps - sqrt(1 - abar) grad_{x_vp} log p(c | x_vp)``; in VE variables
(``x = x_vp / sqrt(abar)``, ``sigma = sqrt((1 - abar) / abar)``) that is
``eps_hat = eps - s sigma grad_x log p(c | x, sigma)``, i.e. the clean estimate

    x0_guided = D(x, sigma) + s sigma^2 grad_x log p(c | x, sigma),

which for ``s = 1`` is Tweedie's formula for the conditional ``E[x0 | x, c]``. Each step then
takes the DDIM step ``steps.ddim_step`` with ``x0_guided`` (and ``eps_hat = (x - x0_guided) / sigma``):
``eta = 0`` is Algorithm 2; ``eta = 1`` is ancestral DDPM sampling, whose mean shift
``s (sigma^2 - sigma_next^2) grad`` agrees with Algorithm 1's ``s Sigma grad`` to first order in
the step. The paper samples with DDPM; its scales: 1.0 for its conditional ImageNet 64 and
256 models, 10.0 for the unconditional 256 one.

Requires a ``NoisyClassifierReward``: the gradient is taken through the noise-aware
classifier on the noisy state ``x`` (not through the denoiser), so a reward that only scores
clean ``x0`` cannot be used. Cost per step: one denoiser call (NFE) and one classifier
forward and backward (a gradient evaluation).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..rewards.noisy_classifier import NoisyClassifierReward
from ..types import sigma_batch
from ..validation import fraction, non_negative
from .base import Solver
from .steps import ddim_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierGuidance(Solver):
    """Classifier guidance (Dhariwal & Nichol, NeurIPS 2021): the clean estimate shifted by
    ``scale * sigma^2 * grad_x log p(c | x, sigma)`` of a noise-aware classifier, then a DDIM step.

    Parameters: ``scale`` (default 1.0, the paper's classifier scale ``s``; its units are those of
    the classifier's log-probability), ``eta`` (1.0: DDPM, as in the paper). Requires a
    ``NoisyClassifierReward`` (the gradient is taken on the noisy state, not through the denoiser).
    """

    needs = "gradient"
    #: what the reward reads: the noisy state and sigma (``NoisyClassifierReward.log_prob``), not ``x0``.
    reward_input: ClassVar[str] = "noisy"
    limits = {"scale": non_negative, "eta": fraction}

    scale: float = 1.0
    eta: float = 1.0

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if not isinstance(reward, NoisyClassifierReward):
            raise ValueError(f"ClassifierGuidance differentiates a noise-aware classifier on the noisy state, "
                             f"log p(label | x, sigma), and needs a NoisyClassifierReward; got {type(reward).__name__}, "
                             "which scores clean x0 only (use DPS or another x0-guidance solver for it)")

    def sample(self, run, reward, x):
        for i, sigma, sigma_next in run.steps():
            x0 = run.denoise(x, sigma)
            # grad_x log p(c | x, sigma): through the classifier only
            _, grad = run.gradient(lambda state: reward.log_prob(state, sigma_batch(sigma, state)), x)
            x0_guided = x0 + self.scale * sigma**2 * grad  # eps_hat = eps - s sigma grad (Algorithm 2)
            noise = run.noise_like(x) if self.eta > 0 else None
            x = ddim_step(x, x0_guided, sigma, sigma_next, self.eta, noise)
            run.record(i, sigma_next, x, x0_guided)
        return x
