"""The training set of the ``photos-latent`` prior: the photos crops as latents of its autoencoder.

The latent UNet is trained on ``z = s * mean of q(z | x)`` for the 100000 training crops of
``diffguide.data.photos`` (32x32 RGB, the same crops as the pixel-space ``photos`` prior), encoded by
the shipped ``photos-latent`` autoencoder (``diffguide/weights/photos-latent/vae``, trained by
``diffguide train --data photos-autoencoder``) with its scaling factor ``s``: (100000, 4, 8, 8) latents
of about unit variance. Encoding takes a few minutes on two CPU cores, so the latents are cached in
the run folder, keyed by the sha256 of the autoencoder's weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..checked_weights import WEIGHTS_DIR, sha256
from ..training.unet import NULL_LABEL
from .photos import photos_train

AUTOENCODER = WEIGHTS_DIR / "photos-latent" / "vae"
AUTOENCODER_WEIGHTS = "diffusion_pytorch_model.safetensors"
ENCODE_BATCH = 500


def photo_latents_train(run_folder: str | Path) -> tuple[Tensor, Tensor]:
    """100000 latents (100000, 4, 8, 8) of the photos training crops, scaled to unit variance, all with the null label.

    Source: ``diffguide.data.photos.photos_train`` (32x32 crops of the scikit-image, scikit-learn and
    matplotlib photographs; ``astronaut`` and ``coffee`` held out), encoded by the ``photos-latent``
    autoencoder (posterior means times its ``scaling_factor``), cached in ``RUN/data/``."""
    from diffusers import AutoencoderKL

    weights = AUTOENCODER / AUTOENCODER_WEIGHTS
    if not weights.is_file():
        raise ValueError(f"{weights}: no autoencoder; train it first with diffguide train --data photos-autoencoder "
                         "and copy its final/vae folder there")
    cache = Path(run_folder) / "data" / f"photo_latents_{sha256(weights)[:16]}.safetensors"
    if cache.is_file():
        latents = load_file(cache)["latents"]
    else:
        vae = AutoencoderKL.from_pretrained(AUTOENCODER, local_files_only=True, low_cpu_mem_usage=False).eval()
        crops = photos_train()[0]
        with torch.no_grad():
            latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in crops.split(ENCODE_BATCH)])
        latents = (latents * vae.config.scaling_factor).contiguous()
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"latents": latents}, cache)
    return latents, torch.full((len(latents),), NULL_LABEL, dtype=torch.int64)
