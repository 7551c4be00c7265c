"""EDICT, exactly invertible DDIM sampling (Wallace, Gokul & Naik, "EDICT: Exact Diffusion
Inversion via Coupled Transformations", CVPR 2023).

A deterministic DDIM step from ``sigma`` to ``sigma'`` in VE form is
``x' = x + h eps(x, sigma)`` with ``h = sigma' - sigma`` and ``eps(z, sigma) = (z - D(z, sigma)) / sigma``
(the paper's ``a_t x_t + b_t eps(x_t, t)`` divided by ``sqrt(abar_{t-1})``: affine in ``x`` and
in ``D``). It cannot be inverted exactly, since ``eps`` is evaluated at the state it
moves. EDICT keeps two copies ``(x, y)`` of the state, starting equal, and moves each with
the noise estimate of the other, like an affine coupling layer (paper eqs. 10-13):

    x_inter = x + h eps(y, sigma)                          (10)
    y_inter = y + h eps(x_inter, sigma)                    (11)
    x'      = p x_inter + (1 - p) y_inter                  (12, mixing)
    y'      = p y_inter + (1 - p) x'                       (13, mixing)

Each line changes one copy by a function of the other, so the step is undone exactly, in
reverse order, with the same two denoiser calls (the paper's inversion):

    y_inter = (y' - (1 - p) x') / p,    x_inter = (x' - (1 - p) y_inter) / p
    y = y_inter - h eps(x_inter, sigma),    x = x_inter - h eps(y, sigma).

The coefficient of the moved copy is 1 even on the last step (``sigma' = 0``), so the
whole chain, ``x_T -> x_0`` included, is invertible. ``mix = p = 0.93`` is the paper's
default. ``leapfrog`` swaps the roles of ``x`` and ``y`` in (10)-(11) on every other step
(not the mixing), as the authors' EDICT and DOODL code does by default (``leapfrog_steps``).
The sampler returns ``x_0``, the first copy (the authors' EDICT code decodes both, their
DOODL code keeps the first); the copies agree closely once the schedule has enough steps.

Stability: (10), (11) preserve volume and the mixing shrinks it by ``p^2`` per coordinate, so
where the denoiser is nearly constant (high noise) and the common mode of the pair contracts
like DDIM by ``sigma'/sigma``, the difference ``x - y`` grows by about ``p^2 sigma / sigma'``
per step. Schedules need ``sigma'/sigma > p^2 ~ 0.865`` at the top: with ``sigma_max = 80``
Karras schedules of 50 steps keep the pair together, 20 or fewer do not (the paper used
50 steps on Stable Diffusion, whose ``sigma_max`` is about 14.6). EDICT converges to the
DDIM flow at first order, with a larger error than DDIM at equal steps (the second
copy's noise is estimated at the old level).

Unguided; needs only the denoiser. Cost: 2 NFE per step (and 2 per inverted step).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ..validation import Number, flag
from .base import Solver

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def noise_estimate(denoise: Denoise, z: torch.Tensor, sigma) -> torch.Tensor:
    """``eps(z, sigma) = (z - D(z, sigma)) / sigma``."""
    return (z - denoise(z, sigma)) / sigma


def edict_step(denoise: Denoise, x: torch.Tensor, y: torch.Tensor, sigma, sigma_next, mix: float,
               swap: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EDICT step ``(x, y)`` at ``sigma`` -> ``(x', y')`` at ``sigma_next`` (eqs. 10-13).

    ``swap`` exchanges the roles of ``x`` and ``y`` in the coupled updates (leapfrog).
    Also returns the clean estimate of the second denoiser call."""
    h = sigma_next - sigma
    a, b = (y, x) if swap else (x, y)
    a = a + h * noise_estimate(denoise, b, sigma)  # (10)
    x0 = denoise(a, sigma)
    b = b + h * (a - x0) / sigma  # (11)
    x, y = (b, a) if swap else (a, b)
    x = mix * x + (1 - mix) * y  # (12)
    y = mix * y + (1 - mix) * x  # (13)
    return x, y, x0


def edict_inverse_step(denoise: Denoise, x: torch.Tensor, y: torch.Tensor, sigma, sigma_next, mix: float,
                       swap: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact inverse of ``edict_step``: ``(x', y')`` at ``sigma_next`` -> ``(x, y)`` at ``sigma``."""
    h = sigma_next - sigma
    y = (y - (1 - mix) * x) / mix  # undo (13)
    x = (x - (1 - mix) * y) / mix  # undo (12)
    a, b = (y, x) if swap else (x, y)
    b = b - h * noise_estimate(denoise, a, sigma)  # undo (11)
    a = a - h * noise_estimate(denoise, b, sigma)  # undo (10)
    return (b, a) if swap else (a, b)


def edict_chain(denoise: Denoise, x: torch.Tensor, y: torch.Tensor, sigmas: torch.Tensor, mix: float,
                leapfrog: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """All steps of the schedule ``sigmas``: ``(x_T, y_T) -> (x_0, y_0)``."""
    for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        x, y, _ = edict_step(denoise, x, y, sigma, sigma_next, mix, swap=leapfrog and i % 2 == 1)
    return x, y


def edict_invert(denoise: Denoise, x: torch.Tensor, y: torch.Tensor, sigmas: torch.Tensor, mix: float,
                 leapfrog: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of ``edict_chain``: ``(x_0, y_0) -> (x_T, y_T)`` (to invert an image, pass it as both)."""
    for i in reversed(range(len(sigmas) - 1)):
        x, y = edict_inverse_step(denoise, x, y, sigmas[i], sigmas[i + 1], mix, swap=leapfrog and i % 2 == 1)
    return x, y


@dataclasses.dataclass(frozen=True, kw_only=True)
class EDICT(Solver):
    """EDICT, exactly invertible DDIM (Wallace, Gokul & Naik, CVPR 2023), unguided.

    ``mix`` (default 0.93, in (0, 1]) is the paper's mixing weight ``p``; ``leapfrog`` (default
    True) swaps the two copies' roles every other step. Two NFE per step. Keep the top of the
    schedule gentle (``sigma'/sigma > mix^2``): at ``sigma_max = 80``, Karras schedules of 50
    steps are stable, 20 are not.
    """

    limits = {"mix": Number(0.0, 1.0, low_open=True).about("the mixing weight"), "leapfrog": flag}

    mix: float = 0.93
    leapfrog: bool = True

    def sample(self, run, reward, x):
        y = x
        for i, sigma, sigma_next in run.steps():
            x, y, x0 = edict_step(run.denoise, x, y, sigma, sigma_next, self.mix, swap=self.leapfrog and i % 2 == 1)
            run.record(i, sigma_next, x, x0)
        return x
