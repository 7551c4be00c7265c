"""Latent priors: solvers over latents with rewards and measurements on decoded images.

Exact answers: a Gaussian prior over latents with a linear decoder makes a linear-Gaussian problem in
the latent, whose posterior is closed-form. The networks' path (a tiny random ``UNet2DConditionModel``,
``AutoencoderKL`` and CLIP text encoder, built here) is checked against plain autograd, for its
counts, its memory and its loading from a Stable-Diffusion-style folder.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import FrozenDict

from diffguide.baselines import measurement_baseline
from diffguide.counting import counting
from diffguide.guidance import CFG, GuidedDenoiser
from diffguide.operators import Inpaint, Matrix
from diffguide.priors import DiffusersDenoiser, GaussianPrior, LatentPrior, load_pipeline_prior
from diffguide.rewards import GaussianLikelihood, Reward
from diffguide.rewards.decoded import in_image_space
from diffguide.schedules import prior_sigmas
from diffguide.solvers import (DDIM, DDRM, DOODL, DPS, EDICT, LGD, MPGD, SCG, TDS, TFG, UGD, BestOfN, EnKG, FreeDoM,
                               REDDiff, SymplecticAdjointGuidance, UniversalGuidance)
from diffguide.solvers.run import Run
from problems import solve

LATENT = (4, 1, 2)  # 8 latent numbers
IMAGE = (3, 2, 4)  # 24 pixels: the linear decoder upsamples by 2


class LinearAutoencoder(torch.nn.Module):
    """``decode(z) = M vec(z / s)`` reshaped to an image, ``encode`` its least-squares inverse: a decoder in
    the shape of a diffusers autoencoder (``config``, ``.decode(z).sample``, ``.encode(x).latent_dist``)."""

    def __init__(self, seed=0, scaling_factor=0.5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(math.prod(IMAGE), math.prod(LATENT), generator=g, dtype=torch.float64)
        self.register_buffer("m", m * scaling_factor / math.prod(LATENT)**0.5)  # images of about unit scale
        self.config = FrozenDict(scaling_factor=scaling_factor, latent_channels=LATENT[0], out_channels=IMAGE[0],
                                 block_out_channels=(8, 8))

    @property
    def dtype(self):
        return self.m.dtype

    def decode(self, z):
        return _Output(sample=(z.flatten(1) @ self.m.T).reshape(len(z), *IMAGE))

    def encode(self, x):
        mean = torch.linalg.lstsq(self.m, x.flatten(1).T).solution.T.reshape(len(x), *LATENT)
        return _Output(latent_dist=_Output(mean=mean))


class _Output:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def gaussian_latent_problem(seed=0, sigma_y=0.1):
    """A Gaussian latent prior with a linear decoder, a measurement of 6 of the decoded pixels, the same
    problem written directly in the latent (operator ``A M / s``), and its exact latent posterior."""
    g = torch.Generator().manual_seed(seed)
    dim = math.prod(LATENT)
    factor = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    latent_prior = GaussianPrior(torch.zeros(dim), factor @ factor.T + 0.1 * torch.eye(dim, dtype=torch.float64),
                                 shape=LATENT)
    vae = LinearAutoencoder(seed)
    prior = LatentPrior(latent_prior, vae)
    a = torch.randn(6, math.prod(IMAGE), generator=g, dtype=torch.float64) / math.prod(LATENT)**0.5
    truth = prior.decode(latent_prior.sample(1, g))
    image_likelihood = GaussianLikelihood.simulate(Matrix(a, IMAGE), truth, sigma_y, g)
    in_latent = Matrix(a @ vae.m / vae.config.scaling_factor, LATENT)
    latent_likelihood = GaussianLikelihood(in_latent, image_likelihood.y, sigma_y)
    posterior = latent_prior.posterior(in_latent, image_likelihood.y, sigma_y)
    return prior, latent_prior, image_likelihood, latent_likelihood, posterior


def error(samples, posterior):
    return float((samples.mean(0) - posterior.mean()).norm())


@pytest.mark.parametrize("solver", [DPS(), EnKG(guidance_scale=0.1)], ids=["DPS", "EnKG"])
def test_a_measurement_of_decoded_images_moves_the_latent_to_its_exact_posterior(solver):
    prior, latent_prior, likelihood, _, posterior = gaussian_latent_problem()
    guided = error(solve(solver, prior, likelihood, n=256, steps=100), posterior)
    prior_error = float((latent_prior.mean() - posterior.mean()).norm())
    assert guided < 0.4 * prior_error  # measured: DPS 0.32 (its approximation), EnKG 0.24 of the prior's error


def test_red_diff_starts_from_the_encoded_interpolation_and_moves_to_the_exact_posterior():
    """Half the decoded pixels measured: RED-diff starts at the encoding of the regularised solution nearest
    the interpolation (1.09 from the exact latent posterior mean; the prior's mean 2.10) and 200 steps (the
    levels from sigma_y = 0.1 to its start_sigma) end 0.13 from it (measured)."""
    prior, latent_prior, *_ = gaussian_latent_problem()
    vae = LinearAutoencoder(0)
    g = torch.Generator().manual_seed(4)
    operator = Inpaint(torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]]))
    likelihood = GaussianLikelihood.simulate(operator, prior.decode(latent_prior.sample(1, g)), 0.1, g)
    in_latent = Matrix(operator.matrix(IMAGE) @ vae.m / vae.config.scaling_factor, LATENT)
    posterior = latent_prior.posterior(in_latent, likelihood.y, likelihood.sigma_y)
    interpolation = measurement_baseline(operator, likelihood.y, IMAGE)[1]
    start = prior.encode(operator.regularised_solve(likelihood.y, interpolation, likelihood.sigma_y**2))
    guided = error(solve(REDDiff(), prior, likelihood, n=64, steps=200), posterior)
    assert guided < 0.3 * float((start[0] - posterior.mean()).norm())
    assert guided < 0.15 * float((latent_prior.mean() - posterior.mean()).norm())


@pytest.mark.parametrize("solver", [DPS(), EnKG(guidance_scale=0.1), SCG()], ids=["DPS", "EnKG", "SCG"])
def test_the_decoder_path_gives_the_samples_of_the_same_problem_written_in_the_latent(solver):
    """The likelihood through the decoder is, to rounding, the latent likelihood of the composed matrix."""
    prior, latent_prior, image_likelihood, latent_likelihood, _ = gaussian_latent_problem()
    through_decoder = solve(solver, prior, image_likelihood, n=16, steps=12)
    in_latent = solve(solver, latent_prior, latent_likelihood, n=16, steps=12)
    torch.testing.assert_close(through_decoder, in_latent, rtol=1e-7, atol=1e-9)


class ImageTarget(Reward):
    """``-mean (x - target)^2``: a reward on images of the scale of a classifier's log-probability."""

    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, x0):
        return -(x0 - self.target).flatten(1).pow(2).mean(1)


