"""The ns-vorticity prior's data set, symmetry augmentation, periodic network, training smoke run and evidence."""
import functools
import json

import numpy as np
import pytest
import torch

from diffguide.benchmarks.ns_prior import (compare_fields, flatness, forcing_profile, histogram_tv, load_ns_prior,
                                           sample_prior, vorticity_gradient, wasserstein1)
from diffguide.data import ns_vorticity_set
from diffguide.data.ns_vorticity import ns_vorticity_fields
from diffguide.data.ns_vorticity_set import (augment_ns_vorticity, cached_fields, rotate_half_turn,
                                             shift_reflect)
from diffguide.physics.navier_stokes import NavierStokes2D
from diffguide.physics.random_fields import GaussianRandomField
from diffguide.training import train
from diffguide.training.checkpoint import load_checkpoint
from diffguide.training.unet import ns_vorticity_unet_config

TINY = ns_vorticity_unet_config(sample_size=16, block_out_channels=(8, 16, 16), down_block_types=("DownBlock2D",) * 3,
                                up_block_types=("UpBlock2D",) * 3, attention_head_dim=8, norm_num_groups=4)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@functools.cache
def fields_32(seed):
    """24 flow fields on a 32 x 32 grid (cheap stand-ins for the 64 x 64 data; shell 16 exists there)."""
    return ns_vorticity_fields(24, seed=seed, resolution=32, burn_in=3.0)


def tiny_fields(run_folder):
    """Six 16 x 16 flow fields, cached in the run folder like the real data source."""
    fields = cached_fields(run_folder / "data", 6, 0, resolution=16)
    return fields, torch.full((6,), 10, dtype=torch.int64)


