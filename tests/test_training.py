"""The digits split and the resumable training loop (tiny model, a few steps)."""
import functools
import json

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from diffguide.data.digits import SPLIT_FILE, digits_images, load_digits_split, write_digits_split
from diffguide.training import NULL_LABEL, train, unet_config
from diffguide.training.checkpoint import load_checkpoint

TINY = unet_config(block_out_channels=(8, 16, 16), layers_per_block=1, attention_head_dim=8, norm_num_groups=4)


@functools.cache
def _sixteen():
    x, y, _, _ = load_digits_split()
    return x[:16], y[:16]


def tiny_data():
    """Sixteen fixed training digits."""
    return _sixteen()


def test_split_is_committed_deterministic_and_stratified(tmp_path):
    assert write_digits_split(tmp_path / "split.json") == json.loads(SPLIT_FILE.read_text())["held_out"]
    train_x, train_y, held_x, held_y = load_digits_split()
    again = load_digits_split()
    assert all(torch.equal(a, b) for a, b in zip((train_x, train_y, held_x, held_y), again))
    images, _ = digits_images()
    assert images.shape == (1797, 1, 16, 16) and images.min() == -1 and images.max() == 1
    held = sorted(json.loads(SPLIT_FILE.read_text())["held_out"])
    assert len(set(held)) == len(held_x) and len(train_x) + len(held_x) == len(images)
    assert torch.equal(held_x, images[held])
    for c in range(10):
        n_train, n_held = int((train_y == c).sum()), int((held_y == c).sum())
        assert abs(n_held - 0.2 * (n_train + n_held)) <= 1


def test_interrupted_training_resumes_exactly_and_exports(tmp_path):
    kwargs = dict(batch_size=8, warmup_steps=2, unet=TINY, progress=False, log_every=2)
    straight = train(tiny_data, 8, tmp_path / "straight", **kwargs)
    train(tiny_data, 4, tmp_path / "resumed", **kwargs)
    first = load_checkpoint(tmp_path / "resumed")
    resumed = train(tiny_data, 8, tmp_path / "resumed", **kwargs)

    after = load_checkpoint(tmp_path / "resumed")
    assert first.step == 4 and after.step == 8
    assert torch.equal(after.loss_history[:4], first.loss_history)
    assert torch.equal(after.loss_history, load_checkpoint(tmp_path / "straight").loss_history)
    card, card_straight = (json.loads((p / "card.json").read_text()) for p in (resumed, straight))
    assert card["training_steps"] == 8
    assert card["weights_sha256"] == card_straight["weights_sha256"]
    log = (tmp_path / "resumed" / "train.log").read_text()
    assert "step 4 " in log and "step 8 " in log

    unet = UNet2DModel.from_pretrained(resumed / "unet")
    scheduler = DDPMScheduler.from_pretrained(resumed / "scheduler")
    assert scheduler.config.prediction_type == card["prediction_type"]
    x = torch.zeros(2, 1, 16, 16)
    with torch.no_grad():
        out = unet(x, torch.tensor([999, 0]), class_labels=torch.tensor([3, NULL_LABEL])).sample
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_resume_with_other_config_is_refused(tmp_path):
    train(tiny_data, 1, tmp_path, batch_size=4, unet=TINY, progress=False)
    with pytest.raises(ValueError, match="config"):
        train(tiny_data, 2, tmp_path, batch_size=8, unet=TINY, progress=False)


def test_the_autoencoder_trainer_resumes_exactly_and_exports_a_checked_scaled_vae(tmp_path):
    from diffusers import AutoencoderKL

    from diffguide.checked_weights import read_card, verify_files
    from diffguide.training.autoencoder import autoencoder_config, train_autoencoder

    images = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    data, held_out = (lambda: (images, None)), (lambda: images[:4])
    kwargs = dict(held_out=held_out, batch_size=8, warmup_steps=2, progress=False, log_every=2,
                  config=autoencoder_config(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                            up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, sample_size=16))
    straight = train_autoencoder(data, 6, tmp_path / "straight", **kwargs)
    train_autoencoder(data, 3, tmp_path / "resumed", **kwargs)
    resumed = train_autoencoder(data, 6, tmp_path / "resumed", **kwargs)
    assert torch.equal(load_checkpoint(tmp_path / "resumed").loss_history,
                       load_checkpoint(tmp_path / "straight").loss_history)
    card = read_card(resumed / "card.json")
    assert card["weights_sha256"] == read_card(straight / "card.json")["weights_sha256"]
    verify_files(resumed, card, [resumed / "vae" / "config.json"])
    vae = AutoencoderKL.from_pretrained(resumed / "vae")
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean
    assert vae.config.scaling_factor == pytest.approx(card["scaling_factor"])
    assert float((latents * vae.config.scaling_factor).std()) == pytest.approx(1.0, rel=1e-4)
    assert card["downsampling"] == 2 and "reconstruction_psnr_held_out" in card["evidence"]
