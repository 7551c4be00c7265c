"""Guidance away from a perturbed network: the attention hooks (reversible, each mode against its
definition and diffusers' PAG processor), PAG/SEG/skip-layer through the guided denoiser, and SAG's
mask, blur and re-noising written out."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffguide.counting import counting
from diffguide.guidance import GuidedDenoiser, PerturbationGuidance, PerturbedAttention, SelfAttentionBlur
from diffguide.guidance.self_attention_blur import gaussian_blur
from diffguide.priors import GaussianPrior, load
from diffguide.priors.attention_hooks import (MODES, PerturbedSelfAttention, attention_maps, perturbed_attention,
                                              self_attention_layers)

LABELS = {"class_labels": torch.arange(3)}


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _state(seed=0):
    return torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_every_perturbation_changes_the_output_and_is_removed_bit_for_bit_afterwards(digits):
    x, layers = _state(), self_attention_layers(digits.unet, "all")
    with torch.no_grad():
        before = digits(x, 0.8, **LABELS)
        for mode in MODES:
            with perturbed_attention(digits.unet, layers, mode, blur_sigma=1.0):
                assert not torch.equal(digits(x, 0.8, **LABELS), before)
            assert torch.equal(digits(x, 0.8, **LABELS), before)
        with pytest.raises(RuntimeError), perturbed_attention(digits.unet, layers, "identity"):
            raise RuntimeError("an error inside")
        assert torch.equal(digits(x, 0.8, **LABELS), before)
    with pytest.raises(ValueError, match="no self-attention layer"):
        self_attention_layers(digits.unet, ["down_blocks.0"])


def test_each_mode_is_its_definition_on_one_attention_layer(digits):
    from diffusers.models.attention_processor import AttnProcessor2_0, PAGIdentitySelfAttnProcessor2_0

    attn = digits.unet.get_submodule("mid_block.attentions.0")
    h = torch.randn(2, attn.to_q.in_features, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = AttnProcessor2_0()(attn, h)
        theirs = PAGIdentitySelfAttnProcessor2_0()(attn, torch.cat([h, h]))  # [plain, perturbed]
        torch.testing.assert_close(PerturbedSelfAttention("identity")(attn, h), theirs[2:])
        assert torch.equal(PerturbedSelfAttention("skip")(attn, h), h)
        torch.testing.assert_close(PerturbedSelfAttention("blur", blur_sigma=0.1)(attn, h), plain)  # 1-tap kernel
        # infinite blur: every query is the mean query
        tokens = h.flatten(2).transpose(1, 2)
        normed = attn.group_norm(tokens.transpose(1, 2)).transpose(1, 2)
        q = attn.to_q(normed).mean(1, keepdim=True).expand(-1, 16, -1)
        k, v = attn.to_k(normed), attn.to_v(normed)
        heads = attn.heads
        split = lambda t: t.view(2, 16, heads, -1).transpose(1, 2)  # noqa: E731
        out = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(k.shape[-1] // heads), -1) @ split(v)
        out = attn.to_out[0](out.transpose(1, 2).reshape(2, 16, -1)).transpose(1, 2).reshape(h.shape)
        expected = (out + h) / attn.rescale_output_factor if attn.residual_connection else out
        torch.testing.assert_close(PerturbedSelfAttention("blur")(attn, h), expected, atol=1e-5, rtol=1e-5)
        with attention_maps(digits.unet, ["mid_block.attentions.0"]) as maps:
            recorded = digits(_state(2), 0.5, **LABELS)
        torch.testing.assert_close(recorded, digits(_state(2), 0.5, **LABELS), atol=1e-5, rtol=1e-5)
        attention = maps["mid_block.attentions.0"]
        assert attention.shape == (3, 16, 16)
        torch.testing.assert_close(attention.sum(-1), torch.ones(3, 16))


@pytest.mark.parametrize("mode", MODES)
def test_perturbed_attention_guidance_is_p_plus_s_times_p_minus_the_perturbed_prediction(digits, mode):
    x, sigma = _state(3), 0.6
    guided = GuidedDenoiser(digits, PerturbationGuidance(scale=2.0), PerturbedAttention(mode=mode, blur_sigma=2.0))
    with torch.no_grad(), counting() as counts:
        out = guided(x, sigma)  # unconditional: the null label
        p = digits(x, sigma)
        with perturbed_attention(digits.unet, ["mid_block.attentions.0"], mode, 2.0):
            n = digits(x, sigma)
    assert counts.nfe == 2  # the direct calls below are not counted
    torch.testing.assert_close(out, p + 2.0 * (p - n))
    with torch.no_grad(), counting() as counts:
        unguided = GuidedDenoiser(digits, PerturbationGuidance(scale=0.0), PerturbedAttention(mode=mode))(x, sigma)
    assert counts.nfe == 1 and torch.equal(unguided, p)
    with pytest.raises(ValueError, match="no .unet"):
        PerturbedAttention().check(GaussianPrior(torch.zeros(2), torch.eye(2)), {})


def test_the_perturbation_rule_is_diffusers_pag_guider_in_its_original_formulation():
    from diffusers.guiders import PerturbedAttentionGuidance

    g = torch.Generator().manual_seed(4)
    x, p, n = (torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    s = 0.5
    ours = PerturbationGuidance(scale=2.8).guide(p, n, x, torch.full((2,), s, dtype=torch.float64), {})
    guider = PerturbedAttentionGuidance(guidance_scale=0.0, perturbed_guidance_scale=2.8, perturbed_guidance_start=0.0,
                                        perturbed_guidance_stop=1.0, perturbed_guidance_layers=[0],
                                        use_original_formulation=True)
    guider.set_state(step=1, num_inference_steps=10, timestep=torch.tensor(500))  # its window excludes step 0
    theirs = guider.forward((x - p) / s, None, (x - n) / s).pred
    torch.testing.assert_close((x - ours) / s, theirs)


def test_self_attention_guidance_blurs_where_the_map_exceeds_one_and_renoises_with_the_predicted_noise(digits):
    x, sigma = _state(5), 0.7
    branch = SelfAttentionBlur()
    guided = GuidedDenoiser(digits, PerturbationGuidance(scale=0.75), branch)
    with torch.no_grad(), counting() as counts:
        out = guided(x, sigma, **LABELS)
        with attention_maps(digits.unet, ["mid_block.attentions.0"]) as maps:
            p = digits(x, sigma, **LABELS)
        mask = (maps["mid_block.attentions.0"].sum(1) > 1.0).reshape(3, 1, 4, 4).float()
        mask = mask.repeat_interleave(4, -2).repeat_interleave(4, -1)  # nearest upsampling to 16x16
        t = torch.linspace(-4, 4, 9)
        kernel = torch.exp(-0.5 * t**2)
        kernel = (kernel / kernel.sum())[:, None] * (kernel / kernel.sum())[None]
        blurred = F.conv2d(F.pad(p, [4] * 4, mode="reflect"), kernel[None, None])
        degraded = mask * blurred + (1 - mask) * p
        n = digits(degraded + (x - p), sigma, **LABELS)
    assert counts.nfe == 2 and 0 < mask.mean() < 1
    torch.testing.assert_close(out, p + 0.75 * (p - n), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gaussian_blur(p, 1.0), blurred, atol=1e-6, rtol=1e-6)


def test_a_text_conditioned_unet_takes_cfg_with_a_null_embedding_and_attention_perturbations():
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from diffguide.guidance import CFG, NullCondition
    from diffguide.priors.diffusers_unet import DiffusersDenoiser

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=12,
                                attention_head_dim=4, norm_num_groups=4).eval()
    prior = DiffusersDenoiser(unet, DDPMScheduler(num_train_timesteps=100).alphas_cumprod)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    text, null = torch.randn(2, 3, 12), torch.zeros(1, 3, 12)
    guided = GuidedDenoiser(prior, CFG(scale=4.0), NullCondition({"encoder_hidden_states": null}))
    with torch.no_grad():
        p = prior(x, 0.7, encoder_hidden_states=text)
        n = prior(x, 0.7, encoder_hidden_states=null.expand(2, -1, -1))
        torch.testing.assert_close(guided(x, 0.7, encoder_hidden_states=text), n + 4.0 * (p - n))
        layers = self_attention_layers(unet, "all")
        assert layers and all(name.endswith("attn1") for name in layers)  # cross-attention is left alone
        for mode in MODES:
            out = GuidedDenoiser(prior, PerturbationGuidance(scale=1.0), PerturbedAttention(mode=mode, layers="all",
                                                                                            blur_sigma=1.0))(
                x, 0.7, encoder_hidden_states=text)
            assert torch.isfinite(out).all() and not torch.equal(out, p)
        assert torch.equal(prior(x, 0.7, encoder_hidden_states=text), p)