def test_symmetries_commute_with_the_flow_and_a_plain_mirror_does_not():
    solver = NavierStokes2D(32)
    w0 = GaussianRandomField(resolution=32).sample(2, seeded(0))
    flow = lambda w: solver.evolve(w, 0.2)  # noqa: E731
    w1 = flow(w0)
    period = 32 // 4
    for name, g in [("shift-reflect", shift_reflect), ("rotation", rotate_half_turn),
                    ("y period", lambda w: w.roll(period, -2)), ("x shift", lambda w: w.roll(5, -1))]:
        assert torch.allclose(flow(g(w0)), g(w1), rtol=0, atol=1e-10), name
    assert w1.abs().max() > 1
    # Not symmetries: the mirror alone, and the half-period shift alone, flip the forcing.
    mirror = lambda w: -w.flip(-1).roll(1, -1)  # noqa: E731
    half = lambda w: w.roll(period // 2, -2)  # noqa: E731
    for g in (mirror, half):
        assert (flow(g(w0)) - g(w1)).abs().max() > 0.1


def test_augmentation_maps_each_field_into_its_orbit_from_the_generator():
    w = GaussianRandomField(resolution=16).sample(8, seeded(1)).float()[:, None]
    out = augment_ns_vorticity(w, seeded(2))
    assert torch.equal(out, augment_ns_vorticity(w, seeded(2)))
    assert not torch.equal(out, augment_ns_vorticity(w, seeded(3)))
    reached = set()
    for field, image in zip(w, out):
        orbit = {}
        for s in (0, 1):
            for r in (0, 1):
                g = shift_reflect(field) if s else field
                g = rotate_half_turn(g) if r else g
                for dy in range(0, 16, 4):
                    for dx in range(16):
                        orbit[(s, r, dy, dx)] = g.roll((dy, dx), (-2, -1))
        matches = [key for key, candidate in orbit.items() if torch.equal(candidate, image)]
        assert len(matches) == 1
        reached.add(matches[0][:2])
    assert len(reached) >= 3  # both the reflections are drawn


def test_fields_are_cached_once_as_plain_npz(tmp_path, monkeypatch):
    first = cached_fields(tmp_path, 3, 0, resolution=16)
    assert torch.equal(first, ns_vorticity_fields(3, seed=0, resolution=16))
    (file,) = tmp_path.iterdir()
    assert file.name == "ns_vorticity_n3_seed0_res16.npz"
    with np.load(file, allow_pickle=False) as saved:
        assert saved["w"].dtype == np.float32 and saved["w"].shape == (3, 1, 16, 16)

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(ns_vorticity_set, "ns_vorticity_fields", no_generation)
    assert torch.equal(cached_fields(tmp_path, 3, 0, resolution=16), first)


def test_training_smoke_run_caches_data_and_exports_a_periodic_prior(tmp_path):
    final = train(tiny_fields, 3, tmp_path, batch_size=4, warmup_steps=1, unet=TINY, progress=False,
                  augment=augment_ns_vorticity)
    assert (tmp_path / "data" / "ns_vorticity_n6_seed0_res16.npz").is_file()
    state = load_checkpoint(tmp_path)
    assert state.step == 3 and torch.isfinite(state.loss_history).all()
    assert state.config["training"]["augment"] == "diffguide.data.ns_vorticity_set.augment_ns_vorticity"
    assert json.loads((final / "unet" / "config.json").read_text())["padding_mode"] == "circular"

    exported, from_checkpoint = load_ns_prior(final), load_ns_prior(tmp_path)
    convs = [m for m in exported.unet.modules() if isinstance(m, torch.nn.Conv2d) and any(m.padding)]
    assert convs and all(m.padding_mode == "circular" for m in convs)
    x, sigma = torch.randn(2, 1, 16, 16, generator=seeded(4)), torch.tensor([0.5, 3.0])
    with torch.no_grad():
        out = exported(x, sigma)
        assert torch.allclose(from_checkpoint(x, sigma), out, atol=1e-6)
        # Periodic: commutes with shifts by 2**(levels - 1) = 4 pixels, across the border.
        assert torch.allclose(exported(x.roll((4, -8), (-2, -1)), sigma), out.roll((4, -8), (-2, -1)), atol=1e-5)
        assert not torch.allclose(exported(x.roll(1, -1), sigma), out.roll(1, -1), atol=1e-3)
    samples = sample_prior(exported, 3, 4, "ddim", seed=5)
    assert samples.shape == (3, 1, 16, 16) and torch.equal(samples, sample_prior(exported, 3, 4, "ddim", seed=5))


def test_evidence_accepts_independent_data_and_rejects_smoothed_and_gaussian_copies():
    data, other = fields_32(0), fields_32(1)
    same = compare_fields(augment_ns_vorticity(data, seeded(0)), data)
    assert same["spectrum_ratio"] == [1.0] * 16  # the symmetries keep each field's spectrum
    # Two independent sets of 24 fields differ by sampling noise alone, up to about 1.5x in a shell.
    independent = compare_fields(other, data)
    assert independent["spectrum_ok"] and independent["max_abs_log2_ratio"] < 0.75
    assert independent["histogram_tv"] < 0.1 and independent["wasserstein1"] < 0.1

    # Products of two independent Gaussian fields have intermittent gradients; random Fourier phases
    # keep their spectrum and make them Gaussian again (gradient flatness 3).
    g = GaussianRandomField(resolution=32).sample(32, seeded(2)).float()
    product = g[:16] * g[16:]
    w_hat = torch.fft.rfft2(product)
    phases = torch.exp(2j * torch.pi * torch.rand(w_hat.shape, generator=seeded(1)))
    gaussian = compare_fields(torch.fft.irfft2(w_hat * phases, s=product.shape[-2:]), product)
    assert gaussian["spectrum_ok"] and not gaussian["structure_ok"] and not gaussian["passes"]
    assert gaussian["gradient_flatness"]["samples"] < 3.3 < 4.5 < gaussian["gradient_flatness"]["data"]

    n, width = data.shape[-1], torch.pi / data.shape[-1]  # a Gaussian blur half a grid step wide
    k2 = torch.fft.fftfreq(n, 1 / n)[:, None] ** 2 + torch.fft.fftfreq(n, 1 / n)[None, :] ** 2
    smoothed = torch.fft.ifft2(torch.fft.fft2(data) * torch.exp(-0.5 * k2 * width**2)).real
    blurred = compare_fields(smoothed, data)
    assert not blurred["spectrum_ok"] and not blurred["passes"] and blurred["worst_k"] == 16
    # Shell k holds modes with k - 1/2 <= |q| < k + 1/2, each damped by exp(-|q|² width²) in energy.
    k = torch.arange(1, 17, dtype=torch.float64)
    ratio = torch.tensor(blurred["spectrum_ratio"], dtype=torch.float64)
    assert (ratio >= torch.exp(-((k + 0.5) * width) ** 2) - 1e-4).all()
    assert (ratio <= torch.exp(-((k - 0.5) * width) ** 2) + 1e-4).all()


def test_distances_and_field_statistics_on_known_answers():
    a = torch.randn(20_000, generator=seeded(6), dtype=torch.float64)
    assert flatness(a) == pytest.approx(3.0, abs=0.1)
    u = torch.rand(20_000, generator=seeded(7), dtype=torch.float64) - 0.5
    laplace = -u.sign() * torch.log1p(-2 * u.abs())  # inverse CDF of the Laplace distribution, flatness 6
    assert flatness(laplace) == pytest.approx(6.0, abs=0.6)
    y = torch.arange(32, dtype=torch.float64)[:, None] * 2 * torch.pi / 32
    x = y.T
    gradient = vorticity_gradient(torch.sin(3 * x + 2 * y)[None])
    assert torch.allclose(gradient, torch.stack([3 * torch.cos(3 * x + 2 * y), 2 * torch.cos(3 * x + 2 * y)])[:, None],
                          atol=1e-12)
    assert forcing_profile((-0.3 * torch.cos(4 * y) + torch.sin(3 * y)).expand(2, 32, 32)) == pytest.approx(-0.3)
    assert wasserstein1(a + 0.3, a) == pytest.approx(0.3, abs=1e-12)
    assert histogram_tv(torch.full((100,), 0.5), torch.full((100,), -0.5)) == pytest.approx(1.0)
    half = torch.cat([torch.full((50,), 0.5), torch.full((50,), -0.5)])
    assert histogram_tv(half, torch.full((100,), 0.5)) == pytest.approx(0.5)
