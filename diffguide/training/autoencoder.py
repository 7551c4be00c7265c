"""Training the autoencoder of a latent prior: a diffusers ``AutoencoderKL`` on 32x32 RGB crops.

The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, "High-Resolution Image
Synthesis with Latent Diffusion Models", sec. 3.1), without its perceptual and adversarial terms:

    L = mean |x - Dec(z)|^2 + beta * KL(q(z | x) || N(0, I)) / (pixels),   z ~ q(z | x),

with a small ``beta`` (1e-6 per pixel, as Stable Diffusion's KL-f8 autoencoder) so that the latent
keeps the image and the posterior is nearly a point. Three levels with two downsamplings map
(3, 32, 32) to (4, 8, 8), 12 numbers per latent number; the encoder and decoder are convolutional
with one attention block in their middle, so they run on images of any size whose sides are
multiples of 4.

The latent scaling factor is set after training as Stable Diffusion sets it: one over the standard
deviation of the training latents (posterior means), so that the diffusion model sees latents of
unit variance. It is stored in the autoencoder's ``config.json`` (``scaling_factor``), where
pipelines read it.

Runs are resumable as ``train.train``'s are: checkpoints in ``out/checkpoint``, a log in
``out/train.log``, the EMA weights exported to ``out/final/vae`` with a card that states the
reconstruction PSNR on the held-out photo crops.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL
from torch import Tensor

from diffguide.checked_weights import write_card
from diffguide.training.loop import jsonable, optimise, smoothed_loss
from diffguide.training.settings import check_run_folder, check_settings

VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"
#: per-pixel weight of the KL term (Stable Diffusion's KL-f8 autoencoder uses 1e-6)
KL_WEIGHT = 1e-6
#: how many training crops set the latent scaling factor
SCALING_SAMPLES = 4096


def autoencoder_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``AutoencoderKL`` for the photos autoencoder: (3, 32, 32) -> (4, 8, 8),
    channels (32, 64, 96), one residual block per level, 1.70M parameters."""
    config = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=32,
    )
    config.update(overrides)
    return config


