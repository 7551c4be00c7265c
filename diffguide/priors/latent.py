"""A latent diffusion prior: a denoiser over an autoencoder's latents, and the decoder to images.

Latent diffusion (Rombach et al. 2022) trains the diffusion model on ``z = s * (E(x) - shift)``,
the encoder's latents scaled by the autoencoder's ``scaling_factor`` ``s`` (and shifted by its
``shift_factor``, 0 for Stable Diffusion 1/2). The prior's state is ``z``: ``shape`` is the latent's,
``D(z, sigma, **cond)`` is the UNet's clean-latent estimate, and solvers move ``z`` exactly as they
move pixels. What a user scores or measures is the image

    decode(z) = Dec(z / s + shift),        encode(x) = s * (mean of q(z | x) - shift),

so ``Solver.__call__`` hands rewards and likelihoods ``decode(x0(z))`` (``rewards.decoded``): the
reward of a latent is ``r(Dec(x0(z)))`` and a measurement's likelihood ``log p(y | A(Dec(x0(z))))``.
Gradient methods backpropagate through the decoder; derivative-free ones only decode.

Decoder passes are counted as network passes are, in their own counters (``decoder_passes``,
``decoder_backward_passes``), since a decoder can cost as much as the UNet.

Conditioning goes to the UNet: ``encoder_hidden_states`` for a text-conditioned
``UNet2DConditionModel``, made from prompts by ``encode_prompt`` when the pipeline has a text
encoder. Without one in ``cond`` the prior uses the empty prompt's embedding (its null condition),
as a pipeline does for unconditional sampling.
"""
from __future__ import annotations

import math

import torch

from ..counting import count
from ..network_passes import backward_counted
from ..types import sigma_batch
from .prompt_encoder import PromptEncoder

#: the UNet keyword of a text condition
TEXT_CONDITION = "encoder_hidden_states"
#: the magnitude of a latent for the divergence checks: latents are scaled to about unit variance, so a
#: state or result whose RMS is several times this is a diverged run, not a sample
STATE_SCALE = 4.0


