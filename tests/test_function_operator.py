"""User forward models where an operator is expected: plain functions and callable objects."""
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators import BlackBox, Identity, Operator, as_operator
from diffguide.operators.function import FunctionOperator
from diffguide.priors import GaussianPrior
from diffguide.rewards import GaussianLikelihood
from diffguide.schedules import karras_sigmas
from diffguide.solvers.dps import DPS
from diffguide.solvers.enkg import EnKG

DIM, OBSERVED = 6, 3


def first_coordinates(x):
    """Observe the first ``OBSERVED`` coordinates."""
    return x[:, :OBSERVED]


class Scaled:
    """A forward model as an object with ``__call__``: twice the first coordinates."""

    def __call__(self, x):
        return 2.0 * x[:, :OBSERVED]


def problem(forward_model, seed=0):
    g = torch.Generator().manual_seed(seed)
    prior = GaussianPrior(torch.zeros(DIM), torch.eye(DIM))
    truth = prior.sample(1, g)
    with torch.no_grad():
        y = forward_model(truth) + 0.05 * torch.randn(1, OBSERVED, generator=g, dtype=torch.float64)
    return prior, truth, y, g


@pytest.mark.parametrize("forward_model", [first_coordinates, Scaled()], ids=["function", "callable-object"])
def test_a_user_forward_model_runs_with_dps(forward_model):
    prior, truth, y, g = problem(forward_model)
    likelihood = GaussianLikelihood(forward_model, y, sigma_y=0.05)
    assert isinstance(likelihood.operator, FunctionOperator) and likelihood.differentiable
    sigmas = karras_sigmas(60, 1e-3, 40.0).double()
    x = sigmas[0] * torch.randn(16, DIM, generator=g, dtype=torch.float64)
    with counting() as counts:
        samples = DPS()(prior, likelihood, x, sigmas, generator=g)
    assert counts.operator_evals == 60 * 16 and counts.grad_evals == 60
    observed_error = (samples[:, :OBSERVED].mean(0) - truth[0, :OBSERVED]).abs().max()
    assert observed_error < 0.2 < truth[0, :OBSERVED].abs().max()  # the prior mean, 0, is further off


def test_the_wrapper_is_an_operator_with_shapes_and_composition():
    op = as_operator(first_coordinates)
    assert isinstance(op, Operator) and op.output_shape((DIM,)) == (OBSERVED,)
    composed = op @ Identity()
    assert composed.output_shape((DIM,)) == (OBSERVED,)
    x = torch.randn(2, DIM)
    assert torch.equal(composed(x), x[:, :OBSERVED])


def test_an_operator_passes_unchanged_and_a_non_differentiable_function_is_marked():
    identity = Identity()
    assert as_operator(identity) is identity
    rounded = as_operator(lambda x: x.round(), differentiable=False)
    assert not rounded.differentiable
    assert not GaussianLikelihood(rounded, torch.zeros(1, DIM), sigma_y=0.1).differentiable


def test_a_derivative_free_solver_takes_a_non_differentiable_function():
    prior, _, y, g = problem(first_coordinates)
    likelihood = GaussianLikelihood(as_operator(first_coordinates, differentiable=False), y, sigma_y=0.05)
    sigmas = karras_sigmas(10, 1e-3, 40.0).double()
    x = sigmas[0] * torch.randn(8, DIM, generator=g, dtype=torch.float64)
    assert torch.isfinite(EnKG(guidance_scale=0.5)(prior, likelihood, x, sigmas, generator=g)).all()
    with pytest.raises(ValueError, match="not differentiable"):
        DPS()(prior, likelihood, x, sigmas, generator=g)


@pytest.mark.parametrize("not_a_model", [torch.zeros(3), 3.0, "blur"])
def test_a_non_callable_is_refused_with_what_to_implement(not_a_model):
    with pytest.raises(TypeError, match=r"Operator and implement forward\(x\).*LinearOperator.*adjoint.*BlackBox"):
        GaussianLikelihood(not_a_model, torch.zeros(1, 3), sigma_y=0.1)


def test_differentiable_cannot_override_an_operator():
    black_box = BlackBox(lambda sample: sample[:OBSERVED])
    with pytest.raises(ValueError, match="differentiable=False"):
        as_operator(black_box, differentiable=True)


def test_a_function_returning_numpy_points_to_black_box():
    op = as_operator(lambda x: x.numpy())
    with pytest.raises(TypeError, match="BlackBox"):
        op(torch.zeros(1, 3))
