"""Readout Guidance (Luo, Darrell, Wang, Goldman & Holynski, CVPR 2024).

A readout head ``R`` reads a property off the frozen prior's own features ``F`` at the
noisy state, ``r_i = R(F(x_i, sigma_i), sigma_i)``, and guidance pulls it towards a
target ``r*`` as classifier guidance pulls a label, with a distance ``d`` in place of
``-log p(y | x_i)`` (the paper's guidance equation):

    eps~_i = eps(x_i) + w_rg grad d(R(F(x_i, t), t), r*).

The authors' implementation realises the gradient term as ``recurrent_steps`` Adam
steps (learning rate ``w_rg = 2e-2``, a fresh optimiser at every sampling step) on the
VP latent ``z_i = x_i / sqrt(1 + sigma_i^2)``, taken only on the steps inside
``guidance_interval`` (their ``rg_ratio = [0, 0.5]``: the first half; ends rounded down to whole
steps, ``int(a N) <= i < int(b N)``, as noise levels by ``NoiseInterval.of_steps``), followed by the
ordinary DDIM step (``eta = 1`` for spatial control, ``eta = 0`` for drag editing). One
fresh Adam step moves each element by ``w_rg g / (|g| + 1e-8)``, about ``w_rg sign(g)``:
the gradient is normalised per element, whatever the scale of ``d``. In the VE state
``x = sqrt(1 + sigma^2) z`` of this library, per guided step:

    x0, F  = D(x_i, sigma_i) with feature hooks                        (one call)
    g      = sqrt(1 + sigma_i^2) grad_{x_i} d(R(F, sigma_i), r*)         (the gradient in z)
    x_i'   = x_i - w_rg sqrt(1 + sigma_i^2) Adam(g)                       (the guidance step)
    x_{i+1} = ddim_step(x_i', x0, sigma_i, sigma_{i+1}, eta).

The authors call the network again at ``x_i'`` before the DDIM step; here the step uses
``x0`` of the same call (one NFE per step, as the ``eps~`` equation does). The two
differ by ``(1 - sigma_down / sigma_i) (x0(x_i') - x0(x_i))``, first order in the step
size, and the next step's call sees ``x_i'`` in any case. With ``recurrent_steps > 1``
each Adam step re-evaluates the gradient at the moved state and the DDIM step uses
the ``x0`` of the last call. Since each guided step moves an element by at most about
``w_rg`` in ``z``, the paper's ``w_rg = 2e-2`` belongs to its 100-step schedule (50 guided
steps); a schedule with fewer steps needs a proportionally larger weight.

Requires a ``ReadoutReward`` (head, target, distance) whose head reads blocks of the
sampling denoiser's diffusers UNet. Cost per guided step: ``recurrent_steps`` denoiser
forwards and backwards (through the UNet up to the hooked blocks, and the head);
one NFE per unguided step.
"""
from __future__ import annotations

import dataclasses

import torch

from ..guidance.interval import NoiseInterval
from ..models.readout import FeatureCapture
from ..rewards.readout import ReadoutReward
from ..types import sigma_batch
from ..validation import fraction, integer, non_negative, span
from .base import Solver
from .steps import ddim_step, vp_scale


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReadoutGuidance(Solver):
    """Readout guidance (Luo et al., CVPR 2024): Adam steps on the VP latent along the gradient of a
    reward of a readout head's prediction from the prior's own UNet features.

    Parameters: ``weight`` (default 0.02, the Adam learning rate ``w_rg`` on the VP latent),
    ``guidance_interval`` ((0.0, 0.5): the guided fraction of the steps), ``recurrent_steps`` (1 Adam
    step per guided step), ``eta`` (1.0: DDPM). Requires a ``ReadoutReward`` and a prior whose
    features the head reads (``diffguide.models.readout``).
    """

    needs = "gradient"
    reward_input = "readout"
    limits = {"weight": non_negative, "guidance_interval": span(0.0, 1.0).about("the guided fraction of the steps"),
              "recurrent_steps": integer(1), "eta": fraction}

    weight: float = 2e-2  # w_rg: the Adam learning rate on the VP latent
    guidance_interval: tuple[float, float] = (0.0, 0.5)  # rg_ratio: guided fraction of the steps
    recurrent_steps: int = 1  # Adam steps per guided sampling step
    eta: float = 1.0  # DDIM eta of the sampling step (1: DDPM)

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        if not isinstance(reward, ReadoutReward):
            raise ValueError(f"ReadoutGuidance reads the prior's features with a readout head; it needs a "
                             f"ReadoutReward, got {type(reward).__name__}")
        unet = getattr(denoiser, "unet", None)
        if unet is None:
            raise ValueError(f"ReadoutGuidance hooks a diffusers UNet (denoiser.unet); {type(denoiser).__name__} has none")
        FeatureCapture(unet, reward.head.blocks)  # raises if a block is missing

    def sample(self, run, reward, x):
        n = len(run.sigmas) - 1
        # the authors' rg_ratio rounds the window's ends down to whole steps: steps int(a N) <= i < int(b N)
        first, last = (int(fraction * n) for fraction in self.guidance_interval)
        window = NoiseInterval.of_steps(run.sigmas, first / n, last / n)
        for i, sigma, sigma_next in run.steps():
            if window.contains(sigma):
                x, x0 = self.guide(run, reward, x, sigma)
            else:
                x0 = run.denoise(x, sigma)
            noise = run.noise_like(x) if self.eta > 0 else None
            x = ddim_step(x, x0, sigma, sigma_next, self.eta, noise)
            run.record(i, sigma_next, x, x0)
        return x

    def guide(self, run, reward: ReadoutReward, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """The guided state ``x_i'`` and the clean estimate ``x0`` of the last denoiser call."""
        scale = float(vp_scale(sigma))  # x = scale * z
        state = x.clone()
        # Adam on z with learning rate w_rg, written on x: the gradient in z, the step times ``scale``
        adam = torch.optim.Adam([state], lr=self.weight * scale, maximize=True)
        with FeatureCapture(run.denoiser.unet, reward.head.blocks) as capture:
            def objective(x0):
                return -reward.loss(reward.head(capture.features, sigma_batch(sigma, x0)))

            for _ in range(self.recurrent_steps):
                x0, _, grad = run.denoise_with_grad(state, sigma, objective)
                state.grad = grad * scale  # grad_z = scale * grad_x
                adam.step()
        return state, x0
