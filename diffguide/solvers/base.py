"""The solver protocol: ``solver(denoiser, reward, x, sigmas, *, generator, callback, **cond) -> x0``.

A solver is a frozen, keyword-only dataclass of hyper-parameters (so
``dataclasses.asdict(solver)`` is its config) whose ``sample`` method holds the
update rule. ``__call__`` checks the inputs, opens the counting context, and runs
``sample`` under ``torch.no_grad()``; gradients are enabled only inside
``Run.denoise_with_grad``. Every step and the result pass the divergence checks of
``divergence.DivergenceGuard``: a diverged run raises, it never returns.

Hyper-parameters are checked at construction: each subclass lists a rule
(``diffguide.validation``) per field in ``limits`` (merged along the class hierarchy); a field
with no rule is checked against the type of its default (a finite number, an integer, a bool).
The reward's outputs are checked on their first evaluation (``reward_output``).
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Callable, ClassVar

import torch

from .. import validation
from ..counting import counting
from ..placement import check_placement
from ..rewards.base import Reward
from ..rewards.decoded import image_decoder, in_image_space
from .divergence import DivergenceGuard
from .record import StepRecord
from .reward_output import checked_outputs
from .run import Run

#: a schedule may start this much (relatively) above the prior's ``sigma_max``: rounding, not a mistake
SIGMA_MAX_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True, kw_only=True)
class Solver(validation.CheckedFields, abc.ABC):
    """Base of every sampler: a frozen dataclass of hyper-parameters; ``solver(denoiser, reward, x,
    sigmas, *, generator, callback, **cond)`` checks the inputs, runs ``sample`` under no_grad with
    counting and the divergence checks, and returns the final samples. Subclasses set ``needs``,
    ``reward_input``, ``batch_is_ensemble`` and ``limits`` (``validation.CheckedFields``) and implement
    ``sample``."""

    #: what the solver needs from the reward: "none" (unguided), "any", or "gradient".
    needs: ClassVar[str] = "none"
    #: what the reward reads: "x0" (a clean estimate: every ``Reward``), "noisy" (the noisy state and
    #: sigma, e.g. a noise-aware classifier) or "readout" (features of the prior's network).
    reward_input: ClassVar[str] = "x0"
    #: True when the batch is one interacting ensemble for one measurement (EnKG, TDS), so its size is a
    #: parameter of the method; False when the samples are drawn independently.
    batch_is_ensemble: ClassVar[bool] = False
    #: True when each step takes its noise direction from ``run.denoise_with_direction`` (DDIM), so a
    #: guidance rule that re-noises with another prediction (CFG++) can run under it.
    follows_noise_direction: ClassVar[bool] = False

    def __call__(self, denoiser, reward: Reward | None, x: torch.Tensor, sigmas: torch.Tensor, /, *,
                 generator: torch.Generator | None = None, callback: Callable[[StepRecord], None] | None = None,
                 **cond) -> torch.Tensor:
        if hasattr(denoiser, "for_run"):  # a guided denoiser: its per-run state is this run's
            self.check_guidance(denoiser, cond)
            denoiser = denoiser.for_run(generator)
        reward = self.reward_of_state(denoiser, reward)
        self.check(denoiser, reward, x, sigmas)
        name = type(self).__name__
        with torch.no_grad(), counting() as counts:
            run = Run(denoiser, sigmas.to(device=x.device, dtype=x.dtype), counts, generator=generator,
                      callback=callback, cond=cond, desc=name, guard=DivergenceGuard(denoiser, reward, name))
            with checked_outputs(reward, name):
                result = self.sample(run, reward, x)
            run.guard.check_result(result, counts, len(sigmas) - 1)
        return result

    @abc.abstractmethod
    def sample(self, run: Run, reward: Reward | None, x: torch.Tensor) -> torch.Tensor:
        """The update rule: runs the loop over ``run.steps()`` and returns the final sample."""

    def reward_of_state(self, denoiser, reward: Reward | None) -> Reward | None:
        """The reward as this solver reads it: on a latent prior, of the decoded clean estimate
        (``rewards.decoded``); a reward of the network's features is read as it is."""
        prior = image_decoder(denoiser)
        if reward is None or prior is None or self.reward_input == "readout":
            return reward
        if self.reward_input == "noisy":
            raise ValueError(f"{type(self).__name__} scores the noisy state with a noise-aware classifier, but on a "
                             "latent prior the state is a latent, not an image; use a clean-estimate method "
                             "(DPS, universal guidance, TFG) with a classifier of images")
        return in_image_space(reward, prior)

    def check_guidance(self, denoiser, cond: dict) -> None:
        """``ValueError`` when a guided denoiser cannot run under this solver or with this condition."""
        if denoiser.renoises_with_negative and not self.follows_noise_direction:
            raise ValueError(f"{type(denoiser.rule).__name__} re-noises each step with the unconditional prediction, "
                             f"which {type(self).__name__} does not do; sample it with DDIM or DDPM, or use CFG")
        denoiser.check(cond)

    def check(self, denoiser, reward, x, sigmas) -> None:
        """Device, dtype, shape, schedule and reward checks, raised as ``ValueError`` before sampling starts."""
        shape = tuple(denoiser.shape)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"the initial state has per-sample shape {tuple(x.shape[1:])}, but the prior expects {shape}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("the initial state x contains NaN or Inf; expected finite values (usually sigmas[0] * noise)")
        if sigmas.ndim != 1 or len(sigmas) < 2 or float(sigmas[-1]) != 0.0 or not bool((sigmas[:-1] > sigmas[1:]).all()) \
                or not bool(torch.isfinite(sigmas).all()):
            raise ValueError("sigmas must be a 1-D, finite, strictly decreasing schedule ending in 0")
        sigma_max = getattr(denoiser, "sigma_max", math.inf)
        if float(sigmas[0]) > sigma_max * (1 + SIGMA_MAX_TOLERANCE):
            raise ValueError(f"the schedule starts at sigma {float(sigmas[0]):.6g}, above the prior's sigma_max "
                             f"{sigma_max:.6g} (the noise range it was trained on); start at or below it, e.g. "
                             "diffguide.schedules.prior_sigmas(prior, steps)")
        if self.needs == "none":
            check_placement(denoiser, None, x)
            return
        if reward is None:
            raise ValueError(f"{type(self).__name__} is a guided solver and needs a reward (or likelihood), got None")
        if self.needs == "gradient" and not reward.differentiable:
            raise ValueError(f"{type(self).__name__} backpropagates through the reward, but {type(reward).__name__} "
                             "is not differentiable (a black box); use a derivative-free solver")
        reward.check(shape, x.dtype)
        check_placement(denoiser, reward, x)

