"""Time-step guidance (the time-embedding hook, reversible, and its branch), gradient-free classifier
guidance (reference class and confusion weight written out), and the SEG / skip-layer rules and query
blur against diffusers' guiders and blur."""
import math

import pytest
import torch

from diffguide.counting import counting
from diffguide.guidance import GuidedDenoiser, PerturbationGuidance, PerturbedTimeEmbedding, ReferenceClass
from diffguide.priors import GaussianPrior, load
from diffguide.priors.attention_hooks import _blurred
from diffguide.priors.time_embedding_hooks import perturbed_time_embedding


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _state(seed=0, n=3):
    return torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_the_time_embedding_noise_is_scaled_per_sample_and_removed_bit_for_bit(digits):
    x, labels = _state(), {"class_labels": torch.arange(3)}
    with torch.no_grad():
        before = digits(x, 0.8, **labels)
        with perturbed_time_embedding(digits.unet, torch.zeros(3)):
            assert torch.equal(digits(x, 0.8, **labels), before)  # zero amplitude: the same network
        with perturbed_time_embedding(digits.unet, torch.tensor([0.0, 1.0, 1.0]), torch.Generator().manual_seed(1)):
            out = digits(x, 0.8, **labels)
        assert torch.equal(out[0], before[0]) and not torch.equal(out[1:], before[1:])
        with pytest.raises(RuntimeError), perturbed_time_embedding(digits.unet, torch.ones(3)):
            raise RuntimeError("an error inside")
        assert torch.equal(digits(x, 0.8, **labels), before)
    # the added noise is amplitude * std(e) * n, drawn from the generator
    t = torch.tensor([300.0, 300.0])
    plain = digits.unet.time_proj(t)
    with perturbed_time_embedding(digits.unet, torch.tensor([0.5, 2.0]), torch.Generator().manual_seed(2)):
        noisy = digits.unet.time_proj(t)
    n = torch.randn(plain.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(noisy, plain + torch.tensor([[0.5], [2.0]]) * plain.std(1, keepdim=True) * n)


def test_time_step_guidance_is_the_perturbation_rule_with_the_power_schedule(digits):
    x, sigma = _state(4), 0.9
    branch = PerturbedTimeEmbedding(scale=1.5, power=1.0)
    guided = GuidedDenoiser(digits, PerturbationGuidance(scale=2.0), branch).for_run(torch.Generator().manual_seed(5))
    with torch.no_grad(), counting() as counts:
        out = guided(x, sigma)  # unconditional: TSG needs no condition
        p = digits(x, sigma)
        fraction = digits.timestep(torch.full((3,), sigma)).float() / len(digits.alphas_cumprod)
        with perturbed_time_embedding(digits.unet, 1.5 * fraction, torch.Generator().manual_seed(5)):
            n = digits(x, sigma)
    assert counts.nfe == 2
    torch.testing.assert_close(out, p + 2.0 * (p - n))
    with pytest.raises(ValueError, match="keeps state"):
        GuidedDenoiser(digits, PerturbationGuidance(scale=2.0), branch)(x, sigma)
    with pytest.raises(ValueError, match="time_proj"):
        branch.check(GaussianPrior(torch.zeros(2), torch.eye(2)), {})
    with pytest.raises(ValueError, match="scale"):
        PerturbedTimeEmbedding(scale=-1.0)


class _FixedClassifier(torch.nn.Module):
    """Logits that depend on the image's mean only: class 0 for bright images, class 2 for dark ones."""

    input_shape, n_classes = (1, 16, 16), 4

    def forward(self, x0):
        m = x0.mean(dim=(1, 2, 3))
        return torch.stack([4 * m, torch.zeros_like(m), -4 * m, torch.full_like(m, -1.0)], dim=1)


def test_gradient_free_classifier_guidance_pushes_away_from_the_most_confused_class_by_the_confusion(digits):
    x, sigma, target = _state(6, n=4), 0.7, torch.tensor([0, 1, 2, 3])
    classifier = _FixedClassifier()
    guided = GuidedDenoiser(digits, PerturbationGuidance(scale=2.0), ReferenceClass(classifier))
    with torch.no_grad(), counting() as counts:
        out = guided(x, sigma, class_labels=target)
        p = digits(x, sigma, class_labels=target)
        probs = torch.softmax(classifier(p), 1)
        others = probs.clone()
        others[torch.arange(4), target] = -1
        reference = others.argmax(1)
        p_ref, p_target = probs[torch.arange(4), reference], probs[torch.arange(4), target]
        r = (p_ref / (p_target + p_ref)).reshape(-1, 1, 1, 1)
        n = digits(x, sigma, class_labels=reference)
    assert counts.nfe == 2 and not bool((reference == target).any())
    torch.testing.assert_close(out, p + 2.0 * r * (p - n), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="class_labels"):
        ReferenceClass(classifier).check(digits, {})
    with pytest.raises(ValueError, match="classes 0..3"):
        ReferenceClass(classifier).check(digits, {"class_labels": torch.tensor([5])})


def _confusion_weight(digits, branch, x, sigma, labels):
    """``r`` of ``n = p - r (p - D(x, sigma, c_ref))``, read back from the branch's negative."""
    with torch.no_grad():
        p = digits(x, sigma, class_labels=labels)
        n = branch.predict(digits, x, torch.full((len(x),), sigma), {"class_labels": labels}, p, {})
        probs = torch.softmax(branch.model()(p), 1)
        probs[torch.arange(len(x)), labels] = -1
        n_ref = digits(x, sigma, class_labels=probs.argmax(1))
    return ((p - n).flatten(1).norm(dim=1) / (p - n_ref).flatten(1).norm(dim=1))


def test_the_shipped_classifier_is_gfcgs_default_and_its_weight_grows_with_the_confusion(digits):
    from diffguide.data.digits import load_digits_split

    images, labels, _, _ = load_digits_split()
    x = images[:8] + 0.3 * torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(9))
    branch = ReferenceClass()
    branch.check(digits, {"class_labels": labels[:8]})
    asked_right = _confusion_weight(digits, branch, x, 0.3, labels[:8])
    asked_wrong = _confusion_weight(digits, branch, x, 0.3, (labels[:8] + 1) % 10)
    assert float(asked_right.median()) < 0.1 < 0.5 < float(asked_wrong.median())


