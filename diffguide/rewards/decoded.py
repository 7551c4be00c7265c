"""Rewards and likelihoods of a latent prior's images: the decoder as part of the guidance path.

A latent prior (``priors.latent.LatentPrior``) moves latents ``z``, but a user's reward scores images
and a measurement is of an image. ``in_image_space(reward, prior)`` makes the reward of a clean
latent estimate ``z0``

    reward:      r(Dec(z0))                       (``DecodedReward``)
    likelihood:  log p(y | A(Dec(z0)))            (the same likelihood of the operator ``A @ Decoding``)

so every solver runs unchanged: a gradient method's backward pass goes through the decoder (and is
counted there, ``decoder_backward_passes``), a derivative-free method only decodes. A likelihood
keeps its class, measurement and noise model, so DPS's step size, EnKG's ensemble update in
measurement space and the divergence checks read it as before. ``Solver.__call__`` applies this to
every reward that scores clean estimates when the prior (or the prior under a guided denoiser) has
a decoder.
"""
from __future__ import annotations

import torch

from ..operators.base import Operator
from ..types import wrapped_denoisers
from .base import Reward
from .likelihood import Likelihood


class Decoding(Operator):
    """The operator ``z -> Dec(z)`` of a latent prior (differentiable; counted as decoder passes)."""

    def __init__(self, prior):
        super().__init__()
        self.prior = prior

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior.decode(z)

    def output_shape(self, input_shape):
        if tuple(input_shape) != tuple(self.prior.shape):
            raise ValueError(f"latents of shape {tuple(input_shape)}; this decoder takes {tuple(self.prior.shape)}")
        return tuple(self.prior.image_shape)


class DecodedReward(Reward):
    """``r(z0) = reward(prior.decode(z0))``: a reward on images, read on a latent prior's clean estimates."""

    def __init__(self, reward: Reward, prior):
        super().__init__()
        self.reward, self.decoding = reward, Decoding(prior)

    @property
    def differentiable(self) -> bool:
        return self.reward.differentiable

    def forward(self, z0: torch.Tensor) -> torch.Tensor:
        return self.reward(self.decoding.forward(z0))

    def check(self, shape, dtype=torch.float32) -> None:
        self.decoding.output_shape(shape)
        self.reward.check(self.decoding.prior.image_shape, dtype)


def in_image_space(reward: Reward, prior) -> Reward:
    """``reward`` of ``prior``'s decoded clean estimates (module docstring)."""
    if isinstance(reward, Likelihood):
        return reward.with_operator(reward.operator @ Decoding(prior))
    return DecodedReward(reward, prior)


def image_decoder(denoiser):
    """The latent prior whose ``decode`` makes the images of ``denoiser``'s states, or None (pixel space):
    ``denoiser`` itself or the prior a guided denoiser wraps."""
    return next((inner for inner in wrapped_denoisers(denoiser) if hasattr(inner, "decode")), None)


def split_decoding(operator: Operator) -> tuple[Operator, Decoding | None]:
    """``(A, decoding)`` for an operator ``A @ Decoding(prior)`` that ``in_image_space`` built, else
    ``(operator, None)``: the part that acts on images, and the decoder in front of it."""
    inner = getattr(operator, "inner", None)
    if isinstance(inner, Decoding):
        return operator.outer, inner
    return operator, None
