"""The solver protocol: ``solver(denoiser, reward, x, sigmas, *, generator, callback, **cond) -> x0``.

A solver is a frozen, keyword-only dataclass of hyper-parameters (so
``dataclasses.asdict(solver)`` is its config) whose ``sample`` method holds the
update rule. ``__call__`` checks the inputs, opens the counting context, and runs
``sample`` under ``torch.no_grad()``; gradients are enabled only inside
``Run.denoise_with_grad``. Every step and the result pass the divergence checks of
``divergence.DivergenceGuard``: a diverged run raises, it never returns.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable, ClassVar

import torch

from ..counting import counting
from ..rewards.base import Reward
from .divergence import DivergenceGuard
from .record import StepRecord
from .run import Run


@dataclasses.dataclass(frozen=True, kw_only=True)
class Solver(abc.ABC):
    """Base of every sampler: a frozen dataclass of hyper-parameters; ``solver(denoiser, reward, x,
    sigmas, *, generator, callback, **cond)`` checks the inputs, runs ``sample`` under no_grad with
    counting and the divergence checks, and returns the final samples. Subclasses set ``needs``,
    ``reward_input`` and ``batch_is_ensemble`` and implement ``sample``."""

    #: what the solver needs from the reward: "none" (unguided), "any", or "gradient".
    needs: ClassVar[str] = "none"
    #: what the reward reads: "x0" (a clean estimate: every ``Reward``), "noisy" (the noisy state and
    #: sigma, e.g. a noise-aware classifier) or "readout" (features of the prior's network).
    reward_input: ClassVar[str] = "x0"
    #: True when the batch is one interacting ensemble for one measurement (EnKG, TDS), so its size is a
    #: parameter of the method; False when the samples are drawn independently.
    batch_is_ensemble: ClassVar[bool] = False

    def __call__(self, denoiser, reward: Reward | None, x: torch.Tensor, sigmas: torch.Tensor, /, *,
                 generator: torch.Generator | None = None, callback: Callable[[StepRecord], None] | None = None,
                 **cond) -> torch.Tensor:
        self.check(denoiser, reward, x, sigmas)
        name = type(self).__name__
        with torch.no_grad(), counting() as counts:
            run = Run(denoiser, sigmas.to(device=x.device, dtype=x.dtype), counts, generator=generator,
                      callback=callback, cond=cond, desc=name, guard=DivergenceGuard(denoiser, reward, name))
            result = self.sample(run, reward, x)
            run.guard.check_result(result, counts, len(sigmas) - 1)
        return result

    @abc.abstractmethod
    def sample(self, run: Run, reward: Reward | None, x: torch.Tensor) -> torch.Tensor:
        """The update rule: runs the loop over ``run.steps()`` and returns the final sample."""

    def check(self, denoiser, reward, x, sigmas) -> None:
        """Shape, schedule and reward checks, raised as ``ValueError`` before sampling starts."""
        shape = tuple(denoiser.shape)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"the initial state has per-sample shape {tuple(x.shape[1:])}, but the prior expects {shape}")
        if sigmas.ndim != 1 or len(sigmas) < 2 or float(sigmas[-1]) != 0.0 or not bool((sigmas[:-1] > sigmas[1:]).all()):
            raise ValueError("sigmas must be a 1-D, strictly decreasing schedule ending in 0")
        if self.needs == "none":
            return
        if reward is None:
            raise ValueError(f"{type(self).__name__} is a guided solver and needs a reward (or likelihood), got None")
        if self.needs == "gradient" and not reward.differentiable:
            raise ValueError(f"{type(self).__name__} backpropagates through the reward, but {type(reward).__name__} "
                             "is not differentiable (a black box); use a derivative-free solver")
        reward.check(shape, x.dtype)
