"""Every bad parameter is refused at construction (or before sampling) with a ValueError that names
it, says what it accepts and shows the value: solvers (all of them, field by field, from their
declared rules), operators, priors, rewards, the reward's output on its first call, schedules
against the prior's range, and the CLI (exit 2, one line)."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

import diffguide.solvers as solvers
from diffguide.cli import main
from diffguide.operators import BlackBox, Blur, Downsample, FunctionOperator, Inpaint
from diffguide.operators.flow_warp import FlowWarp
from diffguide.operators.matrix import Matrix
from diffguide.priors.gaussian import GaussianPrior
from diffguide.priors.gaussian_mixture import GaussianMixturePrior
from diffguide.rewards import ComponentCountReward, GaussianLikelihood, InkFractionReward, MotionReward, Reward
from diffguide.schedules import karras_sigmas
from diffguide.solvers import Solver, set_progress
from diffguide.validation import Flag, Number, OneOf, OrNone, Span

SOLVER_CLASSES = [getattr(solvers, name) for name in solvers.__all__
                  if isinstance(getattr(solvers, name), type) and issubclass(getattr(solvers, name), Solver)
                  and getattr(solvers, name) is not Solver]


@pytest.fixture(autouse=True, scope="module")
def quiet():
    set_progress(False)
    yield
    set_progress(True)


def init_fields(cls) -> list[str]:
    return [field.name for field in dataclasses.fields(cls) if field.init]


def bad_values(rule) -> list:
    """Values the rule must refuse: wrong types, NaN/Inf, and just past each end of its range."""
    if isinstance(rule, OrNone):
        return [value for value in bad_values(rule.rule) if value is not None]
    if isinstance(rule, Number):
        values = ["1", True, None, math.nan, -math.inf, *([] if rule.allow_inf else [math.inf])]
        if math.isfinite(rule.low):
            values.append(rule.low if rule.low_open else rule.low - 1)
        if math.isfinite(rule.high):
            values.append(rule.high if rule.high_open else rule.high + 1)
        if rule.integer:
            values.append(max(rule.low, 0) + 1.5)
        return values
    if isinstance(rule, Flag):
        return [1, 0, "true", None]
    if isinstance(rule, OneOf):
        return ["no-such-option", 1, None]
    if isinstance(rule, Span):
        return [(0.6, 0.2), (rule.low - 0.1, rule.high), (rule.low, rule.high + 0.5), 0.5, (math.nan, rule.high)]
    raise AssertionError(f"no bad values known for {rule!r}")


def means_default(cls, name: str, value) -> bool:
    """``None`` given to a field whose default is ``None``: the solver derives the value (DPS's zeta)."""
    return value is None and {field.name: field.default for field in dataclasses.fields(cls)}[name] is None


SOLVER_CASES = [(cls, name, value) for cls in SOLVER_CLASSES for name, rule in cls.parameter_rules().items()
                if name in init_fields(cls) for value in bad_values(rule) if not means_default(cls, name, value)]


def test_every_solver_is_covered_and_declares_a_rule_for_every_parameter():
    assert len(SOLVER_CLASSES) >= 20
    for cls in SOLVER_CLASSES:
        declared = {name for klass in cls.__mro__ for name in vars(klass).get("limits", {})}
        missing = set(init_fields(cls)) - declared
        assert not missing, f"{cls.__name__} has no rule for {missing}"


@pytest.mark.parametrize("cls", SOLVER_CLASSES, ids=lambda cls: cls.__name__)
def test_defaults_pass_their_own_checks(cls):
    solver = cls()
    assert cls(**{name: getattr(solver, name) for name in init_fields(cls)}) == solver


@pytest.mark.parametrize("cls,name,value", SOLVER_CASES,
                         ids=[f"{cls.__name__}-{name}-{value!r}" for cls, name, value in SOLVER_CASES])
def test_bad_solver_parameter_is_refused_naming_it(cls, name, value):
    with pytest.raises(ValueError) as err:
        cls(**{name: value})
    message = str(err.value)
    assert name in message and repr(value) in message and str(cls.parameter_rules()[name]) in message, message


@pytest.mark.parametrize("solver,message", [
    (lambda: solvers.EnKG(guidance_start=0.9, guidance_stop=0.1), "guidance_start must be <= guidance_stop"),
    (lambda: solvers.SCG(guidance_start=0.9, guidance_stop=0.1), "guidance_start must be <= guidance_stop"),
    (lambda: solvers.SymplecticAdjointGuidance(guidance_start=0.8), "guidance_start must be <= guidance_stop"),
    (lambda: solvers.DPSGSG(queries=1), "queries must be >= 2 for central differences"),
])
def test_parameters_checked_against_each_other(solver, message):
    with pytest.raises(ValueError, match=message):
        solver()
    assert solvers.DPSGSG(queries=1, difference="forward").queries == 1


OPERATOR_CASES = {
    "blur sigma 0": (lambda: Blur.gaussian(0.0), "sigma"),
    "blur sigma -1": (lambda: Blur.gaussian(-1.0), "sigma"),
    "blur sigma nan": (lambda: Blur.gaussian(math.nan), "sigma"),
    "blur sigma inf": (lambda: Blur.gaussian(math.inf), "sigma"),
    "blur sigma text": (lambda: Blur.gaussian("1"), "sigma"),
    "blur size 0": (lambda: Blur.gaussian(1.0, size=0), "size"),
    "blur size -3": (lambda: Blur.gaussian(1.0, size=-3), "size"),
    "blur size even": (lambda: Blur.gaussian(1.0, size=4), "odd"),
    "blur size fractional": (lambda: Blur.gaussian(1.0, size=2.5), "size"),
    "blur kernel nan": (lambda: Blur(torch.full((3, 3), math.nan)), "finite"),
    "blur kernel 1-D": (lambda: Blur(torch.ones(3)), "2-D"),
    "blur kernel empty": (lambda: Blur(torch.ones(0, 3)), "2-D"),
    "blur padding": (lambda: Blur(torch.ones(3, 3) / 9, padding="mirror"), "padding"),
    "blur kernel larger than image": (lambda: Blur.gaussian(1.0).output_shape((1, 4, 4)), "at least that large"),
    "downsample 0": (lambda: Downsample(0), "factor"),
    "downsample -2": (lambda: Downsample(-2), "factor"),
    "downsample 2.5": (lambda: Downsample(2.5), "factor"),
    "downsample True": (lambda: Downsample(True), "factor"),
    "downsample does not divide": (lambda: Downsample(3).output_shape((1, 16, 16)), "divisible"),
    "inpaint mask values": (lambda: Inpaint(torch.full((1, 4, 4), 0.5)), "0 \\(missing\\) or 1"),
    "inpaint mask 2-D": (lambda: Inpaint(torch.ones(4, 4)), "shape"),
    "inpaint mask nan": (lambda: Inpaint(torch.full((1, 4, 4), math.nan)), "finite"),
    "inpaint box top": (lambda: Inpaint.box((1, 8, 8), -1, 0, 2, 2), "top"),
    "inpaint box height": (lambda: Inpaint.box((1, 8, 8), 0, 0, 0, 2), "height"),
    "inpaint box outside": (lambda: Inpaint.box((1, 8, 8), 4, 4, 6, 2), "inside"),
    "inpaint missing -0.1": (lambda: Inpaint.random_pixels((1, 8, 8), -0.1), "fraction_missing"),
    "inpaint missing 1.5": (lambda: Inpaint.random_pixels((1, 8, 8), 1.5), "fraction_missing"),
    "inpaint missing nan": (lambda: Inpaint.random_pixels((1, 8, 8), math.nan), "fraction_missing"),
    "inpaint strokes -1": (lambda: Inpaint.random_strokes((1, 8, 8), -1), "n_strokes"),
    "inpaint strokes 1.5": (lambda: Inpaint.random_strokes((1, 8, 8), 1.5), "n_strokes"),
    "inpaint stroke width 0": (lambda: Inpaint.random_strokes((1, 8, 8), 2, 0.0), "width"),
    "inpaint stroke width nan": (lambda: Inpaint.random_strokes((1, 8, 8), 2, math.nan), "width"),
    "inpaint stroke vertices": (lambda: Inpaint.random_strokes((1, 8, 8), 2, n_vertices=1), "n_vertices"),
    "matrix 1-D": (lambda: Matrix(torch.ones(3)), "2-D"),
    "matrix nan": (lambda: Matrix(torch.full((2, 3), math.nan)), "finite"),
    "matrix empty": (lambda: Matrix(torch.ones(0, 3)), "2-D"),
    "matrix input shape": (lambda: Matrix(torch.ones(2, 3), (2, 2)), "does not hold"),
    "black box retries -1": (lambda: BlackBox(np.sin, retries=-1), "retries"),
    "black box retries 1.5": (lambda: BlackBox(np.sin, retries=1.5), "retries"),
    "black box timeout 0": (lambda: BlackBox(np.sin, timeout=0), "timeout"),
    "black box timeout nan": (lambda: BlackBox(np.sin, timeout=math.nan), "timeout"),
    "black box fn": (lambda: BlackBox(3), "callable"),
    "black box batched": (lambda: BlackBox(np.sin, batched="yes"), "batched"),
    "black box shape": (lambda: BlackBox(np.sin, input_shape=(0, 4)), "input_shape"),
    "function differentiable": (lambda: FunctionOperator(torch.sin, differentiable="no"), "differentiable"),
    "flow nan": (lambda: FlowWarp(torch.full((1, 2, 4, 4), math.nan)), "finite"),
    "flow padding": (lambda: FlowWarp(torch.zeros(1, 2, 4, 4), padding="wrap"), "padding"),
}


@pytest.mark.parametrize("case", OPERATOR_CASES)
def test_bad_operator_parameter_is_refused(case):
    build, message = OPERATOR_CASES[case]
    with pytest.raises(ValueError, match=message):
        build()


EYE = torch.eye(2, dtype=torch.float64)
PRIOR_CASES = {
    "cov not symmetric": (lambda: GaussianPrior(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])), "symmetric"),
    "cov not PSD": (lambda: GaussianPrior(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])), "semi-definite"),
    "cov negative variance": (lambda: GaussianPrior(torch.zeros(2), -EYE), "semi-definite"),
    "cov nan": (lambda: GaussianPrior(torch.zeros(2), torch.full((2, 2), math.nan)), "cov"),
    "cov inf": (lambda: GaussianPrior(torch.zeros(2), EYE * math.inf), "cov"),
    "cov shape": (lambda: GaussianPrior(torch.zeros(2), torch.eye(3)), r"\(2, 2\)"),
    "mean nan": (lambda: GaussianPrior(torch.tensor([0.0, math.nan]), EYE), "mean"),
    "mean inf": (lambda: GaussianPrior(torch.tensor([0.0, math.inf]), EYE), "mean"),
    "shape mismatch": (lambda: GaussianPrior(torch.zeros(4), torch.eye(4), shape=(1, 3, 3)), "does not hold"),
    "shape entry": (lambda: GaussianPrior(torch.zeros(4), torch.eye(4), shape=(2, 2.0)), "shape"),
    "sigma_min negative": (lambda: GaussianPrior(torch.zeros(2), EYE, sigma_min=-1.0), "sigma_min"),
    "sigma_max below sigma_min": (lambda: GaussianPrior(torch.zeros(2), EYE, sigma_min=1.0, sigma_max=0.5), "sigma_max"),
    "sigma_max nan": (lambda: GaussianPrior(torch.zeros(2), EYE, sigma_max=math.nan), "sigma_max"),
    "weights do not sum to 1": (lambda: GaussianMixturePrior([0.5, 0.6], torch.zeros(2, 2), torch.stack([EYE] * 2)),
                                "sum to 1"),
    "weights negative": (lambda: GaussianMixturePrior([-0.5, 1.5], torch.zeros(2, 2), torch.stack([EYE] * 2)),
                         "non-negative"),
    "weights nan": (lambda: GaussianMixturePrior([math.nan, 0.5], torch.zeros(2, 2), torch.stack([EYE] * 2)),
                    "weights"),
    "weights shape": (lambda: GaussianMixturePrior([1.0], torch.zeros(2, 2), torch.stack([EYE] * 2)), "expected weights"),
    "means 1-D": (lambda: GaussianMixturePrior([1.0], torch.zeros(2), EYE[None]), "means"),
    "component not PSD": (lambda: GaussianMixturePrior([0.5, 0.5], torch.zeros(2, 2), torch.stack([EYE, -EYE])),
                          "covariance 1 is not positive"),
}


