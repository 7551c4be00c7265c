"""scikit-learn's handwritten digits at 16x16, in [-1, 1], with a fixed 80/20 split.

The 1797 8x8 images (values 0..16) are upsampled with antialiased bicubic
interpolation and clamped to the data range. The held-out indices (20%, stratified
by class) are committed data in ``digits_split.json``, written once by
:func:`write_digits_split`, so that tests and benchmarks use only images the
prior never saw.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

SPLIT_FILE = Path(__file__).with_name("digits_split.json")
RESOLUTION = 16
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0


def digits_images() -> tuple[Tensor, Tensor]:
    """All 1797 digits as float32 (N, 1, 16, 16) images in [-1, 1] and int64 labels (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=RESOLUTION, mode="bicubic", align_corners=False, antialias=True)
    x = (2.0 * x - 1.0).clamp(-1.0, 1.0)
    return x, torch.as_tensor(digits.target, dtype=torch.int64)


def write_digits_split(path: Path = SPLIT_FILE) -> list[int]:
    """Draw the seeded, class-stratified held-out indices and write them to ``path``.

    Run once; the file is committed so that the split never depends on the
    scikit-learn version.
    """
    from sklearn.model_selection import train_test_split

    _, labels = digits_images()
    index = list(range(len(labels)))
    _, held_out = train_test_split(
        index, test_size=HELD_OUT_FRACTION, stratify=labels.numpy(), random_state=SPLIT_SEED
    )
    held_out = sorted(int(i) for i in held_out)
    record = {
        "dataset": "sklearn.datasets.load_digits",
        "n_images": len(index),
        "held_out_fraction": HELD_OUT_FRACTION,
        "stratified_by": "label",
        "seed": SPLIT_SEED,
        "held_out": held_out,
    }
    Path(path).write_text(json.dumps(record) + "\n")
    return held_out


def load_digits_split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train images, train labels, held-out images, held-out labels (see :func:`digits_images`)."""
    images, labels = digits_images()
    held = torch.zeros(len(labels), dtype=torch.bool)
    held[json.loads(SPLIT_FILE.read_text())["held_out"]] = True
    return images[~held], labels[~held], images[held], labels[held]


def digits_train() -> tuple[Tensor, Tensor]:
    """Training part of the digits split: (1437, 1, 16, 16) images in [-1, 1] and labels 0-9.

    Source: sklearn ``load_digits``, 8x8 upsampled (bicubic, antialiased) to 16x16;
    split: the 80% not listed in ``diffguide/data/digits_split.json`` (stratified, seed 0).
    """
    train_x, train_y, _, _ = load_digits_split()
    return train_x, train_y
