"""Time travel (self-recurrence, resampling): one step repeated, re-noised back between repeats.

Universal Guidance's self-recurrence (Bansal et al., ICLR 2024), TFG's recurrence (Ye et al.,
NeurIPS 2024), symplectic adjoint guidance's time travel (Pan et al., 2023) and DDNM's (Wang et al.,
ICLR 2023, Section 3.4) all redo a guided move from ``sigma`` to ``sigma_next``: after each pass but
the last the state goes back to ``sigma`` by the forward process, ``x <- x + sqrt(sigma^2 -
sigma_next^2) z`` with fresh noise ``z`` (``steps.renoise``; the VP ``z_t = sqrt(a_t / a_{t-1}) z_{t-1}
+ sqrt(1 - a_t / a_{t-1}) eps'``), and the step is taken again. The last pass draws no re-noising
noise, so one pass draws exactly what the plain step draws.
"""
from __future__ import annotations

from typing import Callable

import torch

from .steps import renoise


def time_travel(step: Callable[[torch.Tensor], tuple], x: torch.Tensor, sigma, sigma_next, repeats: int, run) -> tuple:
    """``step(x) -> (x_next, *rest)`` taken ``repeats`` times from ``x`` at ``sigma`` to ``sigma_next``,
    each result re-noised back to ``sigma`` with ``run.noise_like`` before the next; the last pass's tuple."""
    result = step(x)
    for _ in range(repeats - 1):
        result = step(renoise(result[0], sigma, sigma_next, run.noise_like(result[0])))
    return result