# Universal guidance at its s = 20 and TDS at twist_scale = 1 leave the plausible range on this strongly
# informative toy (sigma_y = 0.1), through the decoder and written in the latent alike; smaller steps here.
GRADIENT_SOLVERS = [UniversalGuidance(scale=2.0), TFG(), FreeDoM(), MPGD(), LGD(), UGD(), DPS(),
                    SymplecticAdjointGuidance(), TDS(twist_scale=0.1)]


@pytest.mark.parametrize("solver", GRADIENT_SOLVERS, ids=lambda s: type(s).__name__)
def test_a_measurement_of_decoded_images_guides_every_gradient_solver(solver):
    prior, _, likelihood, *_ = gaussian_latent_problem()
    guided = likelihood(prior.decode(solve(solver, prior, likelihood, n=16, steps=12))).mean()
    unguided = likelihood(prior.decode(solve(DDIM(), prior, None, n=16, steps=12))).mean()
    assert guided > 0.5 * unguided  # log-likelihoods: negative, guided at most half as far from the data


def test_doodl_optimises_the_noise_through_the_decoder():
    """DOODL against its own unguided chain, EDICT (which needs about 30 steps on this toy)."""
    prior, _, likelihood, *_ = gaussian_latent_problem()
    guided = likelihood(prior.decode(solve(DOODL(iterations=10), prior, likelihood, n=16, steps=30))).mean()
    unguided = likelihood(prior.decode(solve(EDICT(), prior, None, n=16, steps=30))).mean()
    assert guided > unguided + 0.02 * abs(unguided)  # measured: -2785 against -2909 (DOODL's clipped steps)


