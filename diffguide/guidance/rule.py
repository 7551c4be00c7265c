"""The base of guidance rules: how a conditional and a negative prediction become one.

A rule works in one of two spaces. In ``"x0"`` it combines clean estimates ``D(x, sigma)``; in
``"epsilon"`` it combines noise estimates ``eps = (x - D) / sigma`` (what diffusers' guiders and
most papers' code combine). Rules linear in the predictions (CFG) give the same result in both;
rules that take norms or projections (APG, CFG-Zero*, guidance rescale) do not, and each says
which space its paper uses.

Guidance rescale (Lin et al., WACV 2024, "Common diffusion noise schedules and sample steps are
flawed", section 3.4) is an option of every rule: with ``phi = rescale``,
``g <- phi * g * std(p) / std(g) + (1 - phi) * g``, where ``p`` is the conditional prediction and
the standard deviations are taken per sample (diffusers' ``rescale_noise_cfg``).
"""
from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import torch

from ..types import per_sample
from ..validation import CheckedFields, finite, fraction, one_of

SPACES = ("x0", "epsilon")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GuidanceRule(CheckedFields, abc.ABC):
    """A frozen dataclass of hyper-parameters whose ``combine`` mixes the conditional prediction
    ``positive`` with the ``negative`` one it guides away from; ``guide`` does it in the rule's ``space``
    and applies guidance ``rescale``. Subclasses set ``stateful`` (keeps ``memory`` across the steps of a
    run) and ``renoises_with_negative`` (the step re-noises with the negative prediction: CFG++)."""

    limits = {"scale": finite.about("the guidance scale"), "rescale": fraction.about("guidance rescale phi"),
              "space": one_of(*SPACES)}
    #: True when ``combine`` reads or writes ``memory`` across calls (momentum, a step count)
    stateful: ClassVar[bool] = False
    #: True when the sampler's step should take its noise direction from the negative prediction
    renoises_with_negative: ClassVar[bool] = False

    scale: float
    rescale: float = 0.0
    space: str = "epsilon"

    @property
    def passes_through(self) -> bool:
        """True when the rule returns the conditional prediction unchanged (no negative pass needed)."""
        return self.scale == 1.0 and not self.renoises_with_negative

    def needs_negative(self, memory: dict) -> bool:
        """Whether this call needs the negative prediction (False lets the guided denoiser skip its pass)."""
        return not self.passes_through

    def guide(self, positive: torch.Tensor, negative: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor,
              memory: dict) -> torch.Tensor:
        """The guided clean estimate from the conditional and negative ones at ``(x, sigma)`` (sigma (B,))."""
        s = per_sample(sigma, x)
        into = (lambda x0: x0) if self.space == "x0" else (lambda x0: (x - x0) / s)
        conditional = into(positive)
        guided = self.combine(conditional, into(negative), memory)
        if self.rescale > 0:
            guided = rescaled(guided, conditional, self.rescale)
        return guided if self.space == "x0" else x - s * guided

    @abc.abstractmethod
    def combine(self, positive: torch.Tensor, negative: torch.Tensor, memory: dict) -> torch.Tensor:
        """The guided prediction from the conditional (``positive``) and ``negative`` ones, in ``space``."""


def rescaled(guided: torch.Tensor, conditional: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale: ``phi * guided * std(conditional) / std(guided) + (1 - phi) * guided``, per sample."""
    dims = tuple(range(1, guided.ndim))
    ratio = conditional.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
    return phi * guided * ratio + (1 - phi) * guided


def per_sample_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a_i, b_i>`` for each sample, shaped to broadcast against ``a``."""
    return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))
