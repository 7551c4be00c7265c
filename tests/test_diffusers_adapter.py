"""DiffusersDenoiser: a diffusers UNet2DModel + DDIM scheduler, saved and reloaded, sampled with
diffguide's DDIM, matches the plain diffusers DDIM loop; loading (any DDPM-type scheduler, pipeline
folders, .bin weights, clear errors), conditioning, resizing and images of any size."""
import json
import math

import diffusers
import pytest
import torch
from diffusers import (DDIMScheduler, DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                       PNDMScheduler, SchedulerMixin, UNet2DConditionModel, UNet2DModel)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from PIL import Image

from diffguide.cli import main
from diffguide.priors import DiffusersDenoiser
from diffguide.priors.pad_to_multiple import pad_to_multiple
from diffguide.priors.unet_padding import set_padding_mode
from diffguide.schedules import scheduler_sigmas
from diffguide.solvers.ddim import DDIM

STEPS = 20
#: the random UNets' samples reach |x| ~ 400: an unbounded data range skips the divergence guard's range check
UNBOUNDED = (-math.inf, math.inf)


def make_unet(channels=2, sample_size=16, seed=0, **kwargs) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=sample_size, in_channels=channels, out_channels=channels,
                       block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), **kwargs).eval()


def make_scheduler(prediction_type="epsilon") -> DDIMScheduler:
    return DDIMScheduler(clip_sample=False, set_alpha_to_one=True, prediction_type=prediction_type)


def save(folder, unet, scheduler, layout="pipeline"):
    unet.save_pretrained(folder / "unet" if layout == "pipeline" else folder)
    scheduler.save_pretrained(folder / "scheduler" if layout == "pipeline" else folder)
    return folder


def diffusers_ddim(unet, scheduler, x_T, **cond):
    """The reference: diffusers' own DDIM loop in VP form."""
    scheduler.set_timesteps(STEPS)
    x = x_T
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t, **cond).sample, t, x).prev_sample
    return x


def diffguide_ddim(denoiser, scheduler, x_T, **cond):
    """diffguide's DDIM from the same noise: the VE state is ``x_T / sqrt(abar_T) = x_T sqrt(1 + sigma_0^2)``."""
    sigmas = scheduler_sigmas(scheduler, STEPS)
    x = x_T * torch.sqrt(1 + sigmas[0] ** 2).to(x_T.dtype)
    return DDIM(eta=0.0)(denoiser, None, x, sigmas, **cond)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_ddim_matches_diffusers(tmp_path, prediction_type, dtype):
    unet, scheduler = make_unet(), make_scheduler(prediction_type)
    denoiser = DiffusersDenoiser.from_pretrained(save(tmp_path, unet, scheduler), data_range=UNBOUNDED)
    assert denoiser.prediction_type == prediction_type
    x_T = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(1), dtype=dtype)
    if dtype == torch.float64:
        # diffusers computes its step coefficients from its float32 table even for a float64
        # state; with the same table in float64 both loops are float64 throughout.
        denoiser.unet.double()
        unet.double()
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
        scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.double()
    expected = diffusers_ddim(unet, scheduler, x_T)
    sample = diffguide_ddim(denoiser, scheduler, x_T)
    error = (sample - expected).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    print(f"{prediction_type} {dtype}: max |diffguide - diffusers| = {error:.3g} (max |x| = {scale:.3g})")
    assert sample.dtype == dtype
    # float32: both loops round differently (the random epsilon model's samples reach |x| ~ 400).
    assert error <= (1e-4 * scale if dtype == torch.float32 else 1e-10)


def test_flat_layout_loads_the_same_model(tmp_path):
    unet, scheduler = make_unet(), make_scheduler("v_prediction")
    pipeline = DiffusersDenoiser.from_pretrained(save(tmp_path / "pipeline", unet, scheduler))
    flat = DiffusersDenoiser.from_pretrained(save(tmp_path / "flat", unet, scheduler, layout="flat"))
    x, sigma = torch.randn(2, 2, 16, 16), torch.tensor([0.3, 12.0])
    assert flat.prediction_type == "v_prediction"
    assert torch.equal(flat(x, sigma), pipeline(x, sigma))


