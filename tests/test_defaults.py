"""Every guided solver at its DEFAULT settings on small digits restore problems with each operator:
no run diverges and the result beats the classical baseline (the measurement itself, bicubic
upsampling or normalised interpolation); a forced divergence is an error, here and in the CLI.
The full grid (50 and 100 steps, noise 0.01-0.2) is ``python -m diffguide.benchmarks.defaults``."""
import numpy as np
import pytest
import torch
from PIL import Image

from diffguide.benchmarks.defaults import LIKELIHOOD_SOLVERS, run_default
from diffguide.benchmarks.tasks.restore import DEGRADATIONS
from diffguide.cli import main
from diffguide.counting import counting
from diffguide.operators.black_box import BlackBox
from diffguide.operators.identity import Identity
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.enkg import EnKG
from diffguide.solvers.tfg import TFG
from diffguide.types import BlackBoxFailedError, GuidanceDivergedError

#: solvers whose default run costs many network passes a step (zeroth-order estimates, ensembles of
#: inner ODE solves): every operator in the slow run only
SLOW = {"enkg", "scg"}
#: one operator (blur) in the default run, the others in the slow run
COSTLY = {"sag", "dps-gsg"}
#: not restoration solvers at their defaults, so not held to the baseline: best-of-N ranks 8
#: unguided samples (the reward-steering baseline; 9.2 dB on blur), and DOODL's paper settings
#: (clipped latent steps for classifier rewards) stay close to the unguided sample (12.5 dB on blur)
NOT_RESTORATION = {"best-of-n", "doodl"}


def cases():
    for name in LIKELIHOOD_SOLVERS:
        if name in NOT_RESTORATION:
            continue
        for degradation in DEGRADATIONS:
            slow = name in SLOW or (name in COSTLY and degradation != "blur")
            yield pytest.param(name, degradation, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("name, degradation", list(cases()))
def test_default_settings_beat_the_baseline(name, degradation):
    out = run_default(name, degradation, steps=50, noise=0.05, count=1)
    assert "diverged" not in out, out.get("diverged")
    assert out["psnr"] > out["baseline"], f"{name} on {degradation}: {out['psnr']:.2f} dB vs {out['baseline']:.2f} dB"


def test_a_huge_step_size_is_reported_as_divergence():
    prior = GaussianPrior(torch.zeros(4), torch.eye(4))
    g = torch.Generator().manual_seed(0)
    likelihood = GaussianLikelihood.simulate(Identity(), prior.sample(1, g), 0.1, g)
    sigmas = karras_sigmas(20, 1e-3, 40.0)
    with pytest.raises(GuidanceDivergedError, match="TFG diverged at step .*lower the step size"):
        x = sigmas[0] * torch.randn(8, 4, generator=g, dtype=torch.float64)  # the prior's samples are float64
        TFG(rho=1e6, normalize=False)(prior, likelihood, x, sigmas, generator=g)


def test_a_run_off_on_an_unbounded_gaussian_prior_is_reported():
    """An analytic prior has no data range, but its ``state_scale`` (largest mean coordinate plus two
    standard deviations) bounds the states: universal guidance at its s = 20 on a mixture with means
    spread 3 sends the first state to RMS 197 (prior scale 8), and ends 7.8 from the exact posterior mean."""
    from problems import random_mixture
    from diffguide.operators.matrix import Matrix
    from diffguide.solvers import UniversalGuidance

    assert GaussianPrior(torch.tensor([1.0, -3.0]), 4 * torch.eye(2)).state_scale == pytest.approx(3.0 + 2 * 2.0)
    prior = random_mixture(4, 3, seed=1)
    a = torch.randn(2, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    likelihood = GaussianLikelihood(Matrix(a, (4,)), torch.tensor([[0.5, -0.2]], dtype=torch.float64), sigma_y=0.2)
    sigmas = karras_sigmas(8, 2e-3, 20.0).double()
    x = sigmas[0] * torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(GuidanceDivergedError, match="UniversalGuidance diverged at step 0: the sampling state's RMS"):
        UniversalGuidance()(prior, likelihood, x, sigmas, generator=torch.Generator().manual_seed(1))
    UniversalGuidance(scale=1.0)(prior, likelihood, x, sigmas, generator=torch.Generator().manual_seed(1))


def test_an_unstable_unguided_sampler_is_reported_not_returned():
    """EDICT's coupled chains blow up at 10 steps on the digits prior (result RMS about 20 for data
    in [-1, 1]); at 25 steps they do not."""
    from diffguide.priors.embedded import load
    from diffguide.schedules import prior_sigmas
    from diffguide.solvers.edict import EDICT

    prior = load("digits")
    for steps, fails in ((10, True), (25, False)):
        sigmas = prior_sigmas(prior, steps)
        g = torch.Generator().manual_seed(0)
        x = sigmas[0] * torch.randn(4, *prior.shape, generator=g)
        if fails:
            with pytest.raises(GuidanceDivergedError, match="result's RMS .* far outside the data range .*; use more "
                                                             "steps, or check that the model is trained"):
                EDICT()(prior, None, x, sigmas, generator=g)
        else:
            assert EDICT()(prior, None, x, sigmas, generator=g).abs().max() < 2


def test_cli_exits_nonzero_on_divergence(tmp_path, capsys):
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8)).save(tmp_path / "in.png")
    code = main(["solve", "--prior", "digits", "--operator", "blur:sigma=1", "--input", str(tmp_path / "in.png"),
                 "--solver", "tfg:rho=1e6,normalize=false", "--steps", "10", "--out", str(tmp_path / "out")])
    assert code == 1 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.count("\n") == 1


def flaky_simulator(x):
    """Fails on every call but the first few (a simulator whose licence server went away)."""
    flaky_simulator.calls += 1
    if flaky_simulator.calls > 3:
        raise RuntimeError("licence server unreachable")
    return x


def test_a_mostly_failing_black_box_raises_with_its_reasons():
    flaky_simulator.calls = 0
    prior = GaussianPrior(torch.zeros(4), torch.eye(4))
    g = torch.Generator().manual_seed(0)
    operator = BlackBox(flaky_simulator, input_shape=(4,), output_shape=(4,))
    likelihood = GaussianLikelihood(operator, torch.zeros(1, 4), 0.1)
    sigmas = karras_sigmas(5, 1e-3, 40.0)
    with counting() as counts, pytest.raises(BlackBoxFailedError, match="licence server unreachable"):
        EnKG()(prior, likelihood, sigmas[0] * torch.randn(8, 4, generator=g), sigmas, generator=g)
    assert counts.operator_failures > counts.operator_evals / 2 and counts.failure_reasons
