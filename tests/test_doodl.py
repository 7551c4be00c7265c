"""EDICT's exact inversion and sampling; DOODL's memory-light gradient against plain autograd,
its reduction to EDICT with a zero reward, its cost, and its pull towards the exact posterior."""
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from diffguide.counting import Counters, counting
from diffguide.priors import DiffusersDenoiser
from diffguide.rewards.base import Reward
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.doodl import DOODL, InvertibleEDICT
from diffguide.solvers.edict import EDICT, edict_chain, edict_invert
from diffguide.solvers.run import Run

from problems import ZeroReward, random_mixture
from test_dps import Mask, gaussian_problem


def tiny_unet_denoiser() -> DiffusersDenoiser:
    """A random 8x8 one-channel UNet in float64 with a DDIM scheduler's noise table."""
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).double().eval().requires_grad_(False)
    return DiffusersDenoiser(unet, DDIMScheduler(clip_sample=False).alphas_cumprod)


def mixture_problem(steps=30):
    prior = random_mixture(dim=4, components=3, seed=5, spread=1.5)
    return prior, karras_sigmas(steps, 1e-3, 20.0).double()


def unet_problem(steps=8):
    return tiny_unet_denoiser(), karras_sigmas(steps, 0.01, 20.0).double()


def initial_noise(shape, sigmas, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return sigmas[0] * torch.randn(n, *shape, generator=g, dtype=torch.float64)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("problem", [mixture_problem, unet_problem])
@pytest.mark.parametrize("leapfrog", [True, False])
def test_edict_inversion_recovers_the_initial_noise(problem, leapfrog):
    denoiser, sigmas = problem()
    x_T = initial_noise(denoiser.shape, sigmas, 16)
    with torch.no_grad():
        x0, y0 = edict_chain(denoiser, x_T, x_T, sigmas, 0.93, leapfrog)
        x_back, y_back = edict_invert(denoiser, x0, y0, sigmas, 0.93, leapfrog)
    errors = relative_error(x_back, x_T), relative_error(y_back, x_T)
    print(f"{problem.__name__} leapfrog={leapfrog}: relative inversion error {errors[0]:.1e}, {errors[1]:.1e}")
    assert max(errors) <= 1e-5
    # the chain did move: the noise is far from the sample, so recovering it is not trivial
    assert relative_error(x0, x_T) > 0.1


class Quadratic(Reward):
    """A smooth nonlinear reward that uses every coordinate."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, x0):
        return -(x0 - self.target).flatten(1).pow(2).sum(1) + x0.flatten(1).sin().sum(1)


@pytest.mark.parametrize("problem,steps", [(mixture_problem, 12), (unet_problem, 4)])
def test_memory_light_gradient_equals_plain_autograd(problem, steps):
    denoiser, sigmas = problem(steps)
    x_T = initial_noise(denoiser.shape, sigmas, 3)
    reward = Quadratic(0.5 * torch.ones(denoiser.shape, dtype=torch.float64))

    with torch.enable_grad():
        leaf = x_T.clone().requires_grad_(True)
        x0, y0 = edict_chain(denoiser, leaf, leaf, sigmas, 0.93, True)
        (expected,) = torch.autograd.grad((reward(x0) + 2 * reward(y0)).sum(), leaf)

        leaf = x_T.clone().requires_grad_(True)
        with counting() as counts:
            x0, y0 = InvertibleEDICT.apply(leaf, leaf, Run(denoiser, sigmas, Counters()), 0.93, True)
            (grad,) = torch.autograd.grad((reward(x0) + 2 * reward(y0)).sum(), leaf)
    error = relative_error(grad, expected)
    print(f"{problem.__name__}, {steps} steps: relative gradient error {error:.1e}")
    assert error <= 1e-6
    # forward 2 NFE per step, backward 2 NFE (reconstruction) and 2 vector-Jacobian products per step
    assert counts.nfe == 4 * steps and counts.grad_evals == 2 * steps


def test_edict_samples_have_the_prior_moments():
    prior = random_mixture(dim=2, components=3, seed=5, spread=1.5)
    n = 3000
    # EDICT is first order with a larger error constant than DDIM (the second copy's noise is
    # estimated at the old noise level): at 300 steps its bias is below the Monte-Carlo error.
    sigmas = karras_sigmas(300, 1e-3, 80.0).double()
    samples = EDICT()(prior, None, initial_noise(prior.shape, sigmas, n), sigmas)
    # Monte-Carlo standard errors of the mean and of each covariance entry, from exact samples
    exact = prior.sample(200_000, torch.Generator().manual_seed(1))
    centred = exact - prior.mean()
    mean_se = centred.std(0) / n**0.5
    cov_se = (centred[:, :, None] * centred[:, None, :]).std(0) / n**0.5

    def z_scores(x):
        return (float(((x.mean(0) - prior.mean()) / mean_se).abs().max()),
                float(((torch.cov(x.T) - prior.covariance()) / cov_se).abs().max()))

    mean_z, cov_z = z_scores(samples)
    print(f"EDICT, 300 steps: largest |error| / standard error: mean {mean_z:.2f}, covariance {cov_z:.2f}")
    assert mean_z < 4 and cov_z < 4
    # the same check fails for a coarse chain
    coarse = karras_sigmas(30, 1e-3, 80.0).double()
    assert max(z_scores(EDICT()(prior, None, initial_noise(prior.shape, coarse, n), coarse))) > 4


def test_edict_step_costs_two_evaluations():
    prior, sigmas = mixture_problem()
    with counting() as counts:
        EDICT()(prior, None, initial_noise(prior.shape, sigmas, 4), sigmas)
    assert counts.nfe == 2 * (len(sigmas) - 1) and counts.grad_evals == 0


def test_doodl_with_zero_reward_is_the_unguided_edict_sample():
    prior, sigmas = mixture_problem()
    x_T = initial_noise(prior.shape, sigmas, 8)
    expected = EDICT()(prior, None, x_T, sigmas)
    iterations, steps = 3, len(sigmas) - 1
    with counting() as counts:
        sample = DOODL(iterations=iterations)(prior, ZeroReward(), x_T, sigmas, generator=torch.Generator().manual_seed(2))
    assert torch.equal(sample, expected)
    # per iteration: forward chain (2N), reconstruction (2N) with 2N backward passes, one reward backward;
    # then the final forward chain (2N)
    assert counts.nfe == 4 * steps * iterations + 2 * steps
    assert counts.grad_evals == (2 * steps + 1) * iterations


def test_doodl_shows_a_progress_bar_over_its_iterations(capsys):
    """Each iteration is a whole chain forward and back: the bar counts iterations, not schedule steps."""
    from diffguide.solvers.run import set_progress

    prior, sigmas = mixture_problem()
    set_progress(True)
    DOODL(iterations=2)(prior, ZeroReward(), initial_noise(prior.shape, sigmas, 2), sigmas,
                        generator=torch.Generator().manual_seed(2))
    err = capsys.readouterr().err
    assert "DOODL iterations:" in err and "0/2" in err


def test_doodl_moves_samples_towards_the_posterior_mean():
    prior, likelihood, _, _ = gaussian_problem()
    posterior = prior.posterior(likelihood.operator, likelihood.y, likelihood.sigma_y)
    sigmas = karras_sigmas(30, 1e-3, 10.0).double()  # steps fine enough for the EDICT pair to stay together
    x_T = initial_noise(prior.shape, sigmas, 64)
    unguided = EDICT()(prior, None, x_T, sigmas)
    # The paper's element-wise clip (1e-3 per step) is sized for Stable Diffusion's 16384-dim latent;
    # in 8 dimensions ten times larger steps (and perturbation) move the latent in 20 iterations.
    solver = DOODL(iterations=20, grad_clip=1e-2, perturbation=1e-3)
    records = []
    samples = solver(prior, likelihood, x_T, sigmas, generator=torch.Generator().manual_seed(1), callback=records.append)
    unguided_error = float((unguided.mean(0) - posterior.mean()).norm())
    doodl_error = float((samples.mean(0) - posterior.mean()).norm())
    print(f"|mean - posterior mean|: unguided EDICT {unguided_error:.3f}, DOODL {doodl_error:.3f}")
    assert doodl_error < 0.6 * unguided_error
    assert likelihood(samples).mean() > likelihood(unguided).mean()
    # one record per iteration; the optimised latent moved but kept its norm, per sample
    assert [r.index for r in records] == list(range(20))
    assert (records[-1].x - x_T).norm() > 0.1 * x_T.norm()
    assert torch.allclose(records[-1].x.norm(dim=1), x_T.norm(dim=1), rtol=1e-12)
    again = solver(prior, likelihood, x_T, sigmas, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, samples)


def test_doodl_rejects_what_it_cannot_use():
    prior, likelihood, _, _ = gaussian_problem()
    sigmas = karras_sigmas(3, 1e-2, 10.0).double()
    x_T = initial_noise(prior.shape, sigmas, 2)
    with pytest.raises(ValueError, match="needs a reward"):
        DOODL()(prior, None, x_T, sigmas)
    black_box = GaussianLikelihood(Mask(4), likelihood.y, 0.1)
    black_box.operator.differentiable = False
    with pytest.raises(ValueError, match="not differentiable"):
        DOODL()(prior, black_box, x_T, sigmas)
    with pytest.raises(ValueError, match="mixing weight"):
        DOODL(mix=0.0)(prior, likelihood, x_T, sigmas)
    with pytest.raises(ValueError, match="mixing weight"):
        EDICT(mix=1.5)(prior, None, x_T, sigmas)
    with pytest.raises(ValueError, match="momentum"):
        DOODL(momentum=1.0)(prior, likelihood, x_T, sigmas)
