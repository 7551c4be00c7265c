"""BlackBox: a NumPy callable as an operator gives the values of the torch operator it mirrors,
reports failed samples as NaN rows (through a likelihood, too), counts one evaluation per sample
and refuses gradients."""
import functools

import numpy as np
import pytest
import torch

import simulators
from diffguide.counting import counting
from diffguide.executors import ProcessPool
from diffguide.operators.black_box import BlackBox
from diffguide.operators.blur import Blur
from diffguide.operators.identity import Identity
from diffguide.operators.matrix import Matrix
from diffguide.rewards.likelihood import GaussianLikelihood


def images(n=3, dtype=torch.float64, seed=0):
    return torch.randn(n, 2, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def blur_pair(batched=False, **options):
    blur = Blur.gaussian(1.0, padding="circular", dtype=torch.float64)
    fn = functools.partial(simulators.circular_blur, kernel=blur.kernel.numpy())
    return blur, BlackBox(fn, batched=batched, **options)


@pytest.mark.parametrize("batched", [False, True])
def test_black_box_blur_matches_the_torch_blur(batched):
    blur, black_box = blur_pair(batched)
    x = images()
    torch.testing.assert_close(black_box(x), blur(x), rtol=0, atol=1e-12)


def test_black_box_matrix_matches_the_torch_matrix_on_a_process_pool():
    a = torch.randn(5, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with ProcessPool(2) as pool:
        black_box = BlackBox(functools.partial(simulators.matrix_times, a=a.numpy()), executor=pool)
        torch.testing.assert_close(black_box(x), Matrix(a, (3, 4))(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_keeps_the_input_dtype(dtype):
    blur, black_box = blur_pair()
    x = images(dtype=dtype)
    y = black_box(x)
    assert y.dtype == dtype and y.device == x.device
    torch.testing.assert_close(y, blur.to(dtype)(x))


def test_failed_samples_are_nan_rows_and_a_likelihood_passes_them_on():
    """Sample 1 always fails: its row is NaN, its reward is NaN, every other reward is exact."""
    a = torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x[:, 0] = torch.arange(5)
    black_box = BlackBox(functools.partial(failing_matrix_times, a=a.numpy(), bad=1), retries=2)
    y = black_box(x)
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2, 3, 4]]).all()
    assert black_box.last_failures.tolist() == [False, True, False, False, False]
    assert black_box.total_failures == 1 and black_box.total_retries == 2
    measurement = torch.zeros(1, 4, dtype=torch.float64)
    rewards = GaussianLikelihood(black_box, measurement, 0.5)(x)
    exact = GaussianLikelihood(Matrix(a), measurement, 0.5)(x)
    assert torch.isnan(rewards[1])
    torch.testing.assert_close(rewards[[0, 2, 3, 4]], exact[[0, 2, 3, 4]])
    black_box(x[[0, 2]])  # the counters add up over the three calls; the mask is the latest call's
    assert black_box.last_failures.tolist() == [False, False]
    assert black_box.total_failures == 2 and black_box.total_retries == 4


def failing_matrix_times(x, a, bad):
    if int(x[0]) == bad:
        raise RuntimeError("solver diverged")
    return a @ x


def test_every_sample_failing_still_gives_nan_rows_once_the_shape_is_known():
    black_box = BlackBox(functools.partial(simulators.raises_on, bad=(0, 1)), output_shape=(6,))
    y = black_box(torch.zeros(2, 6))
    assert y.shape == (2, 6) and torch.isnan(y).all() and black_box.total_failures == 2


def test_backward_through_a_black_box_raises():
    blur, black_box = blur_pair()
    assert black_box.differentiable is False
    assert GaussianLikelihood(black_box, torch.zeros(1, 2, 8, 8, dtype=torch.float64), 0.1).differentiable is False
    x = images().requires_grad_(True)
    with pytest.raises(RuntimeError, match="cannot backpropagate through the black-box operator circular_blur"):
        black_box(x).sum().backward()
    with pytest.raises(RuntimeError, match="black-box"):
        torch.autograd.grad((Identity() @ black_box)(x).sum(), x)


def test_operator_evals_count_one_per_sample_whatever_the_retries(tmp_path):
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x[:, 0] = torch.arange(5)
    fn = functools.partial(simulators.raises_once_on, bad=(0, 3), directory=str(tmp_path))
    black_box = BlackBox(fn, retries=1)
    with counting() as counts:
        y = black_box(x)
        (Identity() @ black_box)(x)  # a composition counts its samples once
    assert counts.operator_evals == 10 and black_box.total_retries == 2 and black_box.total_failures == 0
    assert counts.operator_retries == 2 and counts.operator_failures == 0  # what a run record reports
    torch.testing.assert_close(y, torch.from_numpy(np.stack([simulators.heat(s) for s in x.numpy()])))


def test_shapes_are_checked_and_an_unknown_output_shape_is_probed_uncounted():
    black_box = BlackBox(simulators.heat, input_shape=(6,))
    with pytest.raises(ValueError, match=r"takes samples of shape \(6,\), got \(7,\)"):
        black_box(torch.zeros(2, 7))
    with counting() as counts:
        assert black_box.output_shape((6,)) == (6,)
    assert counts.operator_evals == 0
    refusing = BlackBox(functools.partial(simulators.raises_on, bad=(0,)))
    with pytest.raises(ValueError, match="pass output_shape"):
        refusing.output_shape((6,))
    given = BlackBox(functools.partial(simulators.raises_on, bad=(0,)), output_shape=(4, 2))
    assert given.output_shape((6,)) == (4, 2)  # no evaluation needed
    assert given.total_failures == 0


def test_failures_after_retries_reach_the_run_counters():
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    x[:, 0] = torch.arange(4)
    black_box = BlackBox(functools.partial(simulators.raises_on, bad=(1, 2)), retries=2)
    with counting() as counts:
        black_box(x)
    assert counts.operator_failures == 2 and counts.operator_retries == 4
