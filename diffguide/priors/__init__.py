"""Priors: denoisers ``D(x, sigma) -> E[x0 | x]`` in VE form, and adapters for foreign models."""
from .deepinv_denoiser import FromDeepinv, ToDeepinv
from .diffusers_unet import DiffusersDenoiser
from .embedded import available, card, load
from .gaussian import GaussianPrior
from .gaussian_mixture import GaussianMixturePrior
from .latent import LatentPrior
from .pipeline import load_pipeline_prior
from .prompt_encoder import PromptEncoder

__all__ = ["load", "available", "card", "DiffusersDenoiser", "FromDeepinv", "ToDeepinv", "GaussianPrior", "GaussianMixturePrior",
           "LatentPrior", "load_pipeline_prior", "PromptEncoder"]
