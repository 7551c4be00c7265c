"""The networks of the digits and photos priors, and their noise schedule.

Digits network: a diffusers ``UNet2DModel`` for 16x16x1 images, class-conditional with
``num_class_embeds=11`` (labels 0-9; label 10 is the null label used for
unconditional / classifier-free guided sampling). Channels (32, 64, 64) at
16x16 -> 8x8 -> 4x4, self-attention at 8x8 and in the 4x4 middle block.

Photos network: unconditional RGB, channels (32, 64, 64) at 32x32 -> 16x16 -> 8x8,
two residual blocks per level and no attention anywhere, so it is purely
convolutional: trained on 32x32 crops, it runs on any image whose sides are
multiples of 4 (e.g. 128x128 crops). 1.52M parameters,
6.1 MB of float32 weights.

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

NULL_LABEL = 10


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


def photos_unet_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``UNet2DModel`` for the photos prior; ``overrides`` replace entries."""
    config = dict(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        add_attention=False,
        norm_num_groups=8,
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
    """A freshly initialised network (initialisation draws from torch's global RNG)."""
    return UNet2DModel(**config)


def make_scheduler(config: dict[str, Any]) -> DDPMScheduler:
    """The training noise schedule."""
    return DDPMScheduler(**config)