def test_class_labels_pass_through(tmp_path):
    unet, scheduler = make_unet(num_class_embeds=3), make_scheduler()
    denoiser = DiffusersDenoiser.from_pretrained(save(tmp_path, unet, scheduler), data_range=UNBOUNDED)
    x_T = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 2])
    expected = diffusers_ddim(unet, scheduler, x_T, class_labels=labels)
    sample = diffguide_ddim(denoiser, scheduler, x_T, class_labels=labels)
    assert (sample - expected).abs().max() <= 1e-4 * max(1.0, expected.abs().max().item())
    other = diffguide_ddim(denoiser, scheduler, x_T, class_labels=torch.tensor([1, 1]))
    assert not torch.allclose(other, sample)


def test_sigma_to_timestep_is_exact_on_the_table(tmp_path):
    scheduler = make_scheduler()
    denoiser = DiffusersDenoiser(make_unet(), scheduler.alphas_cumprod)
    table = denoiser.sigma_table
    assert torch.equal(denoiser.timestep(table), torch.arange(1000, dtype=torch.float64))
    # the scheduler's own sigmas, as float32 like a solver passes them, hit its integer timesteps
    sigmas = scheduler_sigmas(scheduler, STEPS)[:-1].float()
    assert torch.equal(denoiser.timestep(sigmas), scheduler.timesteps.double())
    between = torch.sqrt(table[10] * table[11])
    assert denoiser.timestep(between).item() == pytest.approx(10.5, abs=1e-9)
    assert (denoiser.sigma_min, denoiser.sigma_max) == (table[0].item(), table[-1].item())


