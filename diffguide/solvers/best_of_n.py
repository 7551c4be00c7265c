"""Best-of-N: draw N unguided samples for each requested one and keep the one with the best reward.

The baseline every reward-steering method must beat at equal cost (rejection by ranking, as in
e.g. the inference-time scaling studies of diffusion and language models). For each of the ``B``
requested samples::

    x^(k) = DDIM(x_start^(k)),   k = 1 .. N,      x = x^(k*),   k* = argmax_k r(x^(k))

where ``x_start^(1)`` is the given initial state and ``x_start^(k)``, ``k > 1``, are fresh draws
``sigma_0 z`` (the law of a pure-noise start at ``sigma_0``). The unguided sampler is DDIM with
``eta`` (0: deterministic DDIM, 1: DDPM). ``n`` is a field, not the batch: the output has the
batch of the input, and the ``N`` candidates are ``N`` passes of the sampler on that batch.

Needs any reward (only its values are used; a black box included). Candidates with a NaN reward
(a failed black-box evaluation) are never kept; if all ``N`` fail, the first is kept.

Budget: ``N`` full sampler passes, ``N x steps`` NFE (the same network work per sample as a
guided solver with ``N x steps`` NFE), and ``N B`` reward evaluations at the end (``N B``
operator_evals for a likelihood). ``n = 8`` is our default; set it to match the NFE of the
method compared. The callback sees every pass (step indices restart at 0 on each).
"""
from __future__ import annotations

import dataclasses

import torch

from ..types import per_sample
from ..validation import fraction, integer
from .base import Solver
from .ddim import DDIM


def keep_best(best: torch.Tensor | None, best_score: torch.Tensor | None, candidate: torch.Tensor,
              score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the better of the kept ``best`` and a new ``candidate`` by their (B,) scores;
    a NaN score (a failed evaluation) always loses, and ties keep ``best``. ``best = None`` starts."""
    score = score.to(device=candidate.device, dtype=candidate.dtype)
    score = torch.where(torch.isnan(score), -torch.inf, score)
    if best is None:
        return candidate, score
    better = score > best_score
    return torch.where(per_sample(better, candidate), candidate, best), torch.where(better, score, best_score)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BestOfN(Solver):
    """Best-of-N: ``n`` unguided DDIM passes per requested sample, keeping the best by the reward.

    ``n`` (default 8) candidates, the first from the given state and the others from fresh noise;
    ``eta`` (default 0.0, in [0, 1]) is the sampler's DDIM noise. Takes any reward, a black box
    included; a NaN reward never wins. Cost: ``n x steps`` NFE and ``n B`` reward evaluations.
    """

    needs = "any"
    limits = {"n": integer(1), "eta": fraction}

    n: int = 8
    eta: float = 0.0

    def sample(self, run, reward, x):
        sampler = DDIM(eta=self.eta)
        best, best_score = None, None
        for k in run.progress(self.n, "candidates"):
            start = x if k == 0 else run.sigmas[0] * run.noise_like(x)
            candidate = sampler.sample(run, None, start)
            best, best_score = keep_best(best, best_score, candidate, reward(candidate))
        return best
