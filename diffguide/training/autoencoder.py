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
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL
from torch import Tensor
from tqdm.auto import tqdm

from diffguide.checked_weights import write_card
from diffguide.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from diffguide.training.settings import check_run_folder, check_settings
from diffguide.training.train import diverged_error, jsonable, smoothed_loss, update_ema

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
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    losses: list[float] = []
    step, elapsed = 0, 0.0
    saved = load_checkpoint(out)
    if saved is not None:
        if saved.config != run_config:
            raise ValueError(f"checkpoint in {out} was made with config {saved.config}, not {run_config}")
        model.load_state_dict(saved.model)
        ema = {k: v.to(device) for k, v in saved.ema.items()}
        optimizer.load_state_dict(saved.optimizer)
        generator.set_state(saved.generator)
        losses, step, elapsed = saved.loss_history.tolist(), saved.step, saved.elapsed_seconds

    def checkpoint() -> None:
        save_checkpoint(out, TrainState(step=step, elapsed_seconds=elapsed, config=run_config,
                                        model=model.state_dict(), ema=ema, optimizer=optimizer.state_dict(),
                                        generator=generator.get_state(),
                                        loss_history=torch.tensor(losses, dtype=torch.float32)))

    log = (out / "train.log").open("a")
    if step == 0:
        log.write(f"# config {json.dumps(run_config)}\n# data {tuple(images.shape)}\n")
    bar = tqdm(total=steps, initial=step, disable=not progress, desc="train autoencoder", dynamic_ncols=True)
    model.train()
    t_last_checkpoint = t_last_log = time.monotonic()
    step_last_log = step
    while step < steps:
        t_step = time.monotonic()
        current_lr = lr * min(1.0, (step + 1) / max(warmup_steps, 1))
        for group in optimizer.param_groups:
            group["lr"] = current_lr
        batch = images[torch.randint(0, len(images), (batch_size,), generator=generator)]
        loss = autoencoder_loss(model, batch, torch.randn((batch_size, model.config.latent_channels,
                                                            *latent_size(model, batch.shape[-2:])),
                                                           generator=generator), bf16)
        if not torch.isfinite(loss):
            raise diverged_error(f"loss {loss.item()} at step {step + 1}", out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        update_ema(ema, model, min(ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        step += 1
        now = time.monotonic()
        elapsed += now - t_step
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{smoothed_loss(losses):.5f}")
        if step % log_every == 0 or step == steps:
            recent = losses[step_last_log:step]
            rate = (step - step_last_log) / max(now - t_last_log, 1e-9)
            log.write(f"step {step}  loss {sum(recent) / len(recent):.6f}  lr {current_lr:.2e}  it/s {rate:.2f}\n")
            log.flush()
            t_last_log, step_last_log = now, step
        if now - t_last_checkpoint >= checkpoint_every_seconds:
            checkpoint()
            t_last_checkpoint = time.monotonic()
    bar.close()
    checkpoint()
    log.close()
    if not math.isfinite(smoothed_loss(losses)):
        raise diverged_error(f"final loss {smoothed_loss(losses)}", out)
    card = dict(data=dict(source=run_config["training"]["data"], description=inspect.getdoc(data),
                          n_train=len(images), shape=list(images.shape[1:])),
                training_steps=step, final_loss_ema=smoothed_loss(losses), training_seconds=round(elapsed, 1))
    return export_autoencoder(out, {k: v.cpu() for k, v in ema.items()}, run_config, card, images, held_out)


def latent_size(model: AutoencoderKL, size) -> tuple[int, int]:
    """The latent's (h, w) for images of (H, W): each downsampling halves it."""
    factor = 2 ** (len(model.config.block_out_channels) - 1)
    return int(size[0]) // factor, int(size[1]) // factor


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
