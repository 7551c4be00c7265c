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
