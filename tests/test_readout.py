"""Readout heads on the digits prior's features, and Readout Guidance with them."""
import shutil

import pytest
import torch

from diffguide.counting import counting
from diffguide.data.digits import load_digits_split
from diffguide.models import load_digit_classifier
from diffguide.models.readout import (DEFAULT_BLOCKS, FeatureCapture, denoise_with_features, ink_mask,
                                      load_readout_head)
from diffguide.priors.embedded import load
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.classifier import ClassifierReward
from diffguide.rewards.readout import ReadoutReward
from diffguide.schedules import prior_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.readout_guidance import ReadoutGuidance
from diffguide.types import per_sample


# The paper's w_rg = 2e-2 moves each latent element by up to 2e-2 per guided step over 50 guided
# steps (of 100); with 10 guided steps (of 20) a comparable total displacement needs about 0.1-0.2.
GUIDE_WEIGHT = 0.2


@pytest.fixture(scope="module")
def prior():
    return load("digits")


@pytest.fixture(scope="module")
def heads():
    return {"class": load_readout_head("readout-digits-class"), "mask": load_readout_head("readout-digits-ink")}


def test_features_are_the_blocks_outputs_and_hooks_leave_no_trace(prior):
    g = torch.Generator().manual_seed(0)
    x0 = load_digits_split()[2][:6]
    sigma = torch.tensor([0.05, 0.3, 0.5, 1.0, 3.0, 10.0])
    x = x0 + per_sample(sigma, x0) * torch.randn(x0.shape, generator=g)
    plain = prior(x, sigma)
    blocks = [prior.unet.get_submodule(name) for name in DEFAULT_BLOCKS]
    with FeatureCapture(prior.unet, DEFAULT_BLOCKS) as capture:
        hooked = prior(x, sigma)
        assert all(len(block._forward_hooks) == 1 for block in blocks)
    assert torch.equal(hooked, plain)  # the hooks only read
    assert [tuple(f.shape) for f in capture.features] == [(6, 64, 4, 4), (6, 64, 8, 8), (6, 64, 16, 16), (6, 32, 16, 16)]
    # the last decoder block's output, through the UNet's output layers, is the model output: x0 again
    unet = prior.unet
    v = unet.conv_out(unet.conv_act(unet.conv_norm_out(capture.features[-1])))
    scale = per_sample(torch.rsqrt(1 + sigma**2), x)
    torch.testing.assert_close(scale * (scale * x - per_sample(sigma, x) * v), plain, rtol=1e-5, atol=1e-5)
    # removed on exit, also when the body raises; later calls leave the capture alone
    assert all(not block._forward_hooks for block in blocks)
    with pytest.raises(RuntimeError), FeatureCapture(prior.unet, DEFAULT_BLOCKS):
        raise RuntimeError("inside")
    assert all(not block._forward_hooks for block in blocks)
    capture.features = [None] * 4
    prior(x, sigma)
    assert capture.features == [None] * 4
    x0_again, features = denoise_with_features(prior, x, sigma)
    assert torch.equal(x0_again, plain) and len(features) == 4
    with pytest.raises(ValueError, match="no block"):
        FeatureCapture(prior.unet, ["up_blocks.7"])


def test_shipped_heads_read_noisy_held_out_digits_far_above_chance(prior, heads):
    g = torch.Generator().manual_seed(1)
    _, _, x0, labels = load_digits_split()
    x0, labels = x0[::2], labels[::2]
    x = x0 + 0.5 * torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        _, features = denoise_with_features(prior, x, 0.5)
        accuracy = (heads["class"](features, 0.5).argmax(1) == labels).float().mean().item()
        ink, truth = heads["mask"](features, 0.5) > 0, ink_mask(x0).bool()
    iou = ((ink & truth).sum() / (ink | truth).sum()).item()
    all_ink_iou = truth.float().mean().item()  # the best constant prediction's IoU ("all ink"; "no ink" has 0)
    print(f"held-out at sigma 0.5: class accuracy {accuracy:.3f}, ink IoU {iou:.3f} (constant {all_ink_iou:.3f})")
    assert accuracy > 0.6
    assert iou > all_ink_iou + 0.3


def test_shipped_head_with_a_changed_byte_is_rejected(tmp_path):
    folder = tmp_path / "head"
    shutil.copytree(load_readout_head.__globals__["WEIGHTS_DIR"] / "readout-digits-class", folder)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_readout_head("readout-digits-class", folder)


def test_readout_reward_prefers_the_true_label_and_mask(prior, heads):
    _, _, x0, labels = load_digits_split()
    x0, labels = x0[:40], labels[:40]
    with torch.no_grad():
        right = ReadoutReward(heads["class"], labels, prior)(x0)
        wrong = ReadoutReward(heads["class"], (labels + 1) % 10, prior)(x0)
        own = ReadoutReward(heads["mask"], ink_mask(x0), prior)(x0)
        other = ReadoutReward(heads["mask"], ink_mask(x0.roll(1, 0)), prior)(x0)
    assert (right > wrong).float().mean() > 0.9 and (own > other).float().mean() > 0.9


