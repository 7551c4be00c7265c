"""The networks of the digits, photos and ns-vorticity priors, and their noise schedule.

Digits network: a diffusers ``UNet2DModel`` for 16x16x1 images, class-conditional with
``num_class_embeds=11`` (labels 0-9; label 10 is the null label used for
unconditional / classifier-free guided sampling). Channels (32, 64, 64) at
16x16 -> 8x8 -> 4x4, self-attention at 8x8 and in the 4x4 middle block.

Digits autoguidance network (``digits-autoguide``): the digits network at a quarter of the width,
channels (16, 32, 32) with the same blocks and attention, trained briefly on the same data: the
"weaker version of the same model" that autoguidance (Karras et al. 2024) guides away from.

Photos network: unconditional RGB, channels (48, 96, 96) at 32x32 -> 16x16 -> 8x8,
two residual blocks per level and no attention anywhere, so it is purely
convolutional: trained on 32x32 crops, it runs on any image whose sides are
multiples of 4 (e.g. 128x128 crops). 3.42M parameters (6.8 MB as float16 weights): what
``diffguide train --data photos`` trains now. The shipped ``photos`` weights are still the first
photos network, channels (32, 64, 64) and 1.52M parameters (its card), trained with
``photos_unet_config(block_out_channels=(32, 64, 64))``; the larger one ships once it beats them.

ns-vorticity network: unconditional, one channel, trained on whole periodic 64x64
vorticity fields (``diffguide.data.ns_vorticity_set``). Channels (16, 32, 64, 96, 96)
at 64x64 -> 32x32 -> 16x16 -> 8x8 -> 4x4, one residual block per level, self-attention
only in the 4x4 middle block (no position embedding, so it too commutes with shifts).
2.54M parameters. Narrow at full resolution, it trains on about half as many fields
per second as a (32, 64, 96) network at 32x32 on fields reduced to 32x32, i.e. on over
twice as many pixels per second, and it keeps all of shell k = 16 of the spectrum,
of which a 32x32 grid holds only about 70% (its Nyquist modes stand for part of it).
Every convolution pads circularly (``padding_mode = "circular"``; diffusers has no
such option, so :func:`make_unet` sets it on each ``Conv2d`` and records it in the
UNet's config, where :func:`restore_padding_mode` finds it after loading). Circular
padding keeps the fields periodic, so no seam at the border spreads energy over
the high wavenumbers, and it makes the network commute exactly with shifts by
multiples of 2**(levels - 1) pixels. With five levels that is 16 pixels, one period
of the forcing -4 cos(4y) and a symmetry of the data. With four, a shift by 8 pixels
(half a period, which flips the sign of cos(4y)) would leave the learned distribution
unchanged, so the data's mean -0.32 cos(4y) profile would average out to 0.

Photos-latent network: the UNet of the ``photos-latent`` prior, on the (4, 8, 8) latents of its
autoencoder (``diffguide.training.autoencoder``; 32x32 photos crops). Channels (32, 64, 128) at
8x8 -> 4x4 -> 2x2, two residual blocks per level, no attention, so like the photos network it runs
on latents of any size whose sides are multiples of 4 (the 32x32 latents of 128x128 crops). 3.54M
parameters, stored as float16 (7.1 MB).

Chorales network: unconditional piano rolls (2 channels, 48 pitches x 64 sixteenth-note frames,
``diffguide.music.piano_roll``), channels (16, 32, 64) at 48x64 -> 24x32 -> 12x16, two residual
blocks per level, self-attention at 12x16 and in the middle block. A 2-D network because its
convolutions commute with the two symmetries of the music: a shift along pitch is a transposition
and a shift along time moves the excerpt; attention at the coarsest level lets every frame see
the whole four bars (key and cadence). Narrow at full resolution, as a step costs about
0.85 s at batch 64 on two CPU cores (wider levels cost more than they gave in a first test).

Schedule: 1000 DDPM steps with the cosine ("squaredcos_cap_v2") betas of
Nichol & Dhariwal (2021): a linear schedule destroys a 16x16 image within the
first third of the steps, the cosine one spreads the signal-to-noise ratio evenly.
Its last step is almost pure noise (alpha_bar ~ 2e-9), where an epsilon target
gives no information about x0; the v target (Salimans & Ho, 2022),
``v = sqrt(abar) * eps - sqrt(1 - abar) * x0``, has unit variance at every step
and turns into x0 prediction there, which trains well at small scale.
Timesteps are spaced "trailing" so that few-step samplers start at the last step.
"""
from __future__ import annotations

from typing import Any

from diffusers import DDPMScheduler, UNet2DModel

from ..music.piano_roll import CHANNELS, FRAMES, PITCHES
from ..priors.unet_padding import PADDING_MODE, set_padding_mode

NULL_LABEL = 10
#: the key in a UNet config (ours, and the saved ``config.json``) naming how its convolutions pad


def unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the digits prior; ``overrides`` replace entries."""
    config = dict(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=32,
        norm_num_groups=8,
        num_class_embeds=NULL_LABEL + 1,
    )
    config.update(overrides)
    return config


def autoguidance_unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the digits prior's weaker twin (module docstring)."""
    return unet_config(**{"block_out_channels": (16, 32, 32), "attention_head_dim": 16, **overrides})


def photos_unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the photos prior; ``overrides`` replace entries."""
    config = dict(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(48, 96, 96),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        add_attention=False,
        norm_num_groups=8,
    )
    config.update(overrides)
    return config


def photos_latent_unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the photos-latent prior (module docstring)."""
    return photos_unet_config(**{"sample_size": 8, "in_channels": 4, "out_channels": 4,
                                 "block_out_channels": (32, 64, 128), **overrides})


def chorales_unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the chorales prior (module docstring);
    ``overrides`` replace entries."""
    config = dict(
        sample_size=(PITCHES, FRAMES),
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        block_out_channels=(16, 32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=32,
        norm_num_groups=8,
    )
    config.update(overrides)
    return config


def ns_vorticity_unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the ns-vorticity prior and its ``padding_mode``;
    ``overrides`` replace entries."""
    config = dict(
        sample_size=64,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32, 64, 96, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 5,
        up_block_types=("UpBlock2D",) * 5,
        attention_head_dim=32,
        norm_num_groups=8,
        padding_mode="circular",
    )
    config.update(overrides)
    return config


def scheduler_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``DDPMScheduler`` (also valid for ``DDIMScheduler``)."""
    config = dict(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
        timestep_spacing="trailing",
    )
    config.update(overrides)
    return config


def make_unet(config: dict[str, Any]) -> UNet2DModel:
    """A freshly initialised network (initialisation draws from torch's global RNG).

    ``config`` holds ``UNet2DModel``'s arguments and optionally ``padding_mode``
    (``"zeros"``, the default, or e.g. ``"circular"``), applied by :func:`set_padding_mode`."""
    arguments = {k: v for k, v in config.items() if k != PADDING_MODE}
    unet = UNet2DModel(**arguments)
    if config.get(PADDING_MODE, "zeros") != "zeros":
        set_padding_mode(unet, config[PADDING_MODE])
    return unet


def make_scheduler(config: dict[str, Any]) -> DDPMScheduler:
    """The training noise schedule."""
    return DDPMScheduler(**config)
