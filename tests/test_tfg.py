"""TFG and its special cases: the exact Gaussian posterior, the paper's VP update rule, schedules,
Monte-Carlo smoothing against a closed form, zero reward, cost; the beam search and ``diffguide tune``."""
import argparse
import dataclasses
import json
import math

import pytest
import torch

from diffguide.cli import specs, tune
from diffguide.cli.errors import UsageError
from diffguide.counting import counting
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.tfg import TFG, smoothed, strength_schedule
from diffguide.solvers.tfg_family import LGD, MPGD, UGD, FreeDoM
from diffguide.tuning import beam_search

from problems import ZeroReward
from test_universal_guidance import gaussian_problem, sample

FAMILY = (FreeDoM, MPGD, LGD, UGD)


@pytest.mark.parametrize("solver", [
    # strengths on the raw log-likelihood (normalize=False), as in the paper
    TFG(rho=0.002, mu=0.002, normalize=False),
    TFG(rho=0.001, mu=0.001, gamma=0.05, n_recur=2, n_iter=2, normalize=False),
    FreeDoM(rho=0.003, n_recur=2, normalize=False),
    MPGD(mu=0.005, n_iter=2, normalize=False),
    LGD(rho=0.003, normalize=False),
    UGD(rho=0.001, mu=0.002, n_recur=2, n_iter=2, normalize=False),
    # the defaults, on the normalised objective
    TFG(), FreeDoM(), MPGD(), LGD(), UGD(),
])
def test_mean_moves_to_the_exact_posterior(solver):
    prior, likelihood, posterior = gaussian_problem()
    unguided = (sample(DDIM(eta=solver.eta), prior, None).mean(0) - posterior.mean()).norm()
    guided = (sample(solver, prior, likelihood).mean(0) - posterior.mean()).norm()
    assert guided < 0.3 * unguided


@pytest.mark.parametrize("solver", [TFG(), TFG(eta=0.0, gamma=0.5, mc_samples=3, n_iter=2), FreeDoM(), MPGD(),
                                    LGD(), UGD(n_iter=2)])
def test_zero_reward_reproduces_ddim_draw_for_draw(solver):
    prior, _, _ = gaussian_problem()
    assert torch.equal(sample(solver, prior, ZeroReward(), n=16), sample(DDIM(eta=solver.eta), prior, None, n=16))


def test_smoothing_noise_is_seeded_by_the_run():
    prior, likelihood, _ = gaussian_problem()
    solver = LGD(rho=0.003)
    first, again = sample(solver, prior, likelihood, n=16), sample(solver, prior, likelihood, n=16)
    assert torch.equal(first, again)
    assert not torch.equal(first, sample(dataclasses.replace(solver, mc_samples=5), prior, likelihood, n=16))


def vp_reference(prior, reward, x, sigma, sigma_next, rho, mu, n_recur, n_iter, noises):
    """One step of TFG's Algorithm 1 in VP variables ``z = sqrt(abar) x`` with DDIM (eta = 0) as the
    sampler and gamma = 0, written from the paper independently of the VE code."""
    abar, abar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
    alpha = abar / abar_prev

    def x0_of(z):  # Tweedie's estimate from the VP noise prediction of the same denoiser
        eps = (z / abar**0.5 - prior(z / abar**0.5, sigma)) / sigma
        return (z - (1 - abar) ** 0.5 * eps) / abar**0.5, eps

    def grad(f, at):
        at = at.detach().requires_grad_(True)
        return torch.autograd.grad(f(at).sum(), at)[0]

    z = abar**0.5 * x
    for r in range(n_recur):
        x0, eps = x0_of(z)
        delta_t = rho * grad(lambda z_: reward(x0_of(z_)[0]), z)  # variance guidance
        delta_0 = torch.zeros_like(x0)
        for _ in range(n_iter):  # mean guidance
            delta_0 = delta_0 + mu * grad(reward, x0 + delta_0)
        z_prev = abar_prev**0.5 * x0 + (1 - abar_prev) ** 0.5 * eps  # DDIM, eta = 0
        z_prev = z_prev + delta_t / alpha**0.5 + abar_prev**0.5 * delta_0
        if r < n_recur - 1:
            z = alpha**0.5 * z_prev + (1 - alpha) ** 0.5 * noises[r]  # recurrence
    return z_prev / abar_prev**0.5


