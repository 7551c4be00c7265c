"""DDPM training of a class-conditional UNet on a pluggable image source, on the CPU.

Loss: mean squared error between the network output and the scheduler's target
(v or epsilon) at uniformly drawn timesteps. Labels are replaced by the null
label with probability ``label_dropout`` so that one network gives both
conditional and unconditional predictions (classifier-free guidance).
AdamW with linear warmup then a constant learning rate; an EMA of the weights
is what gets exported. The learning rate does not depend on the total number of
steps, so a run can be extended: ``train(steps=4)`` then ``train(steps=8)`` in
the same folder gives the same losses as ``train(steps=8)``.

Data: a data source is called once, with no argument or, if it takes one, with
the run folder, where it may cache what it costs to make (the ns-vorticity
fields). An optional ``augment(x0, generator)`` maps each batch before it is
noised (e.g. the symmetries of the data), drawing from the training generator,
so runs stay deterministic and resumable.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from diffguide.training.export import export_final
from diffguide.training.loop import jsonable, optimise, smoothed_loss
from diffguide.training.settings import check_run_folder, check_settings
from diffguide.training.unet import NULL_LABEL, make_scheduler, make_unet, scheduler_config, unet_config

#: () -> (images, labels), or (run folder) -> (images, labels)
DataSource = Callable[..., tuple[Tensor, Tensor]]
Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def train(
    data: DataSource,
    steps: int,
    out: str | Path,
    *,
    batch_size: int = 64,
    lr: float = 5e-4,
    warmup_steps: int = 500,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    label_dropout: float = 0.15,
    seed: int = 0,
    bf16: bool = True,
    unet: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    checkpoint_every_seconds: float = 180.0,
    log_every: int = 200,
    progress: bool = True,
    augment: Augmentation | None = None,
    device: str | torch.device = "cpu",
) -> Path:
    """Train for ``steps`` optimizer steps in total, resuming from ``out`` if it holds a checkpoint.

    ``data`` returns float images (N, C, H, W) in the model's value range and int64
    labels (N,) in 0..9; an unconditional ``unet`` config (no ``num_class_embeds``)
    ignores the labels. A source that takes an argument is given ``out``, the run
    folder. ``augment(x0, generator)``, if given, maps every batch before it is noised.
    ``bf16`` runs the network under bfloat16 autocast on ``device`` (the loss and the weights
    stay float32). Batches are drawn on the CPU from the seeded generator and moved to
    ``device``, so a run resumes on another device with the same draws; checkpoints and the
    export are written from CPU copies. Returns the exported ``out/final``. Settings out of range are a ``ValueError``
    before anything is written; a run whose loss is not finite is not exported.
    """
    check_settings(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, weight_decay=weight_decay,
                   grad_clip=grad_clip, ema_decay=ema_decay, label_dropout=label_dropout,
                   checkpoint_every_seconds=checkpoint_every_seconds, log_every=log_every, seed=seed)
    out = Path(out)
    check_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = data(out) if inspect.signature(data).parameters else data()
    config = jsonable(
        dict(
            unet=unet or unet_config(),
            scheduler=scheduler or scheduler_config(),
            training=dict(
                data=f"{data.__module__}.{data.__qualname__}",
                batch_size=batch_size,
                lr=lr,
                warmup_steps=warmup_steps,
                weight_decay=weight_decay,
                grad_clip=grad_clip,
                ema_decay=ema_decay,
                label_dropout=label_dropout,
                seed=seed,
                bf16=bf16,
                **({} if augment is None else dict(augment=f"{augment.__module__}.{augment.__qualname__}")),
            ),
        )
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_unet(config["unet"]).to(device)
    noise_schedule = make_scheduler(config["scheduler"])
    ema, losses, elapsed = optimise(
        model, config, out, steps,
        lambda generator: _loss(model, noise_schedule, images, labels, batch_size, label_dropout, generator, bf16,
                                augment),
        lr=lr, warmup_steps=warmup_steps, weight_decay=weight_decay, grad_clip=grad_clip, ema_decay=ema_decay,
        seed=seed, checkpoint_every_seconds=checkpoint_every_seconds, log_every=log_every, progress=progress,
        data_shape=tuple(images.shape))
    card = dict(
        data=dict(
            source=config["training"]["data"],
            description=inspect.getdoc(data),
            n_train=len(images),
            shape=list(images.shape[1:]),
            value_range=[images.min().item(), images.max().item()],
        ),
        training_steps=len(losses),
        final_loss_ema=smoothed_loss(losses),
        training_seconds=round(elapsed, 1),
    )
    return export_final(out, ema, config, card)


def _loss(
    model: torch.nn.Module,
    noise_schedule: Any,
    images: Tensor,
    labels: Tensor,
    batch_size: int,
    label_dropout: float,
    generator: torch.Generator,
    bf16: bool,
    augment: Augmentation | None = None,
) -> Tensor:
    """One batch of the DDPM loss, all draws from ``generator``."""
    index = torch.randint(0, len(images), (batch_size,), generator=generator)
    x0, y = images[index], labels[index]
    if augment is not None:
        x0 = augment(x0, generator)
    y = torch.where(torch.rand(batch_size, generator=generator) < label_dropout, NULL_LABEL, y)
    t = torch.randint(0, noise_schedule.config.num_train_timesteps, (batch_size,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    x = noise_schedule.add_noise(x0, eps, t)
    if noise_schedule.config.prediction_type == "v_prediction":
        target = noise_schedule.get_velocity(x0, eps, t)
    else:
        target = eps
    device = model.device
    x, t, y, target = x.to(device), t.to(device), y.to(device), target.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        prediction = model(x, t, class_labels=y if model.config.num_class_embeds else None).sample
    return F.mse_loss(prediction.float(), target)