def test_dtype_and_gradient():
    denoiser = DiffusersDenoiser(make_unet(), make_scheduler().alphas_cumprod)
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    x0 = denoiser(x, 2.0)
    assert x0.dtype == torch.float64 and x0.shape == x.shape
    (grad,) = torch.autograd.grad(x0.square().sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_with_shape_runs_fully_convolutionally():
    unet = make_unet()
    denoiser = DiffusersDenoiser(unet, make_scheduler().alphas_cumprod)
    assert denoiser.shape == (2, 16, 16)
    large = denoiser.with_shape((2, 32, 32))
    assert large.shape == (2, 32, 32) and large.unet is unet
    x, sigma = torch.randn(3, 2, 32, 32), torch.tensor([0.1, 1.0, 50.0])
    s = sigma.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        eps = unet(x / torch.sqrt(1 + s**2), large.timestep(sigma).float()).sample
        assert torch.allclose(large(x, sigma), x - s * eps, rtol=1e-5, atol=1e-4)
    assert denoiser.with_shape((2, 33, 32)).shape == (2, 33, 32)
    with pytest.raises(ValueError, match="C = 2"):
        denoiser.with_shape((3, 32, 32))
    periodic = DiffusersDenoiser(set_padding_mode(make_unet(), "circular"), make_scheduler().alphas_cumprod)
    with pytest.raises(ValueError, match=r"33x32.*divisible by 2.*circular"):
        periodic.with_shape((2, 33, 32))


def test_invalid_prediction_type():
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusersDenoiser(make_unet(), make_scheduler().alphas_cumprod, prediction_type="score")


def test_loading_errors_are_value_errors(tmp_path):
    missing = tmp_path / "nothing-here"
    with pytest.raises(ValueError, match="nothing-here.*no such folder"):
        DiffusersDenoiser.from_pretrained(missing)

    no_scheduler = tmp_path / "no-scheduler"
    make_unet().save_pretrained(no_scheduler)
    with pytest.raises(ValueError, match="scheduler_config.json"):
        DiffusersDenoiser.from_pretrained(no_scheduler)

    no_weights = tmp_path / "no-weights"
    save(no_weights, make_unet(), make_scheduler())
    (no_weights / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ValueError, match="no-weights.*safetensors"):
        DiffusersDenoiser.from_pretrained(no_weights)

    truncated = tmp_path / "truncated"
    save(truncated, make_unet(), make_scheduler())
    weights = truncated / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.*safetensors") as info:
        DiffusersDenoiser.from_pretrained(truncated)
    assert info.value.__cause__ is not None


SCHEDULER_KINDS = [DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                   EulerAncestralDiscreteScheduler, PNDMScheduler, HeunDiscreteScheduler]


@pytest.mark.parametrize("kind", SCHEDULER_KINDS, ids=lambda kind: kind.__name__)
def test_any_ddpm_type_scheduler_gives_its_noise_table(tmp_path, kind):
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    denoiser = DiffusersDenoiser.from_pretrained(save(tmp_path, make_unet(), kind.from_config(ddpm.config)))
    assert torch.allclose(denoiser.alphas_cumprod, ddpm.alphas_cumprod.double())
    assert denoiser.prediction_type == "v_prediction"


class TablelessScheduler(SchedulerMixin, ConfigMixin):
    """A DDPM-type scheduler that keeps no ``alphas_cumprod``, as some other scheduler class might."""

    config_name = "scheduler_config.json"

    @register_to_config
    def __init__(self, num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear"):
        pass


def write_scheduler_config(folder, **config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scheduler_config.json").write_text(json.dumps(config))


def test_a_scheduler_without_a_table_gets_its_betas_from_the_config(tmp_path, monkeypatch):
    monkeypatch.setattr(diffusers, "TablelessScheduler", TablelessScheduler, raising=False)
    make_unet().save_pretrained(tmp_path / "unet")
    write_scheduler_config(tmp_path / "scheduler", _class_name="TablelessScheduler", beta_start=2e-4,
                           beta_end=0.03, beta_schedule="scaled_linear", num_train_timesteps=500)
    denoiser = DiffusersDenoiser.from_pretrained(tmp_path)
    expected = DDPMScheduler(beta_start=2e-4, beta_end=0.03, beta_schedule="scaled_linear", num_train_timesteps=500)
    assert torch.allclose(denoiser.alphas_cumprod, expected.alphas_cumprod.double())
    assert denoiser.prediction_type == "epsilon"


@pytest.mark.parametrize("config, message", [
    ({"_class_name": "NoSuchScheduler"}, "'NoSuchScheduler' is not a diffusers scheduler"),
    ({"_class_name": "FlowMatchEulerDiscreteScheduler"}, "FlowMatchEulerDiscreteScheduler has no noise schedule"),
    ({"_class_name": "ScoreSdeVeScheduler", "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"},
     "ScoreSdeVeScheduler has no noise schedule"),
], ids=["unknown class", "flow matching", "VE with stray beta fields"])
def test_a_scheduler_without_a_ddpm_noise_schedule_is_refused(tmp_path, config, message):
    make_unet().save_pretrained(tmp_path / "unet")
    write_scheduler_config(tmp_path / "scheduler", **config)
    with pytest.raises(ValueError, match=message):
        DiffusersDenoiser.from_pretrained(tmp_path)


def test_a_pipeline_folder_with_model_index_loads(tmp_path):
    unet, scheduler = make_unet(), make_scheduler()
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model_index.json").is_file()
    pipeline = DiffusersDenoiser.from_pretrained(tmp_path / "saved")
    plain = DiffusersDenoiser.from_pretrained(save(tmp_path / "plain", unet, scheduler))
    x, sigma = torch.randn(2, 2, 16, 16), torch.tensor([0.3, 12.0])
    assert torch.equal(pipeline(x, sigma), plain(x, sigma))


def make_condition_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                layers_per_block=1, norm_num_groups=8, cross_attention_dim=8, attention_head_dim=2,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))


@pytest.mark.parametrize("with_index", [True, False], ids=["model_index.json", "no model_index.json"])
def test_a_text_conditioned_unet_is_refused_with_the_loader_to_use(tmp_path, with_index):
    save(tmp_path, make_condition_unet(), make_scheduler())
    if with_index:
        (tmp_path / "model_index.json").write_text(json.dumps({
            "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
            "scheduler": ["diffusers", "DDIMScheduler"], "vae": ["diffusers", "AutoencoderKL"]}))
    with pytest.raises(ValueError, match="UNet2DConditionModel.*load_pipeline_prior"):
        DiffusersDenoiser.from_pretrained(tmp_path)


def test_a_latent_pipeline_of_a_unet2dmodel_is_refused_with_the_loader_to_use(tmp_path):
    save(tmp_path, make_unet(), make_scheduler())
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "LDMPipeline", "unet": ["diffusers", "UNet2DModel"], "vqvae": ["diffusers", "VQModel"],
        "scheduler": ["diffusers", "DDIMScheduler"]}))
    with pytest.raises(ValueError, match="vqvae: VQModel.*load_pipeline_prior"):
        DiffusersDenoiser.from_pretrained(tmp_path)