@pytest.mark.parametrize("kind", ["seg", "skip"])
def test_seg_and_skip_layer_rules_are_diffusers_guiders_in_their_original_formulation(kind):
    from diffusers.guiders import SkipLayerGuidance, SmoothedEnergyGuidance

    g = torch.Generator().manual_seed(7)
    x, p, n = (torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    s = 0.5
    ours = PerturbationGuidance(scale=2.8).guide(p, n, x, torch.full((2,), s, dtype=torch.float64), {})
    if kind == "seg":
        guider = SmoothedEnergyGuidance(guidance_scale=0.0, seg_guidance_scale=2.8, seg_guidance_layers=[0],
                                        use_original_formulation=True)
    else:
        guider = SkipLayerGuidance(guidance_scale=0.0, skip_layer_guidance_scale=2.8, skip_layer_guidance_start=0.0,
                                   skip_layer_guidance_stop=1.0, skip_layer_guidance_layers=[0],
                                   use_original_formulation=True)
    guider.set_state(step=1, num_inference_steps=10, timestep=torch.tensor(500))
    theirs = guider.forward((x - p) / s, None, (x - n) / s).pred
    torch.testing.assert_close((x - ours) / s, theirs)


def test_the_query_blur_is_diffusers_seg_blur_with_its_infinity_test_read_the_right_way_round():
    """diffusers' ``_gaussian_blur_2d`` takes the mean when ``sigma <= sigma_threshold_inf`` and the Gaussian
    when ``sigma`` exceeds it (the reverse of its name); called so that each branch runs, it equals ours."""
    from diffusers.hooks.smoothed_energy_guidance_utils import _gaussian_blur_2d

    query = torch.randn(2, 64, 6, generator=torch.Generator().manual_seed(8))
    sigma = 1.3
    size = math.ceil(6 * sigma) + 1 - math.ceil(6 * sigma) % 2
    gaussian = _gaussian_blur_2d(query.clone(), size, sigma, sigma_threshold_inf=0.0)
    torch.testing.assert_close(_blurred(query, 8, 8, sigma), gaussian)
    mean = _gaussian_blur_2d(query.clone(), size, sigma, sigma_threshold_inf=9999.0)
    torch.testing.assert_close(_blurred(query, 8, 8, math.inf), mean)