def train_autoencoder(
    data: Callable[[], tuple[Tensor, Tensor]],
    steps: int,
    out: str | Path,
    *,
    held_out: Callable[[], Tensor] | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup_steps: int = 200,
    ema_decay: float = 0.999,
    seed: int = 0,
    bf16: bool = True,
    config: dict[str, Any] | None = None,
    checkpoint_every_seconds: float = 180.0,
    log_every: int = 200,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Path:
    """Train for ``steps`` optimizer steps in total, resuming from ``out``; export ``out/final/vae``.

    ``data()`` returns images (N, 3, H, W) in [-1, 1] (and labels, ignored); ``held_out()``, if
    given, returns images whose reconstruction PSNR (peak-to-peak 2) the card records. Settings out
    of range are a ``ValueError`` before anything is written; a non-finite loss stops the run."""
    check_settings(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, ema_decay=ema_decay,
                   checkpoint_every_seconds=checkpoint_every_seconds, log_every=log_every, seed=seed)
    out = Path(out)
    check_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    images = data()[0]
    run_config = jsonable(dict(autoencoder=config or autoencoder_config(),
                               training=dict(data=f"{data.__module__}.{data.__qualname__}", batch_size=batch_size,
                                             lr=lr, warmup_steps=warmup_steps, ema_decay=ema_decay, seed=seed,
                                             bf16=bf16, kl_weight=KL_WEIGHT)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoencoderKL(**run_config["autoencoder"]).to(device)
    factor = 2 ** (len(model.config.block_out_channels) - 1)
    latent_shape = (model.config.latent_channels, images.shape[-2] // factor, images.shape[-1] // factor)

    def batch_loss(generator: torch.Generator) -> Tensor:
        batch = images[torch.randint(0, len(images), (batch_size,), generator=generator)]
        return autoencoder_loss(model, batch, torch.randn((batch_size, *latent_shape), generator=generator), bf16)

    ema, losses, elapsed = optimise(model, run_config, out, steps, batch_loss, lr=lr, warmup_steps=warmup_steps,
                                    weight_decay=0.0, grad_clip=1.0, ema_decay=ema_decay, seed=seed,
                                    checkpoint_every_seconds=checkpoint_every_seconds, log_every=log_every,
                                    progress=progress, data_shape=tuple(images.shape), desc="train autoencoder")
    card = dict(data=dict(source=run_config["training"]["data"], description=inspect.getdoc(data),
                          n_train=len(images), shape=list(images.shape[1:])),
                training_steps=len(losses), final_loss_ema=smoothed_loss(losses), training_seconds=round(elapsed, 1))
    return export_autoencoder(out, ema, run_config, card, images, held_out)


def autoencoder_loss(model: AutoencoderKL, x: Tensor, eps: Tensor, bf16: bool) -> Tensor:
    """The module docstring's loss on a batch, with the posterior sample ``mean + std * eps``."""
    x, eps = x.to(model.device), eps.to(model.device)
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        posterior = model.encode(x).latent_dist
        z = posterior.mean + posterior.std * eps
        reconstruction = model.decode(z).sample
    kl = posterior.kl().float() / x[0].numel()
    return (reconstruction.float() - x).pow(2).mean() + KL_WEIGHT * kl.mean()


@torch.no_grad()
def reconstruction_psnr(model: AutoencoderKL, images: Tensor, batch: int = 256) -> float:
    """Mean PSNR (peak-to-peak 2, images in [-1, 1]) of ``Dec(mean of q(z | x))`` over ``images``."""
    values = []
    for chunk in images.split(batch):
        chunk = chunk.to(model.device)
        reconstruction = model.decode(model.encode(chunk).latent_dist.mean).sample.clamp(-1, 1)
        mse = (reconstruction - chunk).pow(2).flatten(1).mean(1)
        values.append(10 * torch.log10(4.0 / mse))
    return float(torch.cat(values).mean())


@torch.no_grad()
def latent_scaling_factor(model: AutoencoderKL, images: Tensor, batch: int = 256) -> float:
    """One over the standard deviation of the posterior means of ``images`` (Stable Diffusion's rule)."""
    means = torch.cat([model.encode(chunk.to(model.device)).latent_dist.mean for chunk in images.split(batch)])
    return float(1.0 / means.float().std())


def export_autoencoder(out: Path, ema: dict[str, Tensor], run_config: dict, card: dict, images: Tensor,
                       held_out: Callable[[], Tensor] | None) -> Path:
    """Write ``out/final/vae`` (config with the scaling factor, float32 safetensors) and ``out/final/card.json``."""
    model = AutoencoderKL(**run_config["autoencoder"])
    model.load_state_dict(ema)
    model.eval()
    subset = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:SCALING_SAMPLES]]
    scaling = latent_scaling_factor(model, subset)
    model.register_to_config(scaling_factor=scaling)
    final = out / "final"
    model.save_pretrained(final / "vae", safe_serialization=True)
    evidence = dict(reconstruction_psnr_train=round(reconstruction_psnr(model, subset[:1024]), 2))
    if held_out is not None:
        evidence["reconstruction_psnr_held_out"] = round(reconstruction_psnr(model, held_out()), 2)
        evidence["held_out"] = f"{held_out.__module__}.{held_out.__qualname__}"
    full_card = dict(card, kind="autoencoder", parameters=sum(p.numel() for p in model.parameters()),
                     scaling_factor=scaling, latent_channels=model.config.latent_channels,
                     downsampling=2 ** (len(model.config.block_out_channels) - 1), evidence=evidence,
                     autoencoder=run_config["autoencoder"], training=run_config["training"],
                     torch=torch.__version__, diffusers=diffusers.__version__)
    write_card(final, final / "vae" / VAE_WEIGHTS, full_card, [final / "vae" / "config.json"])
    return final