@pytest.mark.parametrize("case", PRIOR_CASES)
def test_bad_prior_is_refused(case):
    build, message = PRIOR_CASES[case]
    with pytest.raises(ValueError, match=message):
        build()


def test_rounding_in_a_covariance_is_not_refused():
    factor = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    low_rank = factor @ factor.T  # rank 2: two eigenvalues are zero up to rounding
    GaussianPrior(torch.zeros(4), low_rank.float())
    prior = GaussianMixturePrior([0.0, 1.0], torch.zeros(2, 2), torch.stack([EYE] * 2))  # zero weights are fine
    assert prior.sigma_max == math.inf


REWARD_CASES = {
    "sigma_y 0": (lambda: GaussianLikelihood(Matrix(EYE), torch.zeros(1, 2), 0.0), "sigma_y"),
    "sigma_y nan": (lambda: GaussianLikelihood(Matrix(EYE), torch.zeros(1, 2), math.nan), "sigma_y"),
    "sigma_y inf": (lambda: GaussianLikelihood(Matrix(EYE), torch.zeros(1, 2), math.inf), "sigma_y"),
    "ink target": (lambda: InkFractionReward(1.5), "target"),
    "ink threshold": (lambda: InkFractionReward(0.5, threshold=math.nan), "threshold"),
    "ink region": (lambda: InkFractionReward(0.5, region=(0, 2.5, 0, 4)), "region"),
    "ink softness": (lambda: InkFractionReward(0.5, softness=-0.1), "softness"),
    "component target": (lambda: ComponentCountReward(-1), "target"),
    "component target fractional": (lambda: ComponentCountReward(1.5), "target"),
    "motion weight": (lambda: MotionReward(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), flow_weight=-1.0),
                      "flow_weight"),
    "motion nan source": (lambda: MotionReward(torch.full((1, 1, 4, 4), math.nan), torch.zeros(1, 2, 4, 4)), "source"),
}


