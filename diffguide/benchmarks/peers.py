"""deepinv's diffusion solvers (``deepinv.sampling.DPS`` and ``DiffPIR``) behind diffguide's
solver call, for side-by-side rows in the same results file (names ``deepinv-...``).

The prior goes in through ``ToDeepinv`` and every call to it is counted as NFE; gradients
inside deepinv are not counted. deepinv works on [0, 1] images: for data in [-1, 1],
``x01 = (x + 1) / 2`` and the linear operator is unchanged, so the measurement becomes
``y01 = (y + A(1)) / 2`` with noise ``sigma_y / 2``. Results are mapped back to [-1, 1].
deepinv's DPS spends ``num_steps - 1`` denoiser calls, so it gets ``nfe + 1`` steps; DiffPIR
spends ``max_iter``. deepinv's DiffPIR draws from the global generator: it is seeded from
the run's generator.
"""
from __future__ import annotations

import dataclasses

import deepinv
import torch

from ..counting import count
from ..operators.base import LinearOperator
from ..priors.deepinv_denoiser import ToDeepinv
from ..rewards.likelihood import GaussianLikelihood


class _CountedPrior(ToDeepinv):
    def forward(self, x, sigma, *args, **kwargs):
        count("nfe")
        return super().forward(x, sigma, *args, **kwargs)


def _physics(operator: LinearOperator, sigma_y01: float) -> deepinv.physics.LinearPhysics:
    return deepinv.physics.LinearPhysics(A=operator, A_adjoint=operator.adjoint,
                                         noise_model=deepinv.physics.GaussianNoise(sigma=sigma_y01))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepinvPeer:
    """``method``: ``"dps"`` (``weight`` is deepinv's ``weight``) or ``"diffpir"`` (``zeta``, ``lambda_``)."""

    method: str = "dps"
    weight: float = 1.0
    zeta: float = 0.1
    lambda_: float = 7.0
    needs = "gradient"

    def __call__(self, denoiser, reward, x, sigmas, /, *, generator=None, callback=None, **cond):
        if not isinstance(reward, GaussianLikelihood) or not isinstance(reward.operator, LinearOperator):
            raise ValueError("deepinv's DPS/DiffPIR here need a GaussianLikelihood with a linear operator")
        if tuple(denoiser.data_range) != (-1.0, 1.0):
            raise ValueError(f"the deepinv peers map [-1, 1] data to [0, 1]; the prior's range is {denoiser.data_range}")
        nfe = len(sigmas) - 1
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        operator = reward.operator
        ones = torch.ones(1, *x.shape[1:], dtype=x.dtype)
        y01 = ((reward.y + operator(ones)) / 2).expand(x.shape[0], *reward.y.shape[1:])
        physics = _physics(operator, reward.sigma_y / 2)
        model = _CountedPrior(denoiser)
        if self.method == "dps":
            solver = deepinv.sampling.DPS(model, num_steps=nfe + 1, weight=self.weight, dtype=x.dtype,
                                          rng=torch.Generator().manual_seed(seed))
            out = solver(y01, physics, x_init=tuple(x.shape), seed=seed)
        elif self.method == "diffpir":
            solver = deepinv.sampling.DiffPIR(model, deepinv.optim.data_fidelity.L2(), sigma=reward.sigma_y / 2,
                                              max_iter=nfe, zeta=self.zeta, lambda_=self.lambda_)
            out = solver(y01, physics, seed=seed)
        else:
            raise ValueError(f"method must be 'dps' or 'diffpir', got {self.method!r}")
        return (2 * out - 1).to(x.dtype)