def test_one_step_equals_the_papers_vp_update():
    prior, likelihood, _ = gaussian_problem(dim=4, observed=2, sigma_y=0.5)
    sigmas = torch.tensor([3.0, 1.2, 0.0], dtype=torch.float64)
    rho, mu, n_recur, n_iter = 0.05, 0.1, 3, 2
    solver = TFG(rho=rho, mu=mu, gamma=0.0, n_recur=n_recur, n_iter=n_iter, eta=0.0,
                 rho_schedule="constant", mu_schedule="constant", normalize=False)
    records = []
    g = torch.Generator().manual_seed(11)
    x = sigmas[0] * torch.randn(5, 4, generator=g, dtype=torch.float64)
    solver(prior, likelihood, x, sigmas, generator=g, callback=records.append)
    replay = torch.Generator().manual_seed(11)
    torch.randn(5, 4, generator=replay, dtype=torch.float64)  # the initial state
    noises = [torch.randn(5, 4, generator=replay, dtype=torch.float64) for _ in range(n_recur - 1)]
    expected = vp_reference(prior, likelihood, x, sigmas[0], sigmas[1], rho, mu, n_recur, n_iter, noises)
    assert torch.allclose(records[0].x, expected, rtol=1e-10, atol=1e-10)
    unguided = vp_reference(prior, likelihood, x, sigmas[0], sigmas[1], 0.0, 0.0, n_recur, n_iter, noises)
    assert not torch.allclose(records[0].x, unguided)


