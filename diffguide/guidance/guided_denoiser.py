"""A guided denoiser: a prior whose clean estimate combines several predictions of its network.

``GuidedDenoiser(prior, rule, negative, interval)`` is itself a denoiser, ``D(x, sigma, **cond) -> x0``,
so every solver runs over it unchanged: DDIM samples with classifier-free guidance, DPS restores
with it, EnKG ensembles over it. At each call it makes the conditional prediction
``p = prior(x, sigma, **cond)`` and, when ``sigma`` lies in ``interval`` and the rule does not pass
``p`` through, the negative one ``n`` (``negatives.py``), and returns ``rule.guide(p, n)``. Outside
the interval it is the conditional prior (one pass).

What a rule needs beyond the combined estimate is given explicitly:

- **Per-run state.** A rule or branch that remembers across steps (APG's momentum, CFG-Zero*'s
  step count, ICG's random labels) reads and writes a ``memory`` dict that belongs to one run:
  ``for_run(generator)`` returns a copy with a fresh one, which ``Solver.__call__`` does for every
  run. Calling a stateful guided denoiser that is not bound to a run is an error.
- **A second output.** ``denoise_with_direction`` returns the guided ``x0`` and the clean estimate
  whose noise the sampler's step should re-use: ``x0`` itself, except for CFG++, which re-noises
  with the unconditional prediction. Solvers that read it say so (``Solver.follows_noise_direction``);
  the others refuse such a rule.

Network passes are counted at the network: each prediction is one counted pass
(``network_passes.denoise_counted``), so CFG costs two passes a call and a solver's ``run.denoise``
does not count the guided call again (``counts_network_passes``).
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

from ..network_passes import denoise_counted
from ..types import per_sample, sigma_batch
from .interval import NoiseInterval
from .negatives import NegativeBranch, NullCondition
from .rule import GuidanceRule


class GuidedDenoiser(torch.nn.Module):
    """``D(x, sigma, **cond)`` of ``prior`` guided by ``rule`` away from the ``negative`` branch's prediction
    (default: the unconditional one) for noise levels in ``interval`` (default: all). Has the prior's
    ``shape``, ``sigma_min``, ``sigma_max`` and ``data_range``."""

    #: each network pass inside is counted where it is made, so callers do not count this call
    counts_network_passes = True

    def __init__(self, prior, rule: GuidanceRule, negative: NegativeBranch | None = None,
                 interval: NoiseInterval | None = None, *, memory: dict | None = None):
        super().__init__()
        if not isinstance(rule, GuidanceRule):
            raise ValueError(f"rule must be a GuidanceRule (e.g. diffguide.guidance.CFG(scale=3)), got "
                             f"{type(rule).__name__}")
        self.prior = prior
        self.rule = rule
        self.negative = negative if negative is not None else NullCondition()
        self.interval = interval if interval is not None else NoiseInterval()
        self.memory = memory
        self.shape = tuple(prior.shape)
        self.sigma_min, self.sigma_max = prior.sigma_min, prior.sigma_max
        self.data_range = prior.data_range

    @property
    def stateful(self) -> bool:
        return self.rule.stateful or self.negative.stateful

    @property
    def renoises_with_negative(self) -> bool:
        """True when the sampler must take its step's noise direction from ``denoise_with_direction``."""
        return self.rule.renoises_with_negative

    def for_run(self, generator: torch.Generator | None = None) -> "GuidedDenoiser":
        """This guided denoiser with a fresh per-run ``memory`` (holding ``generator`` for random branches)."""
        return GuidedDenoiser(self.prior, self.rule, self.negative, self.interval,
                              memory={"generator": generator})

    def with_shape(self, shape) -> "GuidedDenoiser":
        """The same guidance over the prior at another image size (``prior.with_shape``)."""
        return GuidedDenoiser(self.prior.with_shape(shape), self.rule, self.negative, self.interval)

    def check(self, cond: dict) -> None:
        """``ValueError`` when the negative branch cannot work with this prior and condition (before any pass)."""
        self.negative.check(self.prior, cond)

    @property
    def model_config(self) -> dict:
        """The prior's settings and the guidance's, JSON-able for a run's record."""
        return dict(getattr(self.prior, "model_config", {}),
                    guidance=dict(rule=type(self.rule).__name__, **dataclasses.asdict(self.rule),
                                  negative=self.negative.config, interval=[self.interval.low, self.interval.high]))

    def forward(self, x: torch.Tensor, sigma, /, **cond) -> torch.Tensor:
        return self.denoise_with_direction(x, sigma, **cond)[0]

    def denoise_with_direction(self, x: torch.Tensor, sigma, /, **cond) -> tuple[torch.Tensor, torch.Tensor]:
        """The guided clean estimate and the one whose noise ``(x - x0) / sigma`` the step should re-use."""
        if self.stateful and self.memory is None:
            raise ValueError(f"{type(self.rule).__name__} with {type(self.negative).__name__} keeps state across the "
                             "steps of a run: call it through a solver, or bind it first with .for_run(generator)")
        memory = self.memory if self.memory is not None else {}
        sigma = sigma_batch(sigma, x)
        inside = self.interval.contains(sigma)
        guiding = self.rule.needs_negative(memory) and bool(inside.any())
        with self.negative.around_positive(self.prior, memory) if guiding else contextlib.nullcontext():
            positive = denoise_counted(self.prior, x, sigma, **cond)
        if not guiding:
            return positive, positive
        negative = self.negative.predict(self.prior, x, sigma, cond, positive, memory)
        guided = self.rule.guide(positive, negative, x, sigma, memory)
        direction = negative if self.rule.renoises_with_negative else guided
        if not bool(inside.all()):
            keep = per_sample(inside, x)
            guided, direction = torch.where(keep, guided, positive), torch.where(keep, direction, positive)
        return guided, direction
