"""Existing training-free guidance methods as the special cases of TFG that its paper lists
(Ye et al., NeurIPS 2024).

Each is ``TFG`` with some of its hyper-parameters pinned. A pinned field is declared with
``init=False``: it cannot be passed, but it stays a dataclass field, so
``dataclasses.asdict(solver)`` is still the complete TFG configuration that ran. The free
fields keep TFG's defaults, except the schedules, which follow the authors' reference
implementations of each method, and MPGD's ``mu`` (30: mean guidance alone, capped at the noise
level, needs more strength on the normalised likelihood objective).

- ``FreeDoM`` (Yu, Wang, Zhao, Ghanem & Zhang, ICCV 2023): variance guidance with time travel
  (recurrence): ``mu = 0``, ``gamma = 0``.
- ``MPGD`` (He, Murata, Lai, Takida, Uesaka, Kim, Liao, Mitsufuji, Kolter, Salakhutdinov & Ermon,
  ICLR 2024), without the manifold projection: mean guidance only, ``rho = 0``, ``gamma = 0``,
  ``N_recur = 1``. No backward pass through the denoiser.
- ``LGD`` (Song, Zhang, Yin, Mardani, Liu, Kautz, Chen & Vahdat, ICML 2023), LGD-MC: variance
  guidance of the Monte-Carlo-smoothed reward, with the smoothing fixed to the diffusion's own
  ``sqrt(1 - abar_t)`` (``gamma = 1``, decreasing), ``mu = 0``, ``N_recur = 1``.
- ``UGD``, Universal Guidance (Bansal et al., ICLR 2024) in TFG's parametrisation: forward
  (variance) and backward (mean) guidance with recurrence, ``gamma = 0``. ``UniversalGuidance``
  is the same method in the paper's own parametrisation (``s(t)``, step size, ``eta = 0``).
"""
from __future__ import annotations

import dataclasses

from .tfg import TFG


def pinned(value):
    """A TFG field this special case fixes: part of ``asdict``, not an argument."""
    return dataclasses.field(default=value, init=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FreeDoM(TFG):
    """FreeDoM (Yu et al., ICCV 2023) as TFG with ``mu = gamma = 0``: variance guidance with time travel (``n_recur``)."""

    mu: float = pinned(0.0)
    n_iter: int = pinned(0)
    mu_schedule: str = pinned("constant")
    gamma: float = pinned(0.0)
    mc_samples: int = pinned(1)
    gamma_schedule: str = pinned("constant")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MPGD(TFG):
    """MPGD (He et al., ICLR 2024) as TFG with ``rho = gamma = 0``: mean guidance on the clean estimate alone, ``mu = 30``."""

    rho: float = pinned(0.0)
    rho_schedule: str = pinned("constant")
    n_recur: int = pinned(1)
    gamma: float = pinned(0.0)
    mc_samples: int = pinned(1)
    gamma_schedule: str = pinned("constant")
    mu_schedule: str = "constant"
    #: mean guidance alone needs a larger strength than TFG's default (chosen by ``benchmarks.defaults``)
    mu: float = 30.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LGD(TFG):
    """LGD-MC (Song et al., ICML 2023) as TFG: variance guidance of the reward smoothed at the diffusion's own scale."""

    mu: float = pinned(0.0)
    n_iter: int = pinned(0)
    mu_schedule: str = pinned("constant")
    n_recur: int = pinned(1)
    gamma: float = pinned(1.0)
    gamma_schedule: str = pinned("decrease")
    rho_schedule: str = "constant"


@dataclasses.dataclass(frozen=True, kw_only=True)
class UGD(TFG):
    """Universal guidance (Bansal et al., ICLR 2024) in TFG's parametrisation: variance and mean guidance, recurrence."""

    gamma: float = pinned(0.0)
    mc_samples: int = pinned(1)
    gamma_schedule: str = pinned("constant")
    rho_schedule: str = "constant"
    mu_schedule: str = "constant"
