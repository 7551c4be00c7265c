"""The shipped digit classifiers (clean and noise-aware) and the classifier reward."""
import functools
import shutil

import pytest
import torch

from diffguide.data.digits import load_digits_split
from diffguide.models import DigitClassifier, load_digit_classifier
from diffguide.models.load import CLEAN, WEIGHTS_DIR
from diffguide.rewards.base import Reward
from diffguide.rewards.classifier import ClassifierReward


@functools.cache
def held_out():
    _, _, x, y = load_digits_split()
    return x, y


@torch.no_grad()
def held_out_accuracy(model, sigma=None, seed=0):
    x, y = held_out()
    if sigma is None:
        logits = model(x)
    else:
        x = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        logits = model(x, sigma)
    return (logits.argmax(dim=1) == y).float().mean().item()


def test_clean_classifier_loads_frozen_and_is_accurate_on_held_out():
    model = load_digit_classifier()
    assert isinstance(model, DigitClassifier) and not model.noise_aware and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert held_out_accuracy(model) >= 0.97
    with pytest.raises(ValueError, match="not noise-aware"):
        model(held_out()[0][:2], 0.5)


def test_noise_aware_classifier_sees_through_light_noise_but_not_heavy_noise():
    model = load_digit_classifier(noise_aware=True)
    assert model.noise_aware and not model.training
    assert held_out_accuracy(model, sigma=0.1) >= 0.95
    assert held_out_accuracy(model, sigma=1.0) >= 0.8
    heavy = [held_out_accuracy(model, sigma=20.0, seed=s) for s in range(3)]
    assert sum(heavy) / 3 <= 0.3  # chance is 0.1
    x = held_out()[0][:4]
    assert model(x, torch.tensor([0.0, 0.1, 1.0, 80.0])).shape == (4, 10)


def test_corrupted_weights_raise_naming_the_file(tmp_path):
    folder = tmp_path / CLEAN
    shutil.copytree(WEIGHTS_DIR / CLEAN, folder)
    assert held_out_accuracy(load_digit_classifier(folder=folder)) >= 0.97
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100:-90] = bytes(b ^ 0xFF for b in data[-100:-90])
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors"):
        load_digit_classifier(folder=folder)


def test_loader_rejects_the_wrong_form():
    with pytest.raises(ValueError, match="noise-aware"):
        load_digit_classifier(noise_aware=False, folder=WEIGHTS_DIR / "digit-classifier-noisy")


def test_classifier_reward_scores_the_true_label_higher_and_passes_gradients():
    x, y = held_out()
    x, y = x[:32], y[:32]
    reward = ClassifierReward(load_digit_classifier(), y)
    assert isinstance(reward, Reward) and reward.differentiable
    x0 = x.clone().requires_grad_(True)
    r = reward(x0)
    assert r.shape == (32,) and (r <= 0).all()
    r.sum().backward()
    assert x0.grad is not None and x0.grad.abs().sum() > 0
    wrong = ClassifierReward(load_digit_classifier(), (y + 1) % 10)
    with torch.no_grad():
        assert (reward(x) > wrong(x)).float().mean() >= 0.95
        single = ClassifierReward(load_digit_classifier(), 3)(x)
    assert single.shape == (32,)
    assert single[y == 3].mean() > single[y != 3].mean()


def test_classifier_reward_checks_shape_label_and_batch():
    reward = ClassifierReward(load_digit_classifier(), 7)
    reward.check((1, 16, 16))
    for shape in [(3, 16, 16), (1, 32, 32), (16, 16)]:
        with pytest.raises(ValueError, match="shape"):
            reward.check(shape)
    with pytest.raises(ValueError, match="floating"):
        reward.check((1, 16, 16), torch.int64)
    with pytest.raises(ValueError, match="0..9"):
        ClassifierReward(load_digit_classifier(), 10)
    with pytest.raises(ValueError, match="batch"):
        ClassifierReward(load_digit_classifier(), torch.tensor([1, 2]))(torch.zeros(3, 1, 16, 16))



def test_training_draws_are_seeded_and_in_range():
    from diffguide.training.classifier import augment, draw_sigmas

    x = held_out()[0][:64]
    a, b = (augment(x, torch.Generator().manual_seed(0)) for _ in range(2))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6 and not torch.equal(a, x)
    sigma = draw_sigmas(4096, torch.Generator().manual_seed(0), clean_fraction=0.2)
    assert sigma.min() >= 0.002 and sigma.max() <= 80
    assert 0.15 < (sigma == 0.002).float().mean() < 0.25
    noisy = sigma[sigma > 0.002].log()
    assert noisy.median().item() == pytest.approx(torch.tensor(0.002 * 80).sqrt().log().item(), abs=0.3)
