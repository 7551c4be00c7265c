"""The read-only record a solver hands to ``callback`` after every step."""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """State after step ``index``: the noisy state ``x`` at ``sigma`` (the next noise
    level) and the clean estimate ``x0`` the step used, with the counts so far: denoiser forward
    passes ``nfe`` and backward passes ``backward_passes`` (``network_passes``), black-box or
    operator evaluations and guidance gradients (``counting``)."""

    index: int
    sigma: float
    x: torch.Tensor
    x0: torch.Tensor
    nfe: int
    backward_passes: int
    operator_evals: int
    grad_evals: int