def test_bin_weights_load_like_safetensors_which_win_when_both_exist(tmp_path):
    unet, scheduler = make_unet(), make_scheduler()
    safetensors = DiffusersDenoiser.from_pretrained(save(tmp_path / "safetensors", unet, scheduler))
    unet.save_pretrained(tmp_path / "bin" / "unet", safe_serialization=False)
    scheduler.save_pretrained(tmp_path / "bin" / "scheduler")
    assert not list((tmp_path / "bin").rglob("*.safetensors"))
    from_bin = DiffusersDenoiser.from_pretrained(tmp_path / "bin")
    x, sigma = torch.randn(2, 2, 16, 16), torch.tensor([0.3, 12.0])
    assert torch.equal(from_bin(x, sigma), safetensors(x, sigma))
    make_unet(seed=1).save_pretrained(tmp_path / "safetensors" / "unet", safe_serialization=False)
    both = DiffusersDenoiser.from_pretrained(tmp_path / "safetensors")
    assert torch.equal(both(x, sigma), safetensors(x, sigma))


class NotATensor:
    """An arbitrary pickled object: ``torch.load(weights_only=True)`` refuses to rebuild it."""


def test_bin_weights_are_loaded_weights_only(tmp_path):
    save(tmp_path, make_unet(), make_scheduler())
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"conv_in.weight": NotATensor()}, tmp_path / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError, match="could not load the UNet2DModel weights"):
        DiffusersDenoiser.from_pretrained(tmp_path)


def test_a_hub_id_says_to_download_it_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"huggingface-cli download google/ddpm-cifar10-32 --local-dir DIR"):
        DiffusersDenoiser.from_pretrained("google/ddpm-cifar10-32")


def test_cli_shape_for_a_unet_without_sample_size(tmp_path, capsys):
    save(tmp_path / "model", make_unet(channels=1, sample_size=None), make_scheduler("sample"))
    sample = ["sample", "--prior", str(tmp_path / "model"), "--n", "1", "--steps", "1", "--solver", "ddpm"]
    assert main([*sample, "--shape", "1,12,20", "--out", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "sample_000.png").size == (20, 12)
    assert main([*sample, "--out", str(tmp_path / "none")]) == 2
    assert "--shape C,H,W" in capsys.readouterr().err
    assert main([*sample, "--shape", "1,x", "--out", str(tmp_path / "bad")]) == 2
    assert "--shape must be C,H,W" in capsys.readouterr().err


def test_pad_to_multiple_reflects_or_replicates():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 8) and torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[..., 3, :5], x[..., 1, :]) and torch.equal(padded[..., :3, 5], x[..., :, 3])
    tiny = torch.tensor([[[[1.0, 2.0]]]])
    assert torch.equal(pad_to_multiple(tiny, 4), torch.tensor([[[[1.0, 2.0, 2.0, 2.0]] * 4]]))
    assert pad_to_multiple(padded, 4) is padded


def test_any_image_size_is_padded_for_the_unet_and_cropped_back():
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=2, out_channels=2, block_out_channels=(8, 16, 16),
                       layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D",) * 3,
                       up_block_types=("UpBlock2D",) * 3).eval()
    denoiser = DiffusersDenoiser(unet, make_scheduler().alphas_cumprod)
    assert denoiser.size_multiple == 4
    sigma = torch.tensor([0.5, 20.0])
    for height, width in [(37, 53), (15, 17), (1, 2)]:
        sized = denoiser.with_shape((2, height, width))
        assert sized.shape == (2, height, width)
        with torch.no_grad():
            x0 = sized(torch.randn(2, *sized.shape), sigma)
        assert x0.shape == (2, 2, height, width) and torch.isfinite(x0).all()
    x, s = torch.randn(2, 2, 16, 16), sigma.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        eps = unet(x * torch.rsqrt(1 + s**2), denoiser.timestep(sigma).float()).sample
        assert torch.equal(denoiser(x, sigma), x - s * eps)


def test_a_sigma_below_the_trained_range_is_evaluated_at_timestep_0_with_a_warning():
    from diffguide.priors.embedded import load

    prior = load("digits")
    with pytest.warns(RuntimeWarning, match="below the prior's sigma_min"):
        timestep = prior.timestep(torch.tensor([prior.sigma_min / 10], dtype=torch.float64))
    assert float(timestep) == 0.0
    with pytest.warns(RuntimeWarning, match="below the prior's sigma_min"):
        assert torch.isfinite(prior(torch.zeros(1, *prior.shape), prior.sigma_min / 10)).all()