@pytest.mark.parametrize("solver", [UniversalGuidance(scale=1.0), DPS(step_size="constant"), TDS(),
                                    SymplecticAdjointGuidance(step_size="constant")], ids=lambda s: type(s).__name__)
def test_a_reward_on_decoded_images_guides_gradient_solvers(solver):
    prior, latent_prior, *_ = gaussian_latent_problem()
    reward = ImageTarget(prior.decode(latent_prior.mean()[None] + 2.0))
    guided = reward(prior.decode(solve(solver, prior, reward, n=16, steps=12))).mean()
    unguided = reward(prior.decode(solve(DDIM(), prior, None, n=16, steps=12))).mean()
    assert guided > unguided + 0.1 * abs(unguided)


@pytest.mark.parametrize("solver", [EnKG(), SCG(), BestOfN()], ids=lambda s: type(s).__name__)
def test_derivative_free_solvers_only_decode(solver):
    prior, _, likelihood, *_ = gaussian_latent_problem()
    with counting() as counts:
        solve(solver, prior, likelihood, n=8, steps=6)
    assert counts.decoder_passes > 0
    assert counts.decoder_backward_passes == 0 and counts.backward_passes == 0


def test_restoration_solvers_refuse_the_nonlinear_decoder_path():
    prior, _, likelihood, *_ = gaussian_latent_problem()
    with pytest.raises(ValueError, match="latent prior"):
        solve(DDRM(), prior, likelihood, n=2, steps=4)


def test_the_user_reward_and_likelihood_are_unchanged_by_a_latent_run():
    prior, _, likelihood, *_ = gaussian_latent_problem()
    operator = likelihood.operator
    solve(DPS(), prior, likelihood, n=2, steps=4)
    assert likelihood.operator is operator and isinstance(in_image_space(likelihood, prior), GaussianLikelihood)


# --- the network path: a tiny text-conditioned latent pipeline --------------------------------------

def tiny_networks(seed=0):
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=4, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                layers_per_block=1, norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, sample_size=8)
    with torch.no_grad():  # a clean-latent prediction of latent scale, so random-weight runs stay in range
        unet.conv_out.weight.mul_(0.1)
        unet.conv_out.bias.zero_()
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type="sample")
    return unet, vae, scheduler


def tiny_tokenizer_and_text_encoder(folder):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{c: 2 + i for i, c in enumerate(letters)},
             **{c + "</w>": 28 + i for i, c in enumerate(letters)}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                                                bos_token_id=0, eos_token_id=1, pad_token_id=1))
    return tokenizer, text_encoder


def tiny_latent_prior(seed=0):
    unet, vae, scheduler = tiny_networks(seed)
    denoiser = DiffusersDenoiser(unet, scheduler.alphas_cumprod, "sample", (-math.inf, math.inf))
    return LatentPrior(denoiser, vae).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    """A Stable-Diffusion-style folder of the tiny networks, with a text encoder and tokenizer."""
    folder = tmp_path_factory.mktemp("pipeline")
    unet, vae, scheduler = tiny_networks()
    tokenizer, text_encoder = tiny_tokenizer_and_text_encoder(folder / "vocabulary")
    for name, part in (("unet", unet), ("vae", vae), ("scheduler", scheduler), ("text_encoder", text_encoder),
                       ("tokenizer", tokenizer)):
        part.save_pretrained(folder / name)
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "safety_checker": [None, None]}))
    return folder