def run_pair(prior, reward, solver, n=8, steps=20, seed=0):
    """Unguided DDPM and the guided solver from the same initial state and the same noise draws."""
    sigmas = prior_sigmas(prior, steps)
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=torch.Generator().manual_seed(seed))
    plain = DDIM(eta=solver.eta)(prior, None, x, sigmas, generator=torch.Generator().manual_seed(seed + 1))
    guided = solver(prior, reward, x, sigmas, generator=torch.Generator().manual_seed(seed + 1))
    return plain, guided


def test_zero_weight_is_exactly_unguided_ddim(prior, heads):
    reward = ReadoutReward(heads["class"], 3, prior)
    for eta in (0.0, 1.0):
        plain, guided = run_pair(prior, reward, ReadoutGuidance(weight=0.0, eta=eta, guidance_interval=(0.0, 1.0)), n=4, steps=6)
        assert torch.equal(plain, guided)


def test_class_guidance_lowers_the_readout_loss_and_makes_the_target_digit(prior, heads):
    target = 3
    reward = ReadoutReward(heads["class"], target, prior)
    plain, guided = run_pair(prior, reward, ReadoutGuidance(weight=GUIDE_WEIGHT))
    judge = ClassifierReward(load_digit_classifier(), target)  # an independent clean classifier
    with torch.no_grad():
        loss_plain, loss_guided = -reward(plain), -reward(guided)
        judged_plain = (judge.classifier(plain).argmax(1) == target).float().mean().item()
        judged_guided = (judge.classifier(guided).argmax(1) == target).float().mean().item()
    print(f"readout loss {loss_plain.mean():.3f} -> {loss_guided.mean():.3f}; "
          f"judged target accuracy {judged_plain:.2f} -> {judged_guided:.2f}")
    assert loss_guided.mean() < 0.5 * loss_plain.mean()
    assert judged_guided >= judged_plain + 0.5


def test_ink_guidance_draws_the_target_mask(prior, heads):
    target = ink_mask(load_digits_split()[2][7:8])[0]  # a held-out digit's ink
    reward = ReadoutReward(heads["mask"], target, prior)
    plain, guided = run_pair(prior, reward, ReadoutGuidance(weight=GUIDE_WEIGHT))

    def pixel_iou(x):  # measured on the samples' pixels, not by the head
        ink, truth = x > 0, target.bool().expand_as(x)
        return ((ink & truth).flatten(1).sum(1) / (ink | truth).flatten(1).sum(1)).mean().item()

    with torch.no_grad():
        loss_plain, loss_guided = -reward(plain), -reward(guided)
    print(f"readout loss {loss_plain.mean():.3f} -> {loss_guided.mean():.3f}; "
          f"pixel IoU with the target {pixel_iou(plain):.2f} -> {pixel_iou(guided):.2f}")
    assert loss_guided.mean() < 0.6 * loss_plain.mean()
    assert pixel_iou(guided) > pixel_iou(plain) + 0.2


def test_cost_and_early_errors(prior, heads):
    reward = ReadoutReward(heads["class"], 1, prior)
    sigmas = prior_sigmas(prior, 8)
    x = sigmas[0] * torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(0))
    with counting() as counts:
        ReadoutGuidance(guidance_interval=(0.25, 0.75), recurrent_steps=2)(prior, reward, x, sigmas)
    assert (counts.nfe, counts.grad_evals) == (8 - 4 + 4 * 2, 4 * 2)
    with pytest.raises(ValueError, match="ReadoutReward"):
        ReadoutGuidance()(prior, ClassifierReward(load_digit_classifier(), 1), x, sigmas)
    with pytest.raises(ValueError, match="UNet"):
        gaussian = GaussianPrior(torch.zeros(1, 16, 16), torch.eye(256))
        ReadoutGuidance()(gaussian, reward, x, sigmas)
    with pytest.raises(ValueError, match="guidance_interval"):
        ReadoutGuidance(guidance_interval=(0.6, 0.2))(prior, reward, x, sigmas)
    with pytest.raises(ValueError, match="shape"):
        ReadoutGuidance()(prior, ReadoutReward(heads["mask"], torch.zeros(1, 8, 8), prior), x, sigmas)
    with pytest.raises(ValueError, match="label"):
        ReadoutReward(heads["class"], 10, prior)
    with pytest.raises(ValueError, match="mask"):
        ReadoutReward(heads["mask"], torch.full((1, 16, 16), 0.5), prior)