@pytest.mark.parametrize("case", REWARD_CASES)
def test_bad_reward_parameter_is_refused(case):
    build, message = REWARD_CASES[case]
    with pytest.raises(ValueError, match=message):
        build()


# ----- inputs of a run: the schedule against the prior's range, the initial state -----

def small_problem(sigma_max=math.inf):
    prior = GaussianPrior(torch.zeros(4), torch.eye(4), sigma_max=sigma_max)
    likelihood = GaussianLikelihood(Matrix(torch.eye(4, dtype=torch.float64)), torch.zeros(1, 4, dtype=torch.float64),
                                    0.1)
    sigmas = karras_sigmas(3, 1e-2, 10.0).double()
    return prior, likelihood, sigmas, sigmas[0] * torch.randn(3, 4, generator=torch.Generator().manual_seed(0),
                                                              dtype=torch.float64)


def test_a_schedule_above_the_prior_range_is_refused():
    prior, likelihood, sigmas, x = small_problem(sigma_max=5.0)
    with pytest.raises(ValueError, match=r"above the prior's sigma_max 5.*prior_sigmas"):
        solvers.DPS()(prior, likelihood, x, sigmas)
    prior, _, _, _ = small_problem(sigma_max=10.0 * (1 - 1e-4))  # rounding is not a mistake
    solvers.DDIM()(prior, None, x, sigmas)


