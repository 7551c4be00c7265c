"""Natural RGB photographs that installed packages ship, in [-1, 1], for the photos prior.

Training images: every RGB photograph that ``skimage.data`` ships inside the package
(no pooch download), except the two evaluation images ``astronaut`` and ``coffee``:
``chelsea`` (``cat`` is the same array), ``rocket``, ``hubble_deep_field``,
``immunohistochemistry``, ``retina`` and the left view of ``stereo_motorcycle``
(the right view is a near duplicate); scikit-learn's two sample images ``china`` and
``flower``; matplotlib's sample photograph ``grace_hopper``. Left out: the synthetic
RGB images (``colorwheel``, ``logo``, matplotlib's 128x128 ``Minduka`` icon), the
grayscale ones, and those that need a download (``brain``, ``cells3d``, ``eagle``,
``kidney``, ``lily``, ``skin``, ...).

Each image is used at full and at half resolution (2x2 mean), so a crop sees
more of a scene; the evaluation images are halved the same way before cropping.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffguide.training.unet import NULL_LABEL

TRAIN_IMAGES = ("chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle",
                "china", "flower", "grace_hopper")
#: the training photographs that come from scikit-learn and matplotlib rather than ``skimage.data``
SKLEARN_IMAGES = ("china", "flower")
MATPLOTLIB_IMAGES = ("grace_hopper",)
EVAL_IMAGES = ("astronaut", "coffee")
#: top-left corner of each 128x128 evaluation crop in the half-resolution image
#: (astronaut 256x256: face and helmet ring; coffee 200x300: cup, saucer and spoon).
EVAL_CORNERS = {"astronaut": (0, 48), "coffee": (8, 84)}
EVAL_SIZE = 128
CROP_SIZE = 32
BANK_SIZE = 100_000
SEED = 0


def _pixels(name: str):
    """The (H, W, 3) uint8 array of a named photograph, from the package that ships it."""
    if name in SKLEARN_IMAGES:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name in MATPLOTLIB_IMAGES:
        import matplotlib.cbook
        import matplotlib.image

        return matplotlib.image.imread(matplotlib.cbook.get_sample_data(f"{name}.jpg"))
    import skimage.data

    image = getattr(skimage.data, name)()
    return image[0] if name == "stereo_motorcycle" else image


def load_photo(name: str) -> Tensor:
    """A named photograph as a float32 (3, H, W) image in [-1, 1]: ``skimage.data.<name>()`` (left view for
    ``stereo_motorcycle``), or scikit-learn's or matplotlib's sample image of that name."""
    image = _pixels(name)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"photograph {name} has shape {image.shape}; expected an (H, W, 3) RGB image")
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 127.5 - 1.0


def halve(image: Tensor) -> Tensor:
    """Half resolution by 2x2 means (odd last rows/columns dropped)."""
    return F.avg_pool2d(image[None], 2)[0]


def random_crops(images: list[Tensor], n: int, size: int, generator: torch.Generator) -> Tensor:
    """``n`` (3, size, size) crops: a uniform image of ``images``, a uniform position, a flip with probability 1/2."""
    which = torch.randint(len(images), (n,), generator=generator)
    corner = torch.rand(n, 2, generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    crops = torch.empty(n, 3, size, size)
    for k in range(n):
        image = images[which[k]]
        top = int(corner[k, 0] * (image.shape[1] - size + 1))
        left = int(corner[k, 1] * (image.shape[2] - size + 1))
        crop = image[:, top:top + size, left:left + size]
        crops[k] = crop.flip(-1) if flip[k] else crop
    return crops


def photos_train() -> tuple[Tensor, Tensor]:
    """100000 random 32x32 RGB crops in [-1, 1], half of them horizontally flipped, all with the null label.

    Source: scikit-image ``data`` photographs chelsea, rocket, hubble_deep_field,
    immunohistochemistry, retina and stereo_motorcycle (left), scikit-learn's china and
    flower, and matplotlib's grace_hopper, each at full and half
    resolution (2x2 mean); image and scale drawn uniformly, position uniformly
    (torch generator seed 0). ``astronaut`` and ``coffee`` are held out for evaluation.
    """
    images = []
    for name in TRAIN_IMAGES:
        image = load_photo(name)
        images += [image, halve(image)]
    crops = random_crops(images, BANK_SIZE, CROP_SIZE, torch.Generator().manual_seed(SEED))
    return crops, torch.full((BANK_SIZE,), NULL_LABEL, dtype=torch.int64)


def photos_eval() -> Tensor:
    """The two (3, 128, 128) evaluation crops in [-1, 1], astronaut then coffee, from the half-resolution images."""
    crops = []
    for name in EVAL_IMAGES:
        top, left = EVAL_CORNERS[name]
        crops.append(halve(load_photo(name))[:, top:top + EVAL_SIZE, left:left + EVAL_SIZE])
    return torch.stack(crops)


def photos_eval_tiles() -> Tensor:
    """The evaluation crops cut into (3, 32, 32) tiles, row by row: 32 held-out training-size images in [-1, 1]."""
    crops = photos_eval()
    tiles = crops.unfold(2, CROP_SIZE, CROP_SIZE).unfold(3, CROP_SIZE, CROP_SIZE)  # (2, 3, 4, 4, 32, 32)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, CROP_SIZE, CROP_SIZE)
