"""The device contract, as far as it is built: noise is drawn on the generator's device and moved
(diffusers' ``randn_tensor`` rule), so a CPU generator seeds work on any device with the same
numbers as on the CPU; the closed-form priors are Modules whose tensors move with ``.to``."""
import pytest
import torch

from diffguide.noise import rand, randn
from diffguide.priors import GaussianMixturePrior, GaussianPrior
from diffguide.solvers.run import Run


@pytest.mark.parametrize("draw, reference", [(randn, torch.randn), (rand, torch.rand)])
def test_draws_match_torch_with_the_same_generator(draw, reference):
    ours = draw((3, 4), torch.Generator().manual_seed(5), dtype=torch.float64, device="cpu")
    assert torch.equal(ours, reference((3, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float64))


@pytest.mark.parametrize("draw", [randn, rand])
def test_a_cpu_generator_serves_another_device(draw):
    # "meta" stands in for an accelerator on a machine without one (the CUDA case is below)
    out = draw((2, 3), torch.Generator().manual_seed(0), dtype=torch.float32, device="meta")
    assert out.device.type == "meta" and out.shape == (2, 3)


def test_run_noise_follows_the_state_device():
    run = Run(None, torch.tensor([1.0, 0.0]), None, generator=torch.Generator().manual_seed(0))
    assert run.noise_like(torch.zeros(2, 3, device="meta")).device.type == "meta"


def test_closed_form_priors_move_with_to():
    mixture = GaussianMixturePrior(torch.tensor([0.3, 0.7]), torch.randn(2, 3), torch.eye(3).repeat(2, 1, 1))
    moved = mixture.to("meta")
    assert {t.device.type for t in moved.buffers()} == {"meta"} and len(list(moved.buffers())) == 5
    gaussian = GaussianPrior(torch.zeros(3), torch.eye(3))
    assert torch.equal(gaussian(torch.ones(2, 3), 1.0), torch.full((2, 3), 0.5))  # x / (1 + sigma^2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_on_cuda_gives_the_cpu_numbers():
    cpu = randn((4,), torch.Generator().manual_seed(1), dtype=torch.float32, device="cpu")
    cuda = randn((4,), torch.Generator().manual_seed(1), dtype=torch.float32, device="cuda")
    assert cuda.device.type == "cuda" and torch.equal(cuda.cpu(), cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gaussian_prior_samples_on_cuda_from_a_cpu_generator():
    prior = GaussianPrior(torch.zeros(3), torch.eye(3))
    on_cpu = prior.sample(4, torch.Generator().manual_seed(2))
    on_cuda = prior.to("cuda").sample(4, torch.Generator().manual_seed(2))
    assert on_cuda.device.type == "cuda" and torch.allclose(on_cuda.cpu(), on_cpu)


# --- the solver contract on every device there is: CPU always, CUDA when present (marked "gpu" by conftest) ---

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


def small_problem(device, dtype=torch.float64):
    from diffguide.operators.matrix import Matrix
    from diffguide.rewards.likelihood import GaussianLikelihood
    from problems import random_mixture

    prior = random_mixture(4, 3, seed=1).to(device)
    a = torch.randn(2, 4, generator=torch.Generator().manual_seed(3), dtype=dtype)
    likelihood = GaussianLikelihood(Matrix(a, (4,)), torch.tensor([[0.5, -0.2]], dtype=dtype), sigma_y=0.2)
    return prior, likelihood.to(device)


def every_solver():
    from diffguide import solvers

    special = {"ClassifierGuidance", "ReadoutGuidance"}  # their rewards read a classifier / the prior's features
    # universal guidance's default s = 20 suits data of unit scale; on this mixture (means spread 3) its first
    # state leaves the plausible range (RMS 197 for a prior of scale 8), which the divergence check reports
    small = {"DOODL": {"iterations": 2}, "SCG": {"candidates": 4}, "UniversalGuidance": {"scale": 1.0}}
    return [pytest.param(getattr(solvers, name)(**small.get(name, {})), id=name)
            for name in solvers.__all__ if name not in {"Solver", "Run", "StepRecord", "set_progress"} | special]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", every_solver())
def test_every_solver_runs_on_the_device_and_repeats_bitwise(solver, device):
    from diffguide.schedules import karras_sigmas

    prior, likelihood = small_problem(device)
    sigmas = karras_sigmas(8, 2e-3, 20.0).double()
    results = []
    for _ in range(2):
        x = sigmas[0] * torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        out = solver(prior, likelihood if solver.needs != "none" else None, x.to(device), sigmas,
                     generator=torch.Generator().manual_seed(1))
        assert out.device.type == device and out.dtype == torch.float64 and bool(torch.isfinite(out).all())
        results.append(out)
    assert torch.equal(results[0], results[1])


def test_a_prior_on_another_device_is_refused_naming_both():
    from diffguide.solvers import DPS

    prior, likelihood = small_problem("cpu")
    with pytest.raises(ValueError, match=r"the prior \(GaussianMixturePrior\) is on meta but the state x is on cpu"):
        DPS()(prior.to("meta"), likelihood, torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1.0, 0.0]))
    prior, likelihood = small_problem("cpu")  # .to moves a Module in place
    with pytest.raises(ValueError, match=r"the reward \(GaussianLikelihood\) is on meta but the state x is on cpu"):
        DPS()(prior, likelihood.to("meta"), torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1.0, 0.0]))


def test_a_measurement_of_another_dtype_is_refused_naming_both():
    from diffguide.solvers import DPS

    prior, likelihood = small_problem("cpu", dtype=torch.float32)
    with pytest.raises(ValueError, match=r"holds torch.float32 tensors but the state x is torch.float64"):
        DPS()(prior, likelihood, torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_lower_precision_runs_the_unet_under_autocast_and_keeps_the_state_fp32(precision, device):
    from diffusers import DDIMScheduler, UNet2DModel

    from diffguide.priors import DiffusersDenoiser
    from diffguide.schedules import prior_sigmas
    from diffguide.solvers import DDIM

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.01)  # small outputs: no divergence check trips on random weights
    prior = DiffusersDenoiser(unet.eval(), DDIMScheduler().alphas_cumprod, prediction_type="sample").to(device)
    sigmas = prior_sigmas(prior, 4)
    x = sigmas[0] * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    full = DDIM()(prior, None, x.to(device), sigmas)
    low = [DDIM()(prior.set_precision(precision), None, x.to(device), sigmas) for _ in range(2)]
    prior.set_precision("fp32")
    assert low[0].dtype == torch.float32 and torch.equal(low[0], low[1])
    assert 0 < float((low[0] - full).abs().max()) < 0.05  # autocast changed the numbers, a little
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        prior.set_precision("fp8")