def test_non_finite_state_or_schedule_is_refused():
    prior, _, sigmas, x = small_problem()
    with pytest.raises(ValueError, match="initial state"):
        solvers.DDIM()(prior, None, x * math.nan, sigmas)
    with pytest.raises(ValueError, match="finite"):
        solvers.DDIM()(prior, None, x, torch.cat([torch.tensor([math.inf], dtype=sigmas.dtype), sigmas]))


# ----- the reward's output, checked on its first call -----

class Shaped(Reward):
    """A reward with a broken output: ``make(x0)``."""

    def __init__(self, make, differentiable=True):
        super().__init__()
        self.make, self.differentiable = make, differentiable

    def forward(self, x0):
        return self.make(x0)


BAD_OUTPUTS = {
    "(B, 2)": (lambda x0: x0[:, :2], "shape \\(3, 2\\) for a batch of 3"),
    "(B + 1,)": (lambda x0: torch.cat([x0[:, 0], x0[:1, 0]]), "shape \\(4,\\) for a batch of 3"),
    "scalar": (lambda x0: x0.sum(), "shape \\(\\) for a batch of 3"),
    "NaN": (lambda x0: x0[:, 0] * math.nan, "non-finite"),
    "Inf": (lambda x0: x0[:, 0] + math.inf, "non-finite"),
    "not a tensor": (lambda x0: x0[:, 0].tolist(), "returned list"),
}
GUIDED = {"DPS": solvers.DPS(step_size="constant"), "TFG": solvers.TFG(), "universal": solvers.UniversalGuidance(),
          "best-of-n": solvers.BestOfN(n=2)}