def test_a_pipeline_folder_loads_as_a_text_conditioned_latent_prior(pipeline_folder):
    prior = load_pipeline_prior(pipeline_folder)
    assert isinstance(prior, LatentPrior) and prior.text_conditioned
    assert prior.shape == (4, 4, 4) and prior.image_shape == (3, 8, 8)
    assert prior.scaling_factor == pytest.approx(0.18215)
    cat, dog = prior.encode_prompt(["a cat", "a dog"])
    assert cat.shape == (8, 16) and not torch.allclose(cat, dog)
    sigmas = prior_sigmas(prior, 6)
    x = sigmas[0] * torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(0))
    with_prompt = DDIM()(prior, None, x, sigmas, encoder_hidden_states=prior.encode_prompt("a cat"))
    without = DDIM()(prior, None, x, sigmas)  # the empty prompt
    cfg = DDIM()(GuidedDenoiser(prior, CFG(scale=3.0)), None, x, sigmas,
                 encoder_hidden_states=prior.encode_prompt("a cat"))
    assert not torch.allclose(with_prompt, without) and not torch.allclose(cfg, with_prompt)
    assert prior.decode(cfg).shape == (2, 3, 8, 8)


def test_pipeline_folders_that_cannot_load_say_why(pipeline_folder, tmp_path):
    with pytest.raises(ValueError, match="nothing is downloaded"):
        load_pipeline_prior("runwayml/stable-diffusion-v1-5")
    sdxl = tmp_path / "sdxl"
    sdxl.mkdir()
    index = json.loads((pipeline_folder / "model_index.json").read_text())
    (sdxl / "model_index.json").write_text(json.dumps(dict(index, text_encoder_2=["transformers", "CLIPTextModel"])))
    with pytest.raises(ValueError, match="second text encoder"):
        load_pipeline_prior(sdxl)


def test_a_pipeline_card_is_checked(pipeline_folder, tmp_path):
    import shutil

    from diffguide.checked_weights import write_card
    from diffguide.priors.pipeline import pipeline_files

    folder = tmp_path / "carded"
    shutil.copytree(pipeline_folder, folder)
    files = pipeline_files(folder, ["unet", "vae", "scheduler", "text_encoder", "tokenizer"])
    write_card(folder, folder / "unet" / "diffusion_pytorch_model.safetensors", {}, files)
    load_pipeline_prior(folder)
    config = folder / "vae" / "config.json"
    config.write_text(config.read_text().replace('"scaling_factor": 0.18215', '"scaling_factor": 1.0'))
    with pytest.raises(ValueError, match="vae/config.json"):
        load_pipeline_prior(folder)


def test_the_decoder_gradient_in_the_guidance_path_equals_plain_autograd():
    prior = tiny_latent_prior()
    embedding = torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(1))
    reward = ImageTarget(torch.zeros(1, *prior.image_shape))
    z = torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor(0.7)
    with counting() as counts:
        run = Run(prior, prior_sigmas(prior, 4), counts, cond={"encoder_hidden_states": embedding})
        _, values, grad = run.denoise_with_grad(z, sigma, in_image_space(reward, prior))
    # the same gradient written out by hand: the UNet's clean latent at the VP input, the VAE decoder at z0 / s
    with torch.enable_grad():
        leaf = z.clone().requires_grad_(True)
        denoiser = prior.denoiser
        scale = 1 / math.sqrt(1 + sigma.item()**2)
        z0 = denoiser.unet(leaf * scale, denoiser.timestep(sigma.expand(2)).float(),
                           encoder_hidden_states=embedding.expand(2, -1, -1)).sample
        image = prior.vae.decode(z0 / prior.scaling_factor).sample
        expected = -image.flatten(1).pow(2).mean(1)
        (expected_grad,) = torch.autograd.grad(expected.sum(), leaf)
    torch.testing.assert_close(values, expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-6)
    assert (counts.nfe, counts.backward_passes, counts.decoder_passes, counts.decoder_backward_passes) == (1, 1, 1, 1)


