"""Guidance on the model's prediction: each rule against its formula and diffusers' guider, the
guided denoiser against the tilted Gaussian's closed form, the interval, counting and per-run state."""
import math

import numpy as np
import pytest
import torch

from diffguide.counting import counting
from diffguide.guidance import (APG, CFG, AdaptiveCFG, CFGPlusPlus, CFGZeroStar, GuidedDenoiser,
                                MagnitudeAwareCFG, NoiseInterval, NullCondition, TangentialCFG, WeakerModel)
from diffguide.priors import GaussianPrior
from diffguide.solvers import DDIM, DPS

from problems import ConditionalGaussians

SHAPE = (2, 3, 3)


def _predictions(seed=0, batch=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *SHAPE, generator=g, dtype=torch.float64) * 2
    p, n = (torch.randn(batch, *SHAPE, generator=g, dtype=torch.float64) for _ in range(2))
    return x, p, n + 0.3 * p  # correlated, as real predictions are


def _dot(a, b):
    return (a * b).flatten(1).sum(1).reshape(-1, 1, 1, 1)


def _gaussian(seed, d=4, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return GaussianPrior(torch.randn(d, generator=g, dtype=torch.float64) * scale, a @ a.T / d + 0.1 * torch.eye(d))


def _pair():
    return ConditionalGaussians(_gaussian(1, scale=2.0), _gaussian(2))


FLOAT32 = dict(atol=1e-5, rtol=1e-5)
LABELS = {"class_labels": torch.zeros(3, dtype=torch.long)}


# --- each rule's combination against its paper's formula --------------------------------------------------


@pytest.mark.parametrize("space", ["x0", "epsilon"])
def test_cfg_is_the_linear_extrapolation_in_either_space_and_scale_one_is_conditional(space):
    x, p, n = _predictions()
    sigma = torch.full((4,), 0.7, dtype=torch.float64)
    torch.testing.assert_close(CFG(scale=2.5, space=space).guide(p, n, x, sigma, {}), n + 2.5 * (p - n))
    torch.testing.assert_close(CFG(scale=1.0, space=space).guide(p, n, x, sigma, {}), p)
    assert CFG(scale=1.0).passes_through and not CFG(scale=2.0).passes_through


def test_guidance_rescale_matches_lin_et_al_in_noise_space():
    x, p, n = _predictions()
    s = 0.7
    guided = CFG(scale=4.0, rescale=0.7).guide(p, n, x, torch.full((4,), s, dtype=torch.float64), {})
    ep, en = (x - p) / s, (x - n) / s
    cfg = en + 4.0 * (ep - en)
    std = lambda t: t.flatten(1).std(1).reshape(-1, 1, 1, 1)  # noqa: E731
    expected = 0.7 * cfg * std(ep) / std(cfg) + 0.3 * cfg
    torch.testing.assert_close((x - guided) / s, expected)


def test_apg_projects_rescales_and_carries_reverse_momentum_across_calls():
    x, p, n = _predictions()
    sigma = torch.full((4,), 0.5, dtype=torch.float64)
    rule = APG(scale=5.0, eta=0.3, momentum=-0.5, rms_threshold=0.2)
    memory = {}
    first = rule.guide(p, n, x, sigma, memory)
    second = rule.guide(p, 0.5 * n, x, sigma, memory)
    running = 0.0
    for negative, got in ((n, first), (0.5 * n, second)):
        d = (p - negative) - 0.5 * running
        running = d
        d = d * torch.clamp(0.2 * math.sqrt(18) / _dot(d, d).sqrt(), max=1.0)
        parallel = _dot(d, p) / _dot(p, p) * p
        torch.testing.assert_close(got, p + 4.0 * (d - parallel + 0.3 * parallel))
    assert rule.space == "x0"
    plain = APG(scale=5.0, eta=1.0, momentum=0.0, rms_threshold=0.0).guide(p, n, x, sigma, {})
    torch.testing.assert_close(plain, n + 5.0 * (p - n))  # eta 1, no momentum, no threshold: CFG


def test_cfg_zero_star_scales_the_unconditional_prediction_and_zero_inits_the_first_levels():
    x, p, n = _predictions()
    rule, memory = CFGZeroStar(scale=3.0, zero_init_steps=1), {}
    first = rule.guide(p, n, x, torch.full((4,), 2.0, dtype=torch.float64), memory)
    torch.testing.assert_close(first, x)  # zero noise estimate
    s = 1.0
    second = rule.guide(p, n, x, torch.full((4,), s, dtype=torch.float64), memory)
    ep, en = (x - p) / s, (x - n) / s
    a = _dot(ep, en) / _dot(en, en)
    torch.testing.assert_close((x - second) / s, a * en + 3.0 * (ep - a * en))


def test_tangential_cfg_keeps_the_unconditional_part_along_the_first_singular_vector():
    x, p, n = _predictions()
    s = 0.9
    guided = TangentialCFG(scale=3.0).guide(p, n, x, torch.full((4,), s, dtype=torch.float64), {})
    ep, en = ((x - p) / s).flatten(1).numpy(), ((x - n) / s).flatten(1).numpy()
    for b in range(4):
        v1 = np.linalg.svd(np.stack([ep[b], en[b]]))[2][0]
        projected = (en[b] @ v1) * v1
        np.testing.assert_allclose(((x[b] - guided[b]) / s).flatten().numpy(),
                                   projected + 3.0 * (ep[b] - projected), atol=1e-10)


def test_magnitude_aware_cfg_shrinks_the_scale_with_the_relative_update():
    x, p, n = _predictions()
    s = 0.4
    guided = MagnitudeAwareCFG(scale=6.0, alpha=2.0).guide(p, n, x, torch.full((4,), s, dtype=torch.float64), {})
    ep, en = (x - p) / s, (x - n) / s
    w = 1 + 5.0 * torch.exp(-2.0 * (_dot(ep - en, ep - en) / _dot(en, en)).sqrt())
    torch.testing.assert_close((x - guided) / s, en + w * (ep - en))


def test_bad_hyper_parameters_are_refused_at_construction():
    for make in (lambda: CFG(scale=math.nan), lambda: CFG(rescale=1.5), lambda: CFG(space="v"),
                 lambda: CFGPlusPlus(scale=1.5), lambda: APG(momentum=-2.0), lambda: CFGZeroStar(zero_init_steps=-1),
                 lambda: NoiseInterval(2.0, 1.0), lambda: NoiseInterval(-1.0, 1.0)):
        with pytest.raises(ValueError):
            make()


# --- diffusers' guiders on the same noise predictions ---------------------------------------------------


def _diffusers(guider, p_eps, n_eps, step=0):
    guider.set_state(step=step, num_inference_steps=10, timestep=torch.tensor(500))
    return guider.forward(p_eps, n_eps).pred


def test_rules_equal_diffusers_guiders_in_noise_space():
    from diffusers.guiders import (AdaptiveProjectedGuidance, ClassifierFreeGuidance, ClassifierFreeZeroStarGuidance,
                                   MagnitudeAwareGuidance, TangentialClassifierFreeGuidance)
    from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer

    x, p, n = _predictions(3)
    s = 0.8
    sigma = torch.full((4,), s, dtype=torch.float64)
    ep, en = (x - p) / s, (x - n) / s
    eps = lambda x0: (x - x0) / s  # noqa: E731
    cases = [(CFG(scale=4.0, rescale=0.5), ClassifierFreeGuidance(guidance_scale=4.0, guidance_rescale=0.5)),
             (TangentialCFG(scale=3.0), TangentialClassifierFreeGuidance(guidance_scale=3.0))]
    for ours, theirs in cases:  # diffusers' tangential and zero-star computations run in float32
        torch.testing.assert_close(eps(ours.guide(p, n, x, sigma, {})), _diffusers(theirs, ep, en), **FLOAT32)
    # diffusers' magnitude-aware guider takes torch.norm over dims (1, 2, 3), which fails on 4-D images;
    # on (B, tokens, channels) predictions, as in its video pipelines, it agrees
    flat = lambda t: t.reshape(4, 2, 9)  # noqa: E731
    magnitude = MagnitudeAwareCFG(scale=5.0, alpha=3.0).guide(flat(p), flat(n), flat(x), sigma, {})
    torch.testing.assert_close((flat(x) - magnitude) / s,
                               _diffusers(MagnitudeAwareGuidance(guidance_scale=5.0, alpha=3.0), flat(ep), flat(en)))
    zero_star, memory = CFGZeroStar(scale=4.0, zero_init_steps=1), {}
    theirs = ClassifierFreeZeroStarGuidance(guidance_scale=4.0, zero_init_steps=1)
    for step, level in enumerate((2.0, s)):
        ours = eps(zero_star.guide(p, n, x, torch.full((4,), level, dtype=torch.float64), memory)) * s / level
        torch.testing.assert_close(ours, _diffusers(theirs, ep, en, step) if step else torch.zeros_like(ep), **FLOAT32)
    # APG: the paper's p + (w - 1) update is diffusers' original formulation at guidance_scale w - 1; its
    # threshold is on the norm, ours per value
    apg, memory = APG(scale=5.0, eta=0.2, momentum=-0.5, rms_threshold=0.3, space="epsilon"), {}
    theirs = AdaptiveProjectedGuidance(guidance_scale=4.0, adaptive_projected_guidance_momentum=-0.5,
                                       adaptive_projected_guidance_rescale=0.3 * math.sqrt(18), eta=0.2,
                                       use_original_formulation=True)
    theirs.momentum_buffer = MomentumBuffer(-0.5)
    for step, negative in enumerate((n, 0.5 * n)):
        torch.testing.assert_close(eps(apg.guide(p, negative, x, sigma, memory)),
                                   _diffusers(theirs, ep, eps(negative), step))


# --- the guided denoiser ---------------------------------------------------------------------------------


def test_cfg_denoiser_is_the_tilted_gaussian_denoiser_at_every_noise_level():
    pair, w = _pair(), 3.0
    guided = GuidedDenoiser(pair, CFG(scale=w))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (0.05, 0.5, 2.0, 10.0):
        precisions = [torch.linalg.inv(prior.covs[0] + sigma**2 * torch.eye(4)) for prior in (pair.conditional,
                                                                                             pair.unconditional)]
        means = [pair.conditional.means[0], pair.unconditional.means[0]]
        score = -w * (x - means[0]) @ precisions[0] - (1 - w) * (x - means[1]) @ precisions[1]
        torch.testing.assert_close(guided(x, sigma, **LABELS), x + sigma**2 * score)


def test_the_guidance_interval_switches_exactly_at_its_noise_levels_and_saves_the_pass_outside():
    pair = _pair()
    guided = GuidedDenoiser(pair, CFG(scale=3.0), interval=NoiseInterval(0.5, 2.0))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    everywhere = GuidedDenoiser(pair, CFG(scale=3.0))
    for sigma, inside in ((0.5, False), (0.5000001, True), (2.0, True), (2.0000001, False), (5.0, False)):
        with counting() as counts:
            out = guided(x, sigma, **LABELS)
        expected = everywhere(x, sigma, **LABELS) if inside else pair(x, sigma, **LABELS)
        torch.testing.assert_close(out, expected)
        assert counts.nfe == (2 if inside else 1)
    mixed = guided(x, torch.tensor([0.3, 1.0, 3.0], dtype=torch.float64), **LABELS)
    torch.testing.assert_close(mixed[1], everywhere(x, 1.0, **LABELS)[1])
    torch.testing.assert_close(mixed[[0, 2]], pair(x, torch.tensor([0.3, 1.0, 3.0]), **LABELS)[[0, 2]])
    assert NoiseInterval.parse("0.3,inf") == NoiseInterval(0.3, math.inf)
    for bad in ("0.3", "a,b", "2,1"):
        with pytest.raises(ValueError):
            NoiseInterval.parse(bad)


def test_a_ddim_run_counts_each_network_pass_once_and_its_gradients_too():
    pair, steps = _pair(), 8
    sigmas = torch.linspace(5, 0.1, steps).double().tolist() + [0.0]
    sigmas = torch.tensor(sigmas, dtype=torch.float64)
    x = 5 * torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    seen = []
    DDIM()(GuidedDenoiser(pair, CFG(scale=2.0)), None, x, sigmas, callback=seen.append, **LABELS)
    assert seen[-1].nfe == 2 * steps
    with counting() as counts:
        with torch.enable_grad():
            z = x.clone().requires_grad_(True)
            GuidedDenoiser(pair, CFG(scale=2.0))(z, 1.0, **LABELS).sum().backward()
    assert (counts.nfe, counts.backward_passes) == (2, 2)


def test_cfg_plus_plus_renoises_ddim_with_the_unconditional_prediction_and_other_solvers_refuse_it():
    pair = _pair()
    guided = GuidedDenoiser(pair, CFGPlusPlus(scale=0.4))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    sigmas = torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64)
    out = DDIM()(guided, None, x, sigmas, **LABELS)
    # written out: x0_lambda = n + lambda (p - n), x_next = x0_lambda + sigma_next (x - n) / sigma
    state = x
    for sigma, sigma_next in ((3.0, 1.0), (1.0, 0.0)):
        p, n = pair(state, sigma, **LABELS), pair(state, sigma)
        state = n + 0.4 * (p - n) + sigma_next * (state - n) / sigma
    torch.testing.assert_close(out, state)
    from diffguide.rewards import GaussianLikelihood
    from diffguide.operators import Identity

    likelihood = GaussianLikelihood(Identity(), torch.zeros(3, 4, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="re-noises"):
        DPS()(guided, likelihood, x, sigmas, **LABELS)


def test_stateful_guidance_is_bound_to_each_run_and_refused_unbound():
    pair = _pair()
    guided = GuidedDenoiser(pair, APG(scale=4.0))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3
    with pytest.raises(ValueError, match="for_run"):
        guided(x, 1.0, **LABELS)
    sigmas = torch.tensor([3.0, 1.5, 0.5, 0.0], dtype=torch.float64)
    first, second = (DDIM()(guided, None, x, sigmas, **LABELS) for _ in range(2))
    assert torch.equal(first, second)  # the momentum of the first run does not leak into the second
    bound = guided.for_run()
    bound(x, 3.0, **LABELS)
    assert "apg_average" in bound.memory and guided.memory is None


def test_cfg_needs_a_condition_and_the_null_condition_must_name_passed_entries():
    pair = _pair()
    x = torch.randn(3, 4, dtype=torch.float64)
    sigmas = torch.tensor([1.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="condition"):
        DDIM()(GuidedDenoiser(pair, CFG()), None, x, sigmas)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        DDIM()(GuidedDenoiser(pair, CFG(), NullCondition({"encoder_hidden_states": torch.zeros(1, 2)})), None, x,
               sigmas, **LABELS)


def test_autoguidance_guides_away_from_the_weaker_model_with_the_same_condition():
    pair, weak = _pair(), _pair()
    weak.conditional = _gaussian(5)
    guided = GuidedDenoiser(pair, CFG(scale=2.0), WeakerModel(weak))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    p, n = pair(x, 0.7, **LABELS), weak(x, 0.7, **LABELS)
    torch.testing.assert_close(guided(x, 0.7, **LABELS), n + 2.0 * (p - n))
    with pytest.raises(ValueError, match="same data"):
        WeakerModel(GaussianPrior(torch.zeros(5), torch.eye(5))).check(pair, LABELS)


def test_adaptive_guidance_drops_the_unconditional_pass_for_the_rest_of_the_run_once_the_cosine_is_reached():
    pair, steps = _pair(), 6
    sigmas = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.0], dtype=torch.float64)
    x = 4 * torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    runs = {}
    for threshold in (-1.0, 1.0):
        seen = []
        runs[threshold] = DDIM()(GuidedDenoiser(pair, AdaptiveCFG(scale=3.0, threshold=threshold)), None, x, sigmas,
                                 callback=seen.append, **LABELS)
        runs[threshold, "nfe"] = seen[-1].nfe
    assert runs[-1.0, "nfe"] == 2 + (steps - 1) and runs[1.0, "nfe"] == 2 * steps
    torch.testing.assert_close(runs[1.0], DDIM()(GuidedDenoiser(pair, CFG(scale=3.0)), None, x, sigmas, **LABELS))
    state = x  # written out: one CFG step, then the conditional model alone
    for k, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        p = pair(state, sigma, **LABELS)
        x0 = pair(state, sigma) + 3.0 * (p - pair(state, sigma)) if k == 0 else p
        state = x0 + sigma_next * (state - x0) / sigma
    torch.testing.assert_close(runs[-1.0], state)
