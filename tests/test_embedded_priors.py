"""The shipped priors load offline, check their weights, and sample."""
import json

import pytest
import torch

from diffguide.priors import available, load
from diffguide.priors.embedded import WEIGHTS_DIR, card
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM


@pytest.mark.parametrize("name", ["digits", "photos", "ns-vorticity", "chorales"])
def test_shipped_prior_loads_offline_and_samples(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert name in available()
    prior = load(name)
    info = card(name)
    assert info["weights_bytes"] <= 8 * 1024 * 1024
    sigmas = karras_sigmas(8, 0.01, 80.0)
    x = sigmas[0] * torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(0))
    samples = DDIM()(prior, None, x, sigmas)
    assert samples.shape == (2, *prior.shape) and torch.isfinite(samples).all()
    bound = max(abs(v) for v in prior.data_range)  # [-1, 1] for images, [-5, 5] for vorticity
    assert samples.abs().max() < 3 * bound  # in the data range up to sampler overshoot, not noise at sigma 80


def test_digits_prior_is_class_conditional_with_a_null_label():
    prior = load("digits")
    x = torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(0))
    unconditional = prior(x, 1.0)
    assert torch.equal(unconditional, prior(x, 1.0, class_labels=torch.full((2,), prior.null_label)))
    assert not torch.allclose(unconditional, prior(x, 1.0, class_labels=torch.tensor([3, 3])))


def test_unknown_prior_names_what_exists():
    with pytest.raises(ValueError, match="available: .*digits"):
        load("cifar")


def test_vorticity_prior_is_periodic_in_its_data_range_with_its_evidence():
    prior = load("ns-vorticity")
    assert prior.shape == (1, 64, 64) and prior.data_range == (-5.0, 5.0)
    assert prior.unet.conv_in.padding_mode == "circular"  # the flow lives on the periodic square
    x = torch.randn(1, *prior.shape, generator=torch.Generator().manual_seed(0))
    # four stride-2 downsamplings: equivariant to shifts by multiples of 16 pixels
    shifted = prior(x.roll(16, dims=-1), 1.0)
    assert torch.allclose(shifted, prior(x, 1.0).roll(16, dims=-1), atol=1e-4)
    evidence = card("ns-vorticity")["evidence"]
    assert evidence["passes"] and evidence["samples"] >= 256


@pytest.mark.parametrize("name", ["digits", "photos", "ns-vorticity", "chorales"])
def test_cards_hold_what_the_issue_asks(name):
    info = json.loads((WEIGHTS_DIR / name / "card.json").read_text())
    for key in ("data", "resolution", "schedule", "parameters", "training_steps", "final_loss_ema", "training_seconds", "weights_sha256",
                "files_sha256"):
        assert key in info, key


def test_chorales_prior_makes_rolls_that_read_as_music():
    from diffguide.data.chorales import chorales_eval
    from diffguide.music.statistics import excerpt_statistics, overlapping_area, shuffled
    from diffguide.solvers.ddim import DDPM

    prior = load("chorales")
    assert prior.shape == (2, 48, 64) and prior.data_range == (-1.0, 1.0)
    generator = torch.Generator().manual_seed(0)
    sigmas = karras_sigmas(20, 0.01, 80.0)
    samples = DDPM()(prior, None, sigmas[0] * torch.randn(12, *prior.shape, generator=generator), sigmas,
                     generator=generator)
    real = chorales_eval()
    mine, theirs = excerpt_statistics(samples), excerpt_statistics(real)
    noise = excerpt_statistics(shuffled(real[:12], generator))
    for name in ("onsets_per_bar", "note_length", "in_key"):
        assert overlapping_area(mine[name], theirs[name]) > 2 * overlapping_area(noise[name], theirs[name]) + 0.1, name
    assert 0.85 < float(mine["in_key"].nanmean()) and 2.5 < float(mine["polyphony"].nanmean()) < 5