def test_universal_guidance_counts_one_decoder_pass_and_backward_per_step():
    prior = tiny_latent_prior()
    sigmas = prior_sigmas(prior, 5)
    x = sigmas[0] * torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(0))
    with counting() as counts:
        UniversalGuidance()(prior, ImageTarget(torch.zeros(1, *prior.image_shape)), x, sigmas,
                            encoder_hidden_states=torch.zeros(1, 8, 16))
    assert counts.work()["decoder_passes"] == 5 and counts.work()["decoder_backward_passes"] == 5


class SavedTensors:
    """The peak bytes of tensors autograd holds for backward passes at once (``saved_tensors_hooks``)."""

    def __init__(self):
        self.live = self.peak = 0

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda packed: packed.tensor)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)

    def _pack(self, tensor):
        return _Held(self, tensor)


class _Held:
    def __init__(self, owner, tensor):
        self.owner, self.tensor, self.bytes = owner, tensor, tensor.numel() * tensor.element_size()
        owner.live += self.bytes
        owner.peak = max(owner.peak, owner.live)

    def __del__(self):
        self.owner.live -= self.bytes


SAG = dict(guidance_start=0.0, guidance_stop=1.0)


@pytest.mark.parametrize("few, many", [
    ((SymplecticAdjointGuidance(inner_steps=2, **SAG), 3), (SymplecticAdjointGuidance(inner_steps=8, **SAG), 3)),
    ((DOODL(iterations=2), 30), (DOODL(iterations=2), 90)),  # EDICT needs about 30 steps here
], ids=["SAG inner steps", "DOODL steps"])
def test_memory_heavy_paths_keep_flat_memory_with_the_decoder(few, many):
    """The most autograd holds at once does not grow with SAG's inner steps or DOODL's sampling steps."""
    prior = tiny_latent_prior()
    reward = ImageTarget(torch.zeros(1, *prior.image_shape))
    peaks = []
    for solver, steps in (few, many):
        sigmas = prior_sigmas(prior, steps)
        x = sigmas[0] * torch.randn(2, *prior.shape, generator=torch.Generator().manual_seed(0))
        with SavedTensors() as saved:
            solver(prior, reward, x, sigmas, generator=torch.Generator().manual_seed(0),
                   encoder_hidden_states=torch.zeros(1, 8, 16))
        peaks.append(saved.peak)
    assert peaks[0] > 0 and peaks[1] <= 1.3 * peaks[0]


def test_the_stable_diffusion_script_runs_on_a_pipeline_folder(pipeline_folder, tmp_path):
    from diffguide.benchmarks.stable_diffusion import main, methods

    main(["--pipeline", str(pipeline_folder), "--device", "cpu", "--steps", "30", "--batch", "1",
          "--out", str(tmp_path / "report.md"), "--images", str(tmp_path / "images.png")])
    rows = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == list(methods(30))
    assert (tmp_path / "images.png").stat().st_size > 0


# --- the shipped latent prior ------------------------------------------------------------------------

def test_the_shipped_latent_prior_reconstructs_held_out_crops_as_its_card_states():
    from diffguide.data.photos import photos_eval_tiles
    from diffguide.metrics import psnr
    from diffguide.priors import card, load

    prior, stated = load("photos-latent"), card("photos-latent")["autoencoder_card"]["evidence"]
    tiles = photos_eval_tiles()
    with torch.no_grad():
        reconstructed = prior.decode(prior.encode(tiles)).clamp(-1, 1)
    assert prior.shape == (4, 8, 8) and prior.image_shape == (3, 32, 32)
    assert float(psnr(reconstructed, tiles).mean()) >= stated["reconstruction_psnr_held_out"] - 0.01 > 25


