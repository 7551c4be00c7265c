"""The photos prior's data (held-out evaluation images, random crops) and its convolutional network."""
import json

import numpy as np
import skimage.data
import torch

from diffguide.data import photos
from diffguide.data.photos import (EVAL_CORNERS, EVAL_IMAGES, TRAIN_IMAGES, halve, load_photo, photos_eval,
                                   photos_train, random_crops)
from diffguide.priors.diffusers_unet import DiffusersDenoiser
from diffguide.training import NULL_LABEL, export, make_unet, train
from diffguide.training.unet import photos_unet_config


def _ramp(height=40, width=50):
    """An RGB image whose values increase strictly from left to right."""
    return torch.linspace(-1, 1, width).expand(3, height, width).clone()


def test_evaluation_images_are_never_training_images():
    assert not set(EVAL_IMAGES) & set(TRAIN_IMAGES)
    held_out = [getattr(skimage.data, name)() for name in EVAL_IMAGES]
    for name in TRAIN_IMAGES:
        image = load_photo(name)
        for scaled in (image, halve(image)):
            pixels = ((scaled + 1) * 127.5).permute(1, 2, 0).numpy()
            assert not any(pixels.shape == e.shape and np.allclose(pixels, e) for e in held_out), name


def test_evaluation_crops_are_halved_astronaut_and_coffee():
    crops = photos_eval()
    assert crops.shape == (2, 3, 128, 128) and crops.min() >= -1 and crops.max() <= 1
    for crop, name in zip(crops, EVAL_IMAGES):
        image = getattr(skimage.data, name)().astype(np.float64)
        half = (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4
        top, left = EVAL_CORNERS[name]
        expected = half[top:top + 128, left:left + 128] / 127.5 - 1
        np.testing.assert_allclose(crop.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_random_crops_are_windows_flipped_half_the_time_and_seeded():
    image = _ramp()
    crops = random_crops([image], 400, 32, torch.Generator().manual_seed(1))
    assert crops.shape == (400, 3, 32, 32) and crops.min() >= -1 and crops.max() <= 1
    step = image[0, 0, 1] - image[0, 0, 0]
    flipped = crops[:, 0, 0, 0] > crops[:, 0, 0, -1]
    assert 0.4 < flipped.float().mean() < 0.6
    for crop, flip in zip(crops, flipped):
        crop = crop.flip(-1) if flip else crop
        left = int(torch.round((crop[0, 0, 0] + 1) / step))
        assert torch.equal(crop, image[:, :32, left:left + 32])
    assert torch.equal(crops, random_crops([image], 400, 32, torch.Generator().manual_seed(1)))
    assert not torch.equal(crops, random_crops([image], 400, 32, torch.Generator().manual_seed(2)))


def test_training_bank_is_deterministic_unconditional_rgb_crops(monkeypatch):
    monkeypatch.setattr(photos, "BANK_SIZE", 64)
    images, labels = photos_train()
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1
    assert torch.equal(labels, torch.full((64,), NULL_LABEL))
    assert torch.equal(images, photos_train()[0])


def test_photos_network_is_small_and_fully_convolutional():
    config = photos_unet_config()
    unet = make_unet(config)
    assert sum(p.numel() for p in unet.parameters()) * 2 <= export.WEIGHTS_LIMIT_BYTES  # stored as float16
    assert not config.get("num_class_embeds") and not any("Attn" in b for b in config["down_block_types"])
    x = torch.zeros(1, 3, 128, 96)
    with torch.no_grad():
        assert unet(x, torch.tensor([500])).sample.shape == x.shape


def test_unconditional_training_exports_a_denoiser_for_larger_images(tmp_path):
    tiny = photos_unet_config(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4)

    def eight_crops():
        """Eight ramp crops."""
        return random_crops([_ramp()], 8, 32, torch.Generator().manual_seed(0)), torch.full((8,), NULL_LABEL)

    final = train(eight_crops, 2, tmp_path, batch_size=4, unet=tiny, progress=False)
    assert json.loads((final / "card.json").read_text())["class_labels"] == "none (unconditional)"
    denoiser = DiffusersDenoiser.from_pretrained(final, shape=(3, 64, 64))
    x = torch.zeros(2, 3, 64, 64)
    with torch.no_grad():
        assert denoiser(x, 0.1).shape == x.shape


def test_export_stores_float16_above_the_size_limit_and_loads_float32(tmp_path, monkeypatch):
    tiny = photos_unet_config(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4)

    def eight_crops():
        """Eight ramp crops."""
        return random_crops([_ramp()], 8, 32, torch.Generator().manual_seed(0)), torch.full((8,), NULL_LABEL)

    full = train(eight_crops, 2, tmp_path / "full", batch_size=4, unet=tiny, progress=False)
    monkeypatch.setattr(export, "WEIGHTS_LIMIT_BYTES", 1000)
    half = train(eight_crops, 2, tmp_path / "half", batch_size=4, unet=tiny, progress=False)
    cards = [json.loads((final / "card.json").read_text()) for final in (full, half)]
    assert [card["weights_dtype"] for card in cards] == ["float32", "float16"]
    sizes = [(final / "unet" / export.WEIGHTS).stat().st_size for final in (full, half)]
    assert sizes[1] < 0.6 * sizes[0]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outputs = []
    for final in (full, half):
        denoiser = DiffusersDenoiser.from_pretrained(final)
        assert next(denoiser.unet.parameters()).dtype == torch.float32
        with torch.no_grad():
            outputs.append(denoiser(x, 0.5))
    assert not torch.equal(*outputs)
    torch.testing.assert_close(outputs[1], outputs[0], atol=5e-3, rtol=0)
