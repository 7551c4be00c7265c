"""Symplectic adjoint guidance: the adjoint gradient against plain autograd, the n-step ODE
estimate against the exact ODE map, the sampler against the exact Gaussian posterior, its
reduction to DDIM under a zero reward, and its cost."""
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from diffguide.counting import counting
from diffguide.operators.matrix import Matrix
from diffguide.priors import DiffusersDenoiser
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.base import Reward
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.ode_estimate import inner_sigmas, ode_estimate
from diffguide.solvers.symplectic_adjoint import SymplecticAdjointGuidance, adjoint_gradient
from problems import ZeroReward, random_mixture

EVERY_STEP = {"guidance_start": 0.0, "guidance_stop": 1.0}


class Wavy(Reward):
    """A non-quadratic reward, so that the gradient depends on where the estimate lands."""

    def forward(self, x0):
        return -(x0 - 0.5).pow(2).flatten(1).sum(1) + x0.sin().flatten(1).sum(1)


def autograd_gradient(denoiser, x, sigmas, objective):
    """The reference: backpropagate through all inner steps at once, keeping every graph."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        x0 = ode_estimate(denoiser, x, sigmas)
        (grad,) = torch.autograd.grad(objective(x0).sum(), x)
    return x0.detach(), grad


def tiny_unet_denoiser() -> DiffusersDenoiser:
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    return DiffusersDenoiser(unet.double().eval(), DDIMScheduler().alphas_cumprod).requires_grad_(False)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_adjoint_gradient_equals_autograd_on_a_mixture(n):
    prior = random_mixture(6, 3, seed=2)
    sigmas = karras_sigmas(30, 1e-3, 40.0).double()
    g = torch.Generator().manual_seed(0)
    x = prior.sample(5, g) + sigmas[8] * torch.randn(5, 6, generator=g, dtype=torch.float64)
    inner = inner_sigmas(sigmas, 8, n)
    assert len(inner) == n + 1 and inner[0] == sigmas[8] and inner[-1] == 0
    with counting() as counts:
        estimate = adjoint_gradient(prior, x, inner, Wavy())
    x0, grad = autograd_gradient(prior, x, inner, Wavy())
    print(f"n={n}: relative error of the adjoint gradient {relative_error(estimate.grad, grad):.1e}")
    assert relative_error(estimate.grad, grad) <= 1e-4
    assert torch.allclose(estimate.x0, x0, rtol=0, atol=1e-12)
    assert torch.allclose(estimate.values, Wavy()(x0), rtol=0, atol=1e-12)
    assert torch.equal(estimate.denoised, prior(x, sigmas[8]))
    assert grad.abs().max() > 1e-3  # a gradient that is not trivially zero
    # the prior is called directly here (uncounted); only the backward passes count
    assert counts.grad_evals == n


@pytest.mark.parametrize("n", [1, 3])
def test_adjoint_gradient_equals_autograd_through_a_unet(n):
    denoiser = tiny_unet_denoiser()
    sigmas = torch.tensor([12.0, 3.0, 0.7, 0.1, 0.0], dtype=torch.float64)
    inner = inner_sigmas(sigmas, 0, n)
    x = sigmas[0] * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    estimate = adjoint_gradient(denoiser, x, inner, Wavy())
    _, grad = autograd_gradient(denoiser, x, inner, Wavy())
    print(f"UNet, n={n}: relative error of the adjoint gradient {relative_error(estimate.grad, grad):.1e}")
    assert relative_error(estimate.grad, grad) <= 1e-4 and grad.abs().max() > 1e-3


def test_ode_estimate_converges_to_the_exact_ode_map():
    """For N(mu, diag(lam)) the probability-flow ODE maps x at sigma to
    mu + sqrt(lam / (lam + sigma^2)) (x - mu); n = 1 is Tweedie, mu + lam / (lam + sigma^2) (x - mu)."""
    lam = torch.tensor([0.05, 0.3, 1.0, 4.0], dtype=torch.float64)
    mu = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    prior = GaussianPrior(mu, torch.diag(lam))
    sigmas = karras_sigmas(400, 1e-3, 40.0).double()
    x = mu + sigmas[100] * torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = mu + torch.sqrt(lam / (lam + sigmas[100] ** 2)) * (x - mu)
    tweedie = mu + lam / (lam + sigmas[100] ** 2) * (x - mu)
    assert torch.allclose(ode_estimate(prior, x, inner_sigmas(sigmas, 100, 1)), tweedie, atol=1e-12)
    errors = [float((ode_estimate(prior, x, inner_sigmas(sigmas, 100, n)) - exact).abs().max()) for n in (1, 4, 16, 64)]
    print("max |n-step estimate - exact ODE map| for n = 1, 4, 16, 64:", [f"{e:.2e}" for e in errors])
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.05 * errors[0]


def gaussian_problem(dim=8, observed=4, sigma_y=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    prior = GaussianPrior(torch.zeros(dim), factor @ factor.T + 0.1 * torch.eye(dim, dtype=torch.float64))
    mask = Matrix(torch.eye(dim, dtype=torch.float64)[:observed])
    likelihood = GaussianLikelihood.simulate(mask, prior.sample(1, g), sigma_y, g)
    return prior, likelihood


def sample(solver, prior, reward, n=256, steps=100, seed=1):
    g = torch.Generator().manual_seed(seed)
    sigmas = karras_sigmas(steps, 1e-3, 40.0).double()
    x = sigmas[0] * torch.randn(n, *prior.shape, generator=g, dtype=torch.float64)
    return solver(prior, reward, x, sigmas, generator=g)


@pytest.mark.parametrize("solver", [
    SymplecticAdjointGuidance(),  # the paper's normalised step, window and time travel
    SymplecticAdjointGuidance(step_size="constant", rho=0.003, repeats=1, **EVERY_STEP),
])
def test_guided_mean_moves_to_the_exact_posterior_mean(solver):
    prior, likelihood = gaussian_problem()
    posterior = prior.posterior(likelihood.operator, likelihood.y, likelihood.sigma_y)
    guided_error = float((sample(solver, prior, likelihood).mean(0) - posterior.mean()).norm())
    unguided_error = float((sample(DDIM(), prior, None).mean(0) - posterior.mean()).norm())
    print(f"{solver}: |mean - posterior mean| guided {guided_error:.3f}, unguided DDIM {unguided_error:.3f}")
    assert guided_error < 0.2 * unguided_error


@pytest.mark.parametrize("step_size", ["paper", "constant"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_zero_reward_reduces_to_ddim(step_size, eta):
    prior = random_mixture(4, 3, seed=1)
    solver = SymplecticAdjointGuidance(step_size=step_size, rho=1.0, repeats=1, eta=eta, **EVERY_STEP)
    guided = sample(solver, prior, ZeroReward(), n=16, steps=20)
    assert torch.equal(guided, sample(DDIM(eta=eta), prior, None, n=16, steps=20))


def test_time_travel_keeps_the_prior():
    """Re-noising from sigma_{i+1} back to sigma_i adds variance sigma_i^2 - sigma_{i+1}^2: with a
    zero reward and 4 repeats of every step the samples keep the exact prior's covariance
    (as close as DDIM's own at 50 steps, 0.09)."""
    g = torch.Generator().manual_seed(0)
    factor = torch.randn(4, 4, generator=g, dtype=torch.float64)
    prior = GaussianPrior(torch.zeros(4), factor @ factor.T / 4 + 0.1 * torch.eye(4, dtype=torch.float64))
    solver = SymplecticAdjointGuidance(inner_steps=1, repeats=4, **EVERY_STEP)
    samples = sample(solver, prior, ZeroReward(), n=4000, steps=50)
    error = float((torch.cov(samples.T) - prior.covariance()).norm() / prior.covariance().norm())
    print(f"relative covariance error with time travel: {error:.3f}")
    assert error < 0.15


def test_costs_as_documented():
    """Guided step i, each repeat: 2 n_i - 1 NFE and n_i backward passes with n_i = min(n, N - i);
    one reward (operator) evaluation per sample; unguided steps: 1 NFE."""
    prior, likelihood = gaussian_problem()
    steps, n, repeats, batch = 10, 4, 3, 8
    solver = SymplecticAdjointGuidance(inner_steps=n, repeats=repeats, guidance_start=0.45, guidance_stop=1.0)
    guided = [i for i in range(steps) if 0.45 <= i / steps]  # 5 .. 9: n_i = 4, 4, 3, 2, 1
    inner = [min(n, steps - i) for i in guided]
    with counting() as counts:
        sample(solver, prior, likelihood, n=batch, steps=steps)
    assert counts.nfe == (steps - len(guided)) + repeats * sum(2 * k - 1 for k in inner) == 5 + 3 * 23
    assert counts.grad_evals == repeats * sum(inner) == 3 * 14
    assert counts.operator_evals == repeats * len(guided) * batch


def test_rejects_bad_settings():
    for bad in [{"inner_steps": 0}, {"repeats": 0}, {"step_size": "adaptive"}, {"rho": -1.0},
                {"guidance_start": 0.8, "guidance_stop": 0.2}, {"eta": 2.0}]:
        with pytest.raises(ValueError):
            SymplecticAdjointGuidance(**bad)
    prior, likelihood = gaussian_problem()
    likelihood.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        sample(SymplecticAdjointGuidance(), prior, likelihood, n=2, steps=3)


def test_sag_ode_method_only_euler():
    """The discrete adjoint is exact for Euler steps only: other integrators are refused with the reason."""
    import pytest as _pytest
    from diffguide.solvers.symplectic_adjoint import SymplecticAdjointGuidance as _SAG
    assert _SAG(ode_method="euler").ode_method == "euler"
    with _pytest.raises(ValueError, match="adjoint"):
        _SAG(ode_method="rk4")
