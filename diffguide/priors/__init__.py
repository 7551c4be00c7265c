"""Priors: denoisers ``D(x, sigma) -> E[x0 | x]`` in VE form, and adapters for foreign models."""
from .deepinv_denoiser import FromDeepinv, ToDeepinv
from .diffusers_unet import DiffusersDenoiser
from .gaussian import GaussianPrior
from .gaussian_mixture import GaussianMixturePrior

__all__ = ["DiffusersDenoiser", "FromDeepinv", "ToDeepinv", "GaussianPrior", "GaussianMixturePrior"]
