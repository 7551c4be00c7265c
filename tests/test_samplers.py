"""Unguided samplers reproduce the exact mixture prior; schedules and counting behave."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.metrics import sliced_wasserstein
from diffguide.schedules import karras_sigmas, refined_sigmas, vp_sigmas
from diffguide.solvers.ddim import DDIM, DDPM
from diffguide.solvers.euler import Euler
from diffguide.solvers.heun import Heun

from problems import random_mixture

N = 8000


def sw(a, b, seed=0):
    return float(sliced_wasserstein(a, b, n_projections=128, generator=torch.Generator().manual_seed(seed)))


def mean_sw(samples, references):
    """Average distance to several independent exact sets: the finite-sample noise of one
    sliced Wasserstein estimate is large when mixture components are far apart."""
    return sum(sw(samples, ref) for ref in references) / len(references)


@pytest.mark.parametrize("solver,steps", [(Euler(), 100), (Heun(), 40), (DDIM(), 100), (DDIM(eta=0.5), 100), (DDPM(), 200)])
def test_unguided_samples_match_exact_prior(solver, steps):
    prior = random_mixture(dim=4, components=3, seed=5, spread=1.5)
    g = torch.Generator().manual_seed(0)
    references = [prior.sample(N, g) for _ in range(6)]
    floor = sum(sw(references[i], references[i - 1]) for i in range(6)) / 6
    sigmas = karras_sigmas(steps, 1e-3, 80.0).double()
    x = sigmas[0] * torch.randn(N, 4, generator=g, dtype=torch.float64)
    samples = solver(prior, None, x, sigmas, generator=g)
    assert mean_sw(samples, references) < 2 * floor
    # a Gaussian with the prior's mean and covariance fails the same check: it can fail
    moment_match = prior.mean() + torch.randn(N, 4, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(prior.covariance()).T
    assert mean_sw(moment_match, references) > 2 * floor


def test_same_seed_same_output_and_counts():
    prior = random_mixture(dim=2, components=2)
    sigmas = vp_sigmas(20).double()
    records = []
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        x = sigmas[0] * torch.randn(16, 2, generator=g, dtype=torch.float64)
        with counting() as counts:
            outs.append(DDPM()(prior, None, x, sigmas, generator=g, callback=records.append))
    assert torch.equal(outs[0], outs[1])
    assert counts.nfe == 20 and counts.grad_evals == 0
    assert [r.index for r in records[:20]] == list(range(20)) and records[19].nfe == 20
    assert records[-1].sigma == 0.0 and torch.equal(records[-1].x, outs[1])


def test_heun_uses_two_evaluations_except_last():
    prior = random_mixture(dim=2, components=2)
    sigmas = karras_sigmas(10, 1e-2, 10.0).double()
    with counting() as counts:
        Heun()(prior, None, sigmas[0] * torch.randn(4, 2, dtype=torch.float64), sigmas)
    assert counts.nfe == 2 * 10 - 1


def test_schedules_are_decreasing_and_end_in_zero():
    for sigmas in (karras_sigmas(18, 0.002, 80.0), vp_sigmas(50)):
        assert sigmas[-1] == 0 and (sigmas[:-1] > sigmas[1:]).all()
    assert torch.isclose(karras_sigmas(5, 0.002, 80.0)[0], torch.tensor(80.0))
    assert torch.isclose(karras_sigmas(5, 0.002, 80.0)[-2], torch.tensor(0.002))


def test_a_refined_karras_schedule_is_the_karras_schedule_of_more_levels():
    """Each step between nonzero levels split in three (in sigma^(1/7)), the step to 0 kept whole."""
    coarse, fine = karras_sigmas(5, 0.002, 80.0), karras_sigmas(13, 0.002, 80.0)
    assert torch.allclose(refined_sigmas(coarse, 3), fine, rtol=1e-5)
    assert torch.equal(refined_sigmas(coarse, 1), coarse)
    assert torch.equal(refined_sigmas(torch.tensor([2.0, 0.0]), 4), torch.tensor([2.0, 0.0]))


def test_bad_inputs_are_rejected_before_sampling():
    prior = random_mixture(dim=2, components=2)
    with pytest.raises(ValueError, match="prior expects"):
        DDIM()(prior, None, torch.zeros(3, 5), karras_sigmas(5, 0.01, 10))
    with pytest.raises(ValueError, match="ending in 0"):
        DDIM()(prior, None, torch.zeros(3, 2), torch.tensor([3.0, 2.0, 1.0]))