class LatentPrior(torch.nn.Module):
    """``D(z, sigma, **cond)`` of a denoiser over latents, with the autoencoder's ``decode``/``encode``.

    ``denoiser``: a ``DiffusersDenoiser`` whose UNet runs on latents; ``vae``: a diffusers
    ``AutoencoderKL``, ``AutoencoderTiny`` or ``VQModel`` (its ``config.scaling_factor`` and
    ``shift_factor`` are used); ``prompt_encoder``: a ``PromptEncoder`` when the pipeline has a text
    encoder; ``image_range``: the decoded images' value range (``(-1, 1)`` for diffusers
    autoencoders). ``shape`` is the latent's, ``image_shape`` the decoded image's."""

    def __init__(self, denoiser, vae, *, prompt_encoder: PromptEncoder | None = None,
                 image_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__()
        self.denoiser, self.vae, self.prompt_encoder = denoiser, vae, prompt_encoder
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.image_range = (float(image_range[0]), float(image_range[1]))
        self.shape = tuple(denoiser.shape)
        self.sigma_min, self.sigma_max = denoiser.sigma_min, denoiser.sigma_max
        self.data_range = (-math.inf, math.inf)  # latents are unbounded: solvers do not clip them
        self.state_scale = STATE_SCALE
        if self.shape[0] != self.latent_channels:
            raise ValueError(f"the UNet takes {self.shape[0]}-channel inputs, but the autoencoder's latents have "
                             f"{self.latent_channels} channels")
        self._null_text: torch.Tensor | None = None

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def downsampling(self) -> int:
        """How many image pixels one latent pixel spans along each side."""
        config = self.vae.config  # AutoencoderKL and VQModel name their levels one way, AutoencoderTiny another
        levels = config.block_out_channels if "block_out_channels" in config else config.encoder_block_out_channels
        return 2 ** (len(levels) - 1)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The decoded image's per-sample shape (C, H, W)."""
        f = self.downsampling
        return (int(self.vae.config.out_channels), self.shape[1] * f, self.shape[2] * f)

    @property
    def unet(self):
        """The latent UNet (where attention and feature hooks attach)."""
        return self.denoiser.unet

    @property
    def text_conditioned(self) -> bool:
        """True when the UNet cross-attends to ``encoder_hidden_states`` (a ``UNet2DConditionModel``)."""
        unet = getattr(self.denoiser, "unet", None)  # None for a closed-form prior over latents
        return unet is not None and getattr(unet.config, "cross_attention_dim", None) is not None

    @property
    def model_config(self) -> dict:
        return dict(self.denoiser.model_config, latent=True, image_shape=list(self.image_shape),
                    autoencoder=type(self.vae).__name__, scaling_factor=self.scaling_factor,
                    shift_factor=self.shift_factor, text_encoder=self.prompt_encoder is not None)

    def forward(self, z: torch.Tensor, sigma, /, **cond) -> torch.Tensor:
        if self.text_conditioned:
            cond[TEXT_CONDITION] = self._text_condition(cond.get(TEXT_CONDITION), z)
        return self.denoiser(z, sigma_batch(sigma, z), **cond)

    def _text_condition(self, embedding: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """The text embedding for each sample of ``z``: as given (batch 1 is expanded), else the empty prompt's."""
        if embedding is None:
            embedding = self.null_text_embedding()
        if embedding.ndim != 3 or embedding.shape[0] not in (1, z.shape[0]):
            raise ValueError(f"encoder_hidden_states must be (1 or {z.shape[0]}, tokens, "
                             f"{self.unet.config.cross_attention_dim}), got {tuple(embedding.shape)}")
        return embedding.to(device=z.device, dtype=self.unet.dtype).expand(z.shape[0], -1, -1)

    def null_text_embedding(self) -> torch.Tensor:
        """The empty prompt's embedding (1, tokens, dim): the null condition of a text-conditioned UNet."""
        if self._null_text is None:
            if self.prompt_encoder is None:
                raise ValueError("this text-conditioned prior has no text encoder: pass encoder_hidden_states "
                                 "(a (B, tokens, dim) tensor) for the prompt, and for the null prompt in "
                                 "guidance (NullCondition({'encoder_hidden_states': e0}))")
            self._null_text = self.prompt_encoder([""])
        return self._null_text

    def encode_prompt(self, prompts: str | list[str]) -> torch.Tensor:
        """``encoder_hidden_states`` (B, tokens, dim) of one prompt or a list, by the pipeline's text encoder."""
        if self.prompt_encoder is None:
            raise ValueError("this prior has no text encoder (no text_encoder/ and tokenizer/ in its folder); "
                             "pass encoder_hidden_states as a tensor instead of a prompt")
        return self.prompt_encoder([prompts] if isinstance(prompts, str) else list(prompts))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``Dec(z / s + shift)``: images (B, *image_shape) in about ``image_range``, in ``z``'s dtype, not
        clamped (so a gradient reaches every pixel). One counted decoder pass; its backward is counted too."""
        count("decoder_passes")
        latent = (z / self.scaling_factor + self.shift_factor).to(self.vae.dtype)
        image = self.vae.decode(latent).sample.to(z.dtype)
        return backward_counted(image, "decoder_backward_passes")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``s * (mean of q(z | x) - shift)``: the latent of images ``x`` (B, *image_shape), in ``x``'s dtype."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {tuple(x.shape[1:])} do not fit this prior's decoder, which makes "
                             f"{self.image_shape}; use prior.with_image_shape({tuple(x.shape[1:])})")
        encoded = self.vae.encode(x.to(self.vae.dtype))
        latent = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
        return ((latent - self.shift_factor) * self.scaling_factor).to(x.dtype)

    def with_shape(self, shape) -> "LatentPrior":
        """The same networks for latents of another (C, h, w) shape (fully convolutional use)."""
        resized = LatentPrior(self.denoiser.with_shape(tuple(shape)), self.vae, prompt_encoder=self.prompt_encoder,
                              image_range=self.image_range)
        resized._null_text = self._null_text
        return resized

    def with_image_shape(self, image_shape) -> "LatentPrior":
        """The prior whose decoded images have ``image_shape`` (C, H, W); H and W must be multiples of the
        autoencoder's downsampling factor."""
        channels, height, width = (int(s) for s in image_shape)
        f = self.downsampling
        if channels != self.image_shape[0]:
            raise ValueError(f"the image has {channels} channel(s), but the decoder makes {self.image_shape[0]}")
        if height % f or width % f or height < f or width < f:
            raise ValueError(f"image size {height}x{width}: a latent prior's images have sides that are multiples "
                             f"of {f}, its autoencoder's downsampling factor")
        return self.with_shape((self.latent_channels, height // f, width // f))

    def set_precision(self, precision: str) -> "LatentPrior":
        """The UNet's forward pass under autocast in ``precision`` (the decoder keeps its dtype); returns self."""
        self.denoiser.set_precision(precision)
        return self


def image_shape_of(prior) -> tuple[int, ...]:
    """The per-sample shape of the images a prior's samples show as: a latent prior's decoded ones, else its own."""
    return tuple(getattr(prior, "image_shape", prior.shape))


def image_range_of(prior) -> tuple[float, float]:
    """The value range of the images a prior's samples show as."""
    return getattr(prior, "image_range", prior.data_range)


def images_of(prior, samples: torch.Tensor) -> torch.Tensor:
    """A prior's samples as images: a latent prior's decoded (without gradients), others as they are."""
    if not hasattr(prior, "decode"):
        return samples
    with torch.no_grad():
        return prior.decode(samples)


def sized_for_images(prior, image_shape):
    """The prior for images of ``image_shape``: ``with_image_shape`` of a latent prior, else ``with_shape``."""
    resize = getattr(prior, "with_image_shape", None) or prior.with_shape
    return resize(tuple(image_shape))
