"""A trained latent UNet and its autoencoder as one pipeline folder, as ``load_pipeline_prior`` reads it.

``diffguide train --data photos-latent`` exports the UNet to ``RUN/final`` (``unet/``, ``scheduler/``,
``card.json``); ``assemble_latent_pipeline`` then copies the autoencoder it was trained on into
``RUN/final/vae`` and writes ``model_index.json`` and one card that covers every file (the UNet's,
the scheduler's and the autoencoder's), keeping the UNet's card and adding the autoencoder's under
``autoencoder``. The folder is then a shipped prior's: copy it to ``diffguide/weights/photos-latent``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..checked_weights import CARD, read_card, write_card
from ..priors.pipeline import pipeline_files

#: the components of an unconditional latent pipeline, as ``model_index.json`` names them
MODEL_INDEX = {"_class_name": "LatentDiffusionPipeline", "unet": ["diffusers", "UNet2DModel"],
               "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDPMScheduler"]}


def assemble_latent_pipeline(final: Path, autoencoder: Path) -> Path:
    """Make ``final`` (a UNet export) a latent pipeline with the autoencoder folder ``autoencoder`` (its
    ``vae/`` and ``card.json``, as ``train_autoencoder`` exports it, or a shipped prior's folder)."""
    final, autoencoder = Path(final), Path(autoencoder)
    unet_card = read_card(final / CARD)
    autoencoder_card = read_card(autoencoder / CARD)
    autoencoder_card = autoencoder_card.get("autoencoder_card", autoencoder_card)
    if (final / "vae").exists():
        shutil.rmtree(final / "vae")
    shutil.copytree(autoencoder / "vae", final / "vae")
    (final / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=1) + "\n")
    stale = ("weights_file", "weights_bytes", "weights_sha256", "files_sha256")
    card = {key: value for key, value in unet_card.items() if key not in stale}
    card["kind"] = "latent"
    card["autoencoder_card"] = {key: value for key, value in autoencoder_card.items() if key not in stale}
    files = pipeline_files(final, ["unet", "vae", "scheduler"])
    write_card(final, final / "unet" / "diffusion_pytorch_model.safetensors", card, files)
    return final
