"""The priors shipped inside the package: ``load("digits")``, ``load("photos")``.

Each lives in ``diffguide/weights/NAME/`` in diffusers pipeline layout (``unet/``,
``scheduler/``) with ``card.json`` beside it, whose ``files_sha256`` (the sha256 of the
weights, ``unet/config.json`` and ``scheduler/scheduler_config.json``) is checked at load:
a mismatch (a corrupted, edited or replaced file) is a ``ValueError`` naming the file.
Nothing is downloaded. A class-conditional prior's card names its ``null_label`` (the
unconditional model), used when no ``class_labels`` is passed.
"""
from __future__ import annotations

from pathlib import Path

from ..checked_weights import CARD, WEIGHTS_DIR, read_card
from .diffusers_unet import DiffusersDenoiser
from .pipeline import is_latent_pipeline, load_pipeline_prior

WEIGHTS_FILE = "unet/diffusion_pytorch_model.safetensors"


def available() -> list[str]:
    """Names of the priors shipped with this installation."""
    return sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/unet") if (p.parent / CARD).is_file())


def card(name: str, folder: Path | None = None) -> dict:
    """The JSON card of a shipped prior (data, split, schedule, training, sha256, evidence)."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / name
    file = folder / CARD
    if not file.is_file():
        raise ValueError(f"no shipped prior named {name!r} (no {file}); available: {', '.join(available()) or 'none'}")
    return read_card(file)


def load(name: str, folder: Path | str | None = None):
    """A shipped prior as a ready denoiser (a ``LatentPrior`` for a latent pipeline such as ``photos-latent``),
    after checking every file of it against the card."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR / name
    card(name, folder)  # a shipped prior must have one: the loaders check the files against it
    if is_latent_pipeline(folder):
        return load_pipeline_prior(folder)
    return DiffusersDenoiser.from_pretrained(folder).eval().requires_grad_(False)
