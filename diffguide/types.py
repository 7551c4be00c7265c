"""The core protocols every part of diffguide speaks (see docs/architecture.md).

A *denoiser* is in VE/EDM form: the noisy state is ``x = x0 + sigma * eps`` and the
denoiser returns the posterior-mean estimate ``E[x0 | x]``. Operators, rewards and
solvers are base classes in their own subpackages; this module holds the protocol
for denoisers (which may be any callable with the attributes below) and the
shared errors.
"""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import torch


@runtime_checkable
class Denoiser(Protocol):
    """``D(x, sigma, **cond) -> x0`` with ``x``: (B, *shape), ``sigma``: (B,) or scalar.

    Attributes: ``shape`` (per-sample shape), ``sigma_min``, ``sigma_max`` (the noise
    range the model was trained on) and ``data_range`` ((low, high) of clean data).
    """

    shape: tuple[int, ...]
    sigma_min: float
    sigma_max: float
    data_range: tuple[float, float]

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, /, **cond) -> torch.Tensor: ...


class GuidanceDivergedError(FloatingPointError):
    """A sampling run diverged (NaN/Inf, a state out of any plausible range, or a data misfit far
    past the noise level); carries the step index."""

    #: what to change when the run was guided (a reward or a guidance rule), and when it was not
    GUIDED_ADVICE = "lower the step size (guidance weight), check the reward's scale, or use more steps"
    UNGUIDED_ADVICE = "use more steps, or check that the model is trained and its scheduler is the one it was trained with"

    def __init__(self, step: int, what: str, solver: str = "guidance", guided: bool = True):
        self.step = step
        advice = self.GUIDED_ADVICE if guided else self.UNGUIDED_ADVICE
        super().__init__(f"{solver} diverged at step {step}: {what}; {advice}")


class BlackBoxFailedError(RuntimeError):
    """Most evaluations of a black-box operator failed during a run; the message gives the first reasons."""


def wrapped_denoisers(denoiser) -> Iterator:
    """``denoiser``, then each denoiser it wraps through ``.prior`` (a guided denoiser's prior, ...)."""
    while denoiser is not None:
        yield denoiser
        denoiser = getattr(denoiser, "prior", None)


def sigma_batch(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or (B,) sigma to a (B,) tensor on ``x``'s device and dtype."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


def per_sample(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a (B,) tensor to broadcast against ``x`` of shape (B, *shape)."""
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))
