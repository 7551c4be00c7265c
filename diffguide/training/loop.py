"""The optimisation loop every trainer shares: AdamW with linear warmup to a constant rate, gradient
clipping, an EMA of the weights, resumable checkpoints and a log.

``optimise(...)`` takes the model (already on its device), the run's JSON config (a checkpoint made
with another config is refused) and ``batch_loss(generator)``, one batch's loss with every random
draw from the training generator, so that a run continues exactly where it stopped. It returns the
EMA weights on the CPU, the loss history and the time spent; what to export is the caller's.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffguide.training.checkpoint import TrainState, load_checkpoint, save_checkpoint


def optimise(model: torch.nn.Module, config: dict[str, Any], out: Path, steps: int,
             batch_loss: Callable[[torch.Generator], Tensor], *, lr: float, warmup_steps: int, weight_decay: float,
             grad_clip: float, ema_decay: float, seed: int, checkpoint_every_seconds: float, log_every: int,
             progress: bool, data_shape: tuple[int, ...], desc: str = "train") -> tuple[dict[str, Tensor], list[float], float]:
    """Run ``steps`` optimizer steps in total from ``out``'s checkpoint (if any); returns
    ``(EMA weights on the CPU, losses, seconds)``. A non-finite loss stops the run before the state is spoilt."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    losses: list[float] = []
    step, elapsed = 0, 0.0
    saved = load_checkpoint(out)
    if saved is not None:
        if saved.config != config:
            raise ValueError(f"checkpoint in {out} was made with config {saved.config}, not {config}")
        model.load_state_dict(saved.model)
        ema = {k: v.to(device) for k, v in saved.ema.items()}
        optimizer.load_state_dict(saved.optimizer)
        generator.set_state(saved.generator)
        losses, step, elapsed = saved.loss_history.tolist(), saved.step, saved.elapsed_seconds

    def checkpoint() -> None:
        save_checkpoint(out, TrainState(step=step, elapsed_seconds=elapsed, config=config, model=model.state_dict(),
                                        ema=ema, optimizer=optimizer.state_dict(), generator=generator.get_state(),
                                        loss_history=torch.tensor(losses, dtype=torch.float32)))

    log = (out / "train.log").open("a")
    if step == 0:
        log.write(f"# config {json.dumps(config)}\n# data {tuple(data_shape)}\n")
    bar = tqdm(total=steps, initial=step, disable=not progress, desc=desc, dynamic_ncols=True)
    model.train()
    t_last_checkpoint = t_last_log = time.monotonic()
    step_last_log = step
    while step < steps:
        t_step = time.monotonic()
        current_lr = lr * min(1.0, (step + 1) / max(warmup_steps, 1))
        for group in optimizer.param_groups:
            group["lr"] = current_lr
        loss = batch_loss(generator)
        if not torch.isfinite(loss):  # stop before the state is spoilt: the last checkpoint stays good
            raise diverged_error(f"loss {loss.item()} at step {step + 1}", out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        update_ema(ema, model, min(ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        step += 1
        now = time.monotonic()
        elapsed += now - t_step
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{smoothed_loss(losses):.4g}")
        if step % log_every == 0 or step == steps:
            rate = (step - step_last_log) / max(now - t_last_log, 1e-9)
            recent = losses[step_last_log:step]
            log.write(f"step {step}  loss {sum(recent) / len(recent):.5f}  lr {current_lr:.2e}  it/s {rate:.2f}\n")
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
    return {k: v.cpu() for k, v in ema.items()}, losses, elapsed


def diverged_error(what: str, out: Path) -> ValueError:
    return ValueError(f"training diverged ({what}); nothing exported: check the data for NaN/Inf or lower the "
                      f"learning rate, and start over (another folder, or delete {out / 'checkpoint'})")


@torch.no_grad()
def update_ema(ema: dict[str, Tensor], model: torch.nn.Module, decay: float) -> None:
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            ema[name].lerp_(value, 1.0 - decay)
        else:
            ema[name].copy_(value)


def smoothed_loss(losses: list[float], decay: float = 0.99) -> float:
    """Exponential moving average of the loss history (bias-corrected)."""
    average, weight = 0.0, 0.0
    for value in losses[-2000:]:
        average = decay * average + (1 - decay) * value
        weight = decay * weight + (1 - decay)
    return average / weight if weight else float("nan")


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so configs compare equal."""
    return json.loads(json.dumps(value))