@pytest.mark.parametrize("solver", GUIDED)
@pytest.mark.parametrize("output", BAD_OUTPUTS)
def test_a_reward_with_a_wrong_output_is_refused_on_its_first_call(solver, output):
    make, message = BAD_OUTPUTS[output]
    prior, _, sigmas, x = small_problem()
    reward = Shaped(make)
    with pytest.raises(ValueError, match=message):
        GUIDED[solver](prior, reward, x, sigmas)
    assert "forward" not in vars(reward)  # the check is taken off after the run


class SummedLikelihood(GaussianLikelihood):
    """A likelihood whose ``log_prob`` sums over the batch: a scalar, not (B,)."""

    def log_prob(self, y_pred):
        return super().log_prob(y_pred).sum()


def test_a_derivative_free_solver_checks_the_likelihood_it_reads():
    prior, likelihood, sigmas, x = small_problem()
    broken = SummedLikelihood(likelihood.operator, likelihood.y, 0.1)
    with pytest.raises(ValueError, match="SummedLikelihood.log_prob returned shape \\(\\)"):
        solvers.EnKG(guidance_start=0.0)(prior, broken, x, sigmas)
    solvers.EnKG(guidance_start=0.0)(prior, likelihood, x, sigmas)


def test_a_black_box_reward_may_return_nan_for_a_failed_sample():
    prior, _, sigmas, x = small_problem()
    failing_first = Shaped(lambda x0: torch.where(torch.arange(len(x0)) == 0, math.nan, x0[:, 0]), differentiable=False)
    assert torch.isfinite(solvers.BestOfN(n=2)(prior, failing_first, x, sigmas)).all()


# ----- the command line -----

CLI_CASES = {
    "tfg rho -1": ("--solver", "tfg:rho=-1", "TFG rho must be a finite number >= 0, got -1.0"),
    "dps zeta -1": ("--solver", "dps:zeta=-1", "DPS zeta (the step size) must be a finite number >= 0"),
    "dps eta 2": ("--solver", "dps:eta=2", "DPS eta must be a finite number in [0, 1], got 2.0"),
    "tfg rho nan": ("--solver", "tfg:rho=nan", "got nan"),
    "enkg updates 1.5": ("--solver", "enkg:updates=1.5", "expected an integer"),
    "blur size 0": ("--operator", "blur:sigma=1,size=0", "size must be a positive integer, got 0"),
    "blur size -3": ("--operator", "blur:sigma=1,size=-3", "size must be a positive integer, got -3"),
    "blur size 1000": ("--operator", "blur:sigma=1,size=1000", "does not fit images of 16 x 16"),
    "blur sigma 1e6": ("--operator", "blur:sigma=1e6", "does not fit images of 16 x 16"),
    "strokes n -1": ("--operator", "inpaint:mask=strokes,n=-1", "n_strokes must be an integer >= 0, got -1"),
    "box size 2": ("--operator", "inpaint:mask=box,size=2", "in (0, 1], got 2.0"),
}


@pytest.fixture(scope="module")
def grey_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("validation") / "grey.png"
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refuses_a_bad_parameter_in_one_line(case, grey_png, tmp_path, capsys):
    option, spec, message = CLI_CASES[case]
    args = {"--prior": "digits", "--operator": "blur:sigma=1", "--solver": "dps", "--input": str(grey_png),
            "--out": str(tmp_path / "out"), "--steps": "2", option: spec}
    assert main(["solve", *[item for pair in args.items() for item in pair]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("diffguide solve: error:") and message in err[0], err
    assert not (tmp_path / "out").exists()
