"""DiffusersDenoiser: a diffusers UNet2DModel + DDIM scheduler, saved and reloaded, sampled with
diffguide's DDIM, matches the plain diffusers DDIM loop; loading, conditioning and resizing."""
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from diffguide.priors import DiffusersDenoiser
from diffguide.schedules import scheduler_sigmas
from diffguide.solvers.ddim import DDIM

STEPS = 20


def make_unet(**kwargs) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(sample_size=16, in_channels=2, out_channels=2, block_out_channels=(16, 32), layers_per_block=1,
                       norm_num_groups=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
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
    denoiser = DiffusersDenoiser.from_pretrained(save(tmp_path, unet, scheduler))
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
    denoiser = DiffusersDenoiser.from_pretrained(save(tmp_path, unet, scheduler))
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
    with pytest.raises(ValueError, match=r"33x32.*divisible by 2"):
        denoiser.with_shape((2, 33, 32))
    with pytest.raises(ValueError, match="C = 2"):
        denoiser.with_shape((3, 32, 32))


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
