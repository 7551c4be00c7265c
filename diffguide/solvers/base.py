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
from typing import Callable, ClassVar, Mapping

import torch

from .. import validation
from ..counting import counting
from ..placement import check_placement
from ..rewards.base import Reward
from .divergence import DivergenceGuard
from .record import StepRecord
from .reward_output import checked_outputs
from .run import Run

#: a schedule may start this much (relatively) above the prior's ``sigma_max``: rounding, not a mistake
SIGMA_MAX_TOLERANCE = 1e-3


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
    #: a rule (``diffguide.validation``) per hyper-parameter, checked at construction; merged with the base classes'.
    limits: ClassVar[Mapping[str, validation.Rule]] = {}

    @classmethod
    def parameter_rules(cls) -> dict[str, validation.Rule]:
        """The rule of each field: its ``limits`` entry here or in a base class, else by its default's type."""
        declared = {}
        for klass in reversed(cls.__mro__):
            declared.update(vars(klass).get("limits", {}))
        rules = {field.name: declared.get(field.name) or _rule_of_default(field.default)
                 for field in dataclasses.fields(cls)}
        return {name: rule for name, rule in rules.items() if rule is not None}

    def __post_init__(self):
        for name, rule in self.parameter_rules().items():
            rule(f"{type(self).__name__} {name}", getattr(self, name))

    def __call__(self, denoiser, reward: Reward | None, x: torch.Tensor, sigmas: torch.Tensor, /, *,
                 generator: torch.Generator | None = None, callback: Callable[[StepRecord], None] | None = None,
                 **cond) -> torch.Tensor:
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


def _rule_of_default(default) -> validation.Rule | None:
    """The check of a field without a rule in ``limits``: by the type of its default."""
    if isinstance(default, bool):
        return validation.flag
    if isinstance(default, int):
        return validation.Number(integer=True)
    if isinstance(default, float):
        return validation.finite
    return None