def test_strength_schedules_follow_the_ddpm_betas():
    """On the sigmas of a full DDPM schedule, ``alpha_t = 1 - beta_t``: "increase" is ``1 - beta_t``
    and "decrease" is ``beta_t`` (in sampling order), each scaled to mean 1."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    sigmas = torch.cat([((1 - abar) / abar).sqrt().flip(0), torch.zeros(1, dtype=torch.float64)])
    in_sampling_order = betas.flip(0)
    for kind, weights in (("increase", 1 - in_sampling_order), ("decrease", in_sampling_order),
                          ("constant", torch.ones(1000, dtype=torch.float64))):
        assert torch.allclose(strength_schedule(kind, sigmas), weights / weights.mean(), rtol=1e-8)
    assert strength_schedule("increase", sigmas)[-1] > strength_schedule("increase", sigmas)[0]


def test_smoothed_reward_matches_the_gaussian_convolution():
    """For ``r(x0) = -||x0 - y||^2 / 2 s^2``, ``E exp r(x0 + g delta)`` is proportional to
    ``N(x0; y, (s^2 + g^2) I)``, so the smoothed gradient is ``-(x0 - y) / (s^2 + g^2)``.
    Each sample has its own target ``y``: the reward must see the batch in its order."""
    s, gamma, k = 0.3, 0.4, 20_000
    y = torch.tensor([[0.5, -1.0], [0.8, -1.2]], dtype=torch.float64)
    x0 = torch.tensor([[0.2, 0.1], [1.0, -1.5]], dtype=torch.float64, requires_grad=True)
    noise = gamma * torch.randn(k, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    objective = smoothed(lambda x: -0.5 * (x - y).pow(2).sum(1) / s**2, noise)
    (grad,) = torch.autograd.grad(objective(x0).sum(), x0)
    exact = -(x0.detach() - y) / (s**2 + gamma**2)
    assert torch.allclose(grad, exact, rtol=0.05, atol=0.05)
    assert (grad - exact).abs().max() < 0.2 * (-(x0.detach() - y) / s**2 - exact).abs().max()  # smoothing mattered
    log_value = objective(x0.detach())
    exact_log = -0.5 * (x0.detach() - y).pow(2).sum(1) / (s**2 + gamma**2) - math.log((s**2 + gamma**2) / s**2)
    assert torch.allclose(log_value, exact_log, atol=0.02)


class GradientSpy:
    """The prior, noting every call whose input carries a gradient (a backward through the denoiser)."""

    def __init__(self, prior):
        self.prior, self.with_grad = prior, 0
        self.shape, self.sigma_min, self.sigma_max, self.data_range = (prior.shape, prior.sigma_min, prior.sigma_max,
                                                                       prior.data_range)

    def __call__(self, x, sigma, **cond):
        self.with_grad += x.requires_grad
        return self.prior(x, sigma, **cond)


@pytest.mark.parametrize("solver,denoiser_grads,reward_grads,points", [
    (TFG(n_recur=3, n_iter=2, mc_samples=5), 1, 2, 5),
    (TFG(rho=0.0, mu=0.0, n_iter=4, gamma=0.0), 0, 0, 1),
    (FreeDoM(n_recur=2), 1, 0, 1),
    (MPGD(n_iter=3), 0, 3, 1),
    (LGD(mc_samples=6), 1, 0, 6),
    (UGD(n_recur=2, n_iter=2), 1, 2, 1),
])
def test_cost_per_step(solver, denoiser_grads, reward_grads, points):
    """Per step and recurrence: one NFE, one backward through the denoiser if rho != 0, N_iter backwards
    through the reward if mu != 0; every reward evaluation scores K points per sample if gamma > 0."""
    prior, likelihood, _ = gaussian_problem(sigma_y=30.0)  # weak enough for the default strengths
    spy = GradientSpy(prior)
    with counting() as counts:
        sample(solver, spy, likelihood, n=8, steps=10)
    passes = 10 * solver.n_recur
    assert counts.nfe == passes and spy.with_grad == passes * denoiser_grads
    assert counts.grad_evals == passes * (denoiser_grads + reward_grads)
    assert counts.operator_evals == passes * (denoiser_grads + reward_grads) * 8 * points


@pytest.mark.parametrize("cls", FAMILY)
def test_special_cases_are_tfg_with_pinned_fields(cls):
    member = cls()
    config = dataclasses.asdict(member)
    assert set(config) == {f.name for f in dataclasses.fields(TFG)}  # the complete TFG configuration
    prior, likelihood, _ = gaussian_problem(sigma_y=30.0)  # weak enough for the default strengths
    assert torch.equal(sample(member, prior, likelihood, n=16, steps=10),
                       sample(TFG(**config), prior, likelihood, n=16, steps=10))
    pinned = set(config) - {f.name for f in dataclasses.fields(cls) if f.init}
    for name in pinned:
        with pytest.raises(TypeError):
            cls(**{name: config[name]})


def test_pinned_fields_of_each_special_case():
    assert (FreeDoM().mu, FreeDoM().gamma) == (0.0, 0.0)
    assert (MPGD().rho, MPGD().gamma, MPGD().n_recur) == (0.0, 0.0, 1)
    assert (LGD().mu, LGD().n_recur, LGD().gamma, LGD().gamma_schedule) == (0.0, 1, 1.0, "decrease")
    assert UGD().gamma == 0.0


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="rho_schedule"):
        TFG(rho_schedule="linear")
    with pytest.raises(ValueError, match="gamma_schedule"):
        TFG(gamma_schedule="increase")
    with pytest.raises(ValueError, match="n_recur"):
        FreeDoM(n_recur=0)


def log_quadratic(config):
    """Peaks at rho = 0.5, mu = 4 (a quadratic in log2-space)."""
    return -math.log2(config["rho"] / 0.5) ** 2 - 2 * math.log2(config["mu"] / 4) ** 2


@pytest.mark.parametrize("maximize", [True, False])
def test_beam_search_finds_the_optimum_of_a_log_quadratic(maximize):
    sign = 1 if maximize else -1
    best, history = beam_search(lambda c: sign * log_quadratic(c), {"rho": 1 / 16, "mu": 1 / 16, "eta": 1.0},
                                ["rho", "mu"], 2, beam=2, rounds=12, maximize=maximize)
    assert best == {"rho": 0.5, "mu": 4.0, "eta": 1.0}  # 3 and 6 doublings from the start; eta passes through
    assert len(history) <= 3 + 11 * 2 * 2  # the start and its growths, then at most beam x keys per round
    assert len({(e["config"]["rho"], e["config"]["mu"]) for e in history}) == len(history)  # none evaluated twice
    assert [e["round"] for e in history] == sorted(e["round"] for e in history)
    too_short, _ = beam_search(log_quadratic, {"rho": 1 / 16, "mu": 1 / 16}, ["rho", "mu"], 2, beam=2, rounds=4)
    assert too_short != {"rho": 0.5, "mu": 4.0}  # 9 doublings do not fit in 4 rounds


def test_beam_search_per_key_factors_limits_and_divergence():
    def score(config):  # better with larger rho, but a run with rho > 1 diverges
        return math.nan if config["rho"] > 1 else config["rho"] - math.log10(config["gamma"] / 0.01) ** 2

    seen = []
    best, history = beam_search(score, {"rho": 0.125, "gamma": 1e-4}, ["rho", "gamma"], {"rho": 2, "gamma": 10},
                                beam=2, rounds=8, limits={"gamma": 0.05}, on_result=seen.append)
    assert best["rho"] == 1.0 and math.isclose(best["gamma"], 0.01)
    assert max(e["config"]["gamma"] for e in history) == 0.05  # capped, not 0.1
    assert any(math.isnan(e["score"]) for e in history) and seen == history
    with pytest.raises(ValueError, match="non-zero"):
        beam_search(score, {"rho": 0.0, "gamma": 1.0}, ["rho"], 2, beam=1, rounds=1)
    with pytest.raises(ValueError, match="subset"):
        beam_search(score, {"rho": 1.0}, ["mu"], 2, beam=1, rounds=1)


def tune_cli(argv):
    parser = argparse.ArgumentParser()
    tune.add_parser(parser.add_subparsers())
    args = parser.parse_args(["tune", "gmm-posterior", "--instance", "d4-k1-ill-s0.1", "--reduced", "--nfe", "8",
                              "--metric", "mean_error", "--minimize", *argv])
    args.run(args)


def test_tune_cli_reduced_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(specs.SOLVERS, "tfg", TFG)
    tune_cli(["--solver", "tfg:mu=0,gamma=0", "--keys", "rho", "--start", "rho=1e-4", "--factor", "4",
              "--beam", "1", "--rounds", "3", "--seeds", "2", "--out", str(tmp_path)])
    lines = [json.loads(line) for line in (tmp_path / "tune.jsonl").read_text().splitlines()]
    assert [line["config"]["rho"] for line in lines] == [1e-4, 4e-4, 1.6e-3, 6.4e-3]
    for line in lines:
        assert len(line["runs"]) == 2 and line["runs"][0]["nfe"] == 8
        assert line["runs"][0]["config"]["rho"] == line["config"]["rho"] and line["runs"][0]["config"]["mu"] == 0
        assert math.isclose(line["score"], sum(run["metrics"]["mean_error"] for run in line["runs"]) / 2)
    best = min(lines, key=lambda line: line["score"])
    assert best["score"] < lines[0]["score"]  # guidance helps on this instance
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.endswith(best["solver"]) and f"{best['score']:.6g}" in printed
    assert specs.parse_solver(best["solver"]) == TFG(mu=0.0, gamma=0.0, rho=best["config"]["rho"])


def test_tune_cli_paper_defaults_and_bad_input(tmp_path, monkeypatch):
    monkeypatch.setitem(specs.SOLVERS, "mpgd", MPGD)
    tune_cli(["--solver", "mpgd", "--rounds", "1", "--out", str(tmp_path)])  # tunes mu only, from the paper's 0.25
    lines = [json.loads(line) for line in (tmp_path / "tune.jsonl").read_text().splitlines()]
    assert [line["config"] for line in lines] == [{"mu": 0.25}, {"mu": 0.5}]
    with pytest.raises(UsageError, match="cannot tune 'rho'"):
        tune_cli(["--solver", "mpgd", "--keys", "rho", "--out", str(tmp_path)])
    with pytest.raises(UsageError, match="no metric"):
        monkeypatch.setitem(specs.SOLVERS, "tfg", TFG)
        tune_cli(["--solver", "tfg", "--metric", "psnr", "--rounds", "1", "--out", str(tmp_path)])
