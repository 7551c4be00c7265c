"""deepinv's diffusion solvers (``deepinv.sampling.DPS``, ``DDRM`` and ``DiffPIR``) behind
diffguide's solver call, for side-by-side rows in the same results file (names ``deepinv-...``).

The prior goes in through ``ToDeepinv`` and every call to it is counted as NFE, and every
backward pass through it (deepinv's DPS takes one per step) as a backward pass. deepinv works on [0, 1] images: a prior with the finite data
range ``[lo, hi]`` is mapped by ``x01 = (x - lo) / w`` with ``w = hi - lo``; the linear operator
is unchanged, so the measurement becomes ``y01 = (y - A(lo 1)) / w`` with noise ``sigma_y / w``,
and results are mapped back. Budgets: deepinv's DPS spends ``num_steps - 1`` denoiser calls,
so it gets ``nfe + 1`` steps; DiffPIR spends ``max_iter``; DDRM one call per entry of its
``sigmas``, which are the run's schedule without its final 0, in [0, 1] units. DDRM needs the
operator's SVD (``operators.deepinv_svd``). deepinv's DDRM and DiffPIR draw from the global
generator: it is seeded from the run's generator.
"""
from __future__ import annotations

import dataclasses
import math

import deepinv
import torch

from ..network_passes import denoise_counted
from ..operators.base import LinearOperator
from ..operators.deepinv_svd import to_deepinv_decomposable
from ..priors.deepinv_denoiser import ToDeepinv
from ..rewards.likelihood import GaussianLikelihood
from .peer_methods import METHODS


class _CountedPrior(ToDeepinv):
    def forward(self, x, sigma, *args, **kwargs):
        return denoise_counted(super().forward, x, sigma, *args, **kwargs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepinvPeer:
    """``method``: ``"dps"`` (``weight`` is deepinv's ``weight``), ``"ddrm"`` (``eta``, ``etab``)
    or ``"diffpir"`` (``zeta``, ``lambda_``); defaults are deepinv's."""

    method: str = "dps"
    weight: float = 1.0
    eta: float = 0.85
    etab: float = 1.0
    zeta: float = 0.1
    lambda_: float = 7.0
    needs = "gradient"

    def __call__(self, denoiser, reward, x, sigmas, /, *, generator=None, callback=None, **cond):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not isinstance(reward, GaussianLikelihood) or not isinstance(reward.operator, LinearOperator):
            raise ValueError("deepinv's DPS/DDRM/DiffPIR here need a GaussianLikelihood with a linear operator")
        lo, hi = map(float, denoiser.data_range)
        if math.isinf(lo) or math.isinf(hi):
            raise ValueError("the deepinv peers map the prior's data range to [0, 1]; it must be finite, "
                             f"got {denoiser.data_range}")
        width, operator, shape = hi - lo, reward.operator, tuple(x.shape[1:])
        nfe = len(sigmas) - 1
        seed = int(torch.randint(1, 2**31 - 1, (1,), generator=generator))
        offset = operator(torch.full((1, *shape), lo, dtype=x.dtype, device=x.device))
        y01 = ((reward.y - offset) / width).expand(x.shape[0], *reward.y.shape[1:])
        sigma_y01 = reward.sigma_y / width
        model = _CountedPrior(denoiser)
        if self.method == "dps":
            physics = deepinv.physics.LinearPhysics(A=operator, A_adjoint=operator.adjoint,
                                                    noise_model=deepinv.physics.GaussianNoise(sigma=sigma_y01))
            solver = deepinv.sampling.DPS(model, num_steps=nfe + 1, weight=self.weight, dtype=x.dtype,
                                          rng=torch.Generator().manual_seed(seed))
            out = solver(y01, physics, x_init=tuple(x.shape), seed=seed)
        elif self.method == "ddrm":
            physics = to_deepinv_decomposable(operator, shape, sigma_y01, device=x.device)
            solver = deepinv.sampling.DDRM(model, sigmas=(sigmas[:-1] / width).tolist(), eta=self.eta, etab=self.etab)
            out = solver(y01, physics, seed=seed)
        else:
            physics = deepinv.physics.LinearPhysics(A=operator, A_adjoint=operator.adjoint,
                                                    noise_model=deepinv.physics.GaussianNoise(sigma=sigma_y01))
            solver = deepinv.sampling.DiffPIR(model, deepinv.optim.data_fidelity.L2(), sigma=sigma_y01,
                                              max_iter=nfe, zeta=self.zeta, lambda_=self.lambda_)
            out = solver(y01, physics, seed=seed)
        return (lo + width * out).to(x.dtype)
