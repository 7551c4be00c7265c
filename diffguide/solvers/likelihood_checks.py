"""What the restoration solvers need from their reward, checked before sampling.

DDRM, DDNM, PiGDM and DiffPIR work with the linear algebra of a Gaussian likelihood's operator;
DAPS, RED-diff and PnP-DM with its noise level. Each refuses anything else with a message that
names what it got and what to use instead.
"""
from __future__ import annotations

from ..operators.base import LinearOperator
from ..rewards.decoded import Decoding
from ..rewards.likelihood import GaussianLikelihood


def require_gaussian(solver: str, reward, why: str = "") -> None:
    """``ValueError`` unless ``reward`` is a ``GaussianLikelihood``; ``why`` says what the solver uses it for."""
    if not isinstance(reward, GaussianLikelihood):
        raise ValueError(f"{solver} needs a GaussianLikelihood (operator, y, sigma_y){' ' + why if why else ''}, "
                         f"got {type(reward).__name__}")


def require_linear_gaussian(solver: str, reward) -> None:
    """``ValueError`` unless ``reward`` is a ``GaussianLikelihood`` with a ``LinearOperator``."""
    require_gaussian(solver, reward)
    if isinstance(getattr(reward.operator, "inner", None), Decoding):
        raise ValueError(f"{solver} works with the linear algebra of the operator on images, but on a latent prior "
                         "the measurement is of decoded latents, which is not linear in the state; use DPS, DAPS, "
                         "RED-diff or a derivative-free solver (EnKG)")
    if not isinstance(reward.operator, LinearOperator):
        raise ValueError(f"{solver} needs a linear operator (a LinearOperator), got "
                         f"{type(reward.operator).__name__}; use a gradient-based solver such as DPS, or DAPS")
