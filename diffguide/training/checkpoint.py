"""Training state on disk: tensors in safetensors, scalars in JSON, no pickle.

A checkpoint is the folder ``DIR/checkpoint/`` with ``state.safetensors``
(model, EMA, optimizer tensors, RNG state, loss history) and ``state.json``
(step, elapsed time, run configuration, optimizer hyper-parameters). It is
written to a temporary folder first and swapped in, so an interruption while
saving leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

CHECKPOINT = "checkpoint"


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    step: int
    elapsed_seconds: float
    config: dict[str, Any]
    model: dict[str, Tensor]
    ema: dict[str, Tensor]
    optimizer: dict[str, Any]
    generator: Tensor
    loss_history: Tensor


def save_checkpoint(out: Path, state: TrainState) -> None:
    """Write ``state`` to ``out/checkpoint/``, replacing the previous one atomically."""
    tensors = {f"model.{k}": v for k, v in state.model.items()}
    tensors |= {f"ema.{k}": v for k, v in state.ema.items()}
    tensors["generator"] = state.generator
    tensors["loss_history"] = state.loss_history
    opt_scalars: dict[str, dict[str, Any]] = {}
    for index, slots in state.optimizer["state"].items():
        for name, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                opt_scalars.setdefault(str(index), {})[name] = value
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}  # written from the CPU
    scalars = dict(
        step=state.step,
        elapsed_seconds=state.elapsed_seconds,
        config=state.config,
        optimizer_param_groups=state.optimizer["param_groups"],
        optimizer_scalars=opt_scalars,
    )
    tmp, final, old = (out / f"{CHECKPOINT}{s}" for s in (".tmp", "", ".old"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, tmp / "state.safetensors")
    (tmp / "state.json").write_text(json.dumps(scalars, indent=1))
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path) -> TrainState | None:
    """The state saved in ``out/checkpoint/``, or None when there is none."""
    folder = out / CHECKPOINT
    if not folder.exists() and (out / f"{CHECKPOINT}.old").exists():
        folder = out / f"{CHECKPOINT}.old"
    if not (folder / "state.json").exists():
        return None
    try:
        tensors = load_file(folder / "state.safetensors")
        scalars = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:  # truncated or damaged files
        raise ValueError(f"the checkpoint in {folder} is damaged ({type(error).__name__}: {error}); "
                         "move it away to start over") from None
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    for index, slots in scalars["optimizer_scalars"].items():
        opt_state.setdefault(int(index), {}).update(slots)
    return TrainState(
        step=scalars["step"],
        elapsed_seconds=scalars["elapsed_seconds"],
        config=scalars["config"],
        model=_prefixed(tensors, "model."),
        ema=_prefixed(tensors, "ema."),
        optimizer={"state": opt_state, "param_groups": scalars["optimizer_param_groups"]},
        generator=tensors["generator"],
        loss_history=tensors["loss_history"],
    )


def _prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