def test_reward_guidance_over_the_shipped_latent_prior_follows_the_reward():
    from diffguide.benchmarks.tasks.photos_colour import PhotosColour

    task = PhotosColour()
    guided = task.run("photos-latent", UniversalGuidance(scale=1.0), seed=0, steps=10, reduced=True)
    unguided = task.run("photos-latent", DDIM(), seed=0, steps=10, reduced=True)
    assert guided["colour_error"] < 0.7 * unguided["colour_error"]


# --- the command line ----------------------------------------------------------------------------------

def test_sample_writes_decoded_images_of_a_prompted_pipeline(pipeline_folder, tmp_path):
    from PIL import Image

    from diffguide.cli import main

    out = tmp_path / "out"
    assert main(["sample", "--prior", str(pipeline_folder), "--prompt", "a cat", "--guidance", "cfg:scale=3",
                 "--negative-prompt", "dog", "--n", "2", "--steps", "4", "--out", str(out)]) == 0
    record = json.loads((out / "samples.json").read_text())
    assert Image.open(out / "sample_000.png").size == (8, 8)
    assert (record["prompt"], record["nfe"], record["decoder_passes"]) == ("a cat", 8, 1)


@pytest.mark.parametrize("argv, message", [
    (["--prior", "digits", "--prompt", "a cat"], "not text-conditioned"),
    (["--prior", "PIPELINE", "--negative-prompt", "dog"], "needs --guidance"),
    (["--prior", "PIPELINE", "--shape", "3,9,9"], "multiples of 2"),
])
def test_prompts_and_shapes_that_do_not_fit_are_refused(pipeline_folder, tmp_path, capsys, argv, message):
    from diffguide.cli import main

    argv = [str(pipeline_folder) if arg == "PIPELINE" else arg for arg in argv]
    before = sorted(tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(["sample", *argv, "--n", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and sorted(tmp_path.rglob("*")) == before


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", [UniversalGuidance(scale=1.0), EnKG()], ids=lambda s: type(s).__name__)
def test_latent_guidance_runs_on_each_device_and_repeats_bitwise(device, solver):
    prior = tiny_latent_prior().to(device)
    image = torch.zeros(1, *prior.image_shape, device=device)
    likelihood = GaussianLikelihood(Matrix(torch.eye(math.prod(prior.image_shape), device=device)[:20],
                                           prior.image_shape), image.flatten(1)[:, :20] + 0.1, 0.1).to(device)
    sigmas = prior_sigmas(prior, 4).to(device)
    runs = []
    for _ in range(2):
        generator = torch.Generator(device).manual_seed(0)
        x = sigmas[0] * torch.randn(4, *prior.shape, generator=generator, device=device)
        runs.append(solver(prior, likelihood, x, sigmas, generator=generator,
                           encoder_hidden_states=torch.zeros(1, 8, 16, device=device)))
    assert runs[0].device.type == device and torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("autoencoder", ["AutoencoderTiny", "VQModel"])
def test_the_other_autoencoders_decode_encode_and_pass_gradients(autoencoder):
    from diffusers import AutoencoderTiny, VQModel

    torch.manual_seed(0)
    if autoencoder == "AutoencoderTiny":
        vae = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                              num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4)
    else:  # decoded as the LDM pipeline does, through the quantiser (a straight-through gradient)
        vae = VQModel(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                      block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, num_vq_embeddings=16,
                      vq_embed_dim=4)
    prior = tiny_latent_prior()
    prior = LatentPrior(prior.denoiser, vae.eval().requires_grad_(False))
    assert prior.downsampling == 2 and prior.image_shape == (3, 8, 8)
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    assert prior.encode(image).shape == (2, *prior.shape)
    z = torch.randn(2, *prior.shape, requires_grad=True)
    with counting() as counts:
        (grad,) = torch.autograd.grad(prior.decode(z).pow(2).sum(), z)
    assert float(grad.abs().sum()) > 0 and (counts.decoder_passes, counts.decoder_backward_passes) == (1, 1)
