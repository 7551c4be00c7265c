"""Priors: denoisers ``D(x, sigma) -> E[x0 | x]`` in VE form, and adapters for foreign models."""
from .deepinv_denoiser import FromDeepinv, ToDeepinv
from .diffusers_unet import DiffusersDenoiser
from .embedded import available, card, load
from .gaussian import GaussianPrior
from .gaussian_mixture import GaussianMixturePrior

__all__ = ["load", "available", "card", "DiffusersDenoiser", "FromDeepinv", "ToDeepinv", "GaussianPrior", "GaussianMixturePrior"]
