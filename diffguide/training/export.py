"""Export trained EMA weights in diffusers pipeline layout, with a JSON card.

``DIR/final/unet/`` (config.json + diffusion_pytorch_model.safetensors),
``DIR/final/scheduler/scheduler_config.json`` and ``DIR/final/card.json``.
The folder loads with ``UNet2DModel.from_pretrained(DIR/final/unet)`` and
``DDPMScheduler.from_pretrained(DIR/final/scheduler)``, or as a prior with
``DiffusersDenoiser.from_pretrained(DIR/final)``, which first checks the three files against
the card's ``files_sha256`` and reads its ``null_label`` (class-conditional networks).

Weights are stored in float32, or in float16 when float32 would pass
:data:`WEIGHTS_LIMIT_BYTES` (the size limit of a shipped prior); ``from_pretrained`` loads
either into a float32 network. The card's ``weights_dtype`` says which.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import diffusers
import torch
from torch import Tensor

from diffguide.checked_weights import write_card
from diffguide.training.unet import NULL_LABEL, make_scheduler, make_unet

WEIGHTS = "diffusion_pytorch_model.safetensors"
#: above this many bytes of float32 weights the export stores float16
WEIGHTS_LIMIT_BYTES = 8_000_000


def export_final(
    out: Path, ema: dict[str, Tensor], config: dict[str, Any], card: dict[str, Any]
) -> Path:
    """Write ``out/final/`` from the EMA weights; ``card`` entries are added to the generated ones."""
    final = out / "final"
    unet = make_unet(config["unet"])
    unet.load_state_dict(ema)
    parameters = sum(p.numel() for p in unet.parameters())
    weights_dtype = torch.float32 if 4 * parameters <= WEIGHTS_LIMIT_BYTES else torch.float16
    unet.to(weights_dtype).save_pretrained(final / "unet", safe_serialization=True)
    make_scheduler(config["scheduler"]).save_pretrained(final / "scheduler")
    weights = final / "unet" / WEIGHTS
    full_card = dict(
        card,
        parameters=parameters,
        weights_dtype=str(weights_dtype).removeprefix("torch."),
        resolution=config["unet"]["sample_size"],
        channels=config["unet"]["in_channels"],
        class_labels=(f"0-{NULL_LABEL - 1}, {NULL_LABEL} = null (unconditional)"
                      if config["unet"].get("num_class_embeds") else "none (unconditional)"),
        schedule=config["scheduler"],
        prediction_type=config["scheduler"]["prediction_type"],
        training=config["training"],
        torch=torch.__version__,
        diffusers=diffusers.__version__,
    )
    if config["unet"].get("num_class_embeds"):
        full_card["null_label"] = NULL_LABEL
    files = [final / "unet" / "config.json", final / "scheduler" / "scheduler_config.json"]
    write_card(final, weights, full_card, files)
    return final
