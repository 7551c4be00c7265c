"""The priors shipped inside the package: ``load("digits")``, ``load("photos")``.

Each lives in ``diffguide/weights/NAME/`` in diffusers pipeline layout (``unet/``,
``scheduler/``) with ``card.json`` beside it, whose ``weights_sha256`` is checked at
load: a mismatch (a corrupted or replaced file) is a ``ValueError``. Nothing is
downloaded. A class-conditional prior's last class is its null label (the
unconditional model), used when no ``class_labels`` is passed.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checked_weights import WEIGHTS_DIR, verify
from .diffusers_unet import DiffusersDenoiser

WEIGHTS_FILE = "unet/diffusion_pytorch_model.safetensors"


def available() -> list[str]:
    """Names of the priors shipped with this installation."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/unet") if (p.parent / "card.json").is_file())


def card(name: str, folder: Path | None = None) -> dict:
    """The JSON card of a shipped prior (data, split, schedule, training, sha256, evidence)."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / name
    file = folder / "card.json"
    if not file.is_file():
        raise ValueError(f"no shipped prior named {name!r} (no {file}); available: {', '.join(available()) or 'none'}")
    return json.loads(file.read_text())


def load(name: str, folder: Path | str | None = None) -> DiffusersDenoiser:
    """A shipped prior as a ready denoiser, after checking its weights against the card."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / name
    info = card(name, folder)
    verify(folder / WEIGHTS_FILE, info["weights_sha256"])
    prior = DiffusersDenoiser.from_pretrained(folder, data_range=tuple(info.get("data_range", (-1.0, 1.0))))
    classes = prior.unet.config.num_class_embeds
    if classes:
        prior.null_label = classes - 1
    return prior.eval().requires_grad_(False)
