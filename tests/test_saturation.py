"""The saturating sensor response: its values, its inverse, nonlinearity (no SVD methods), the
classical baseline through its inverse, the CLI spec, and the restore task's harder instances."""
import math

import pytest
import torch

from diffguide.baselines import measurement_baseline
from diffguide.cli.errors import UsageError
from diffguide.cli.specs import parse_operator
from diffguide.operators.base import LinearOperator
from diffguide.operators.blur import Blur
from diffguide.operators.saturation import Saturation


def test_response_maps_the_range_onto_itself_and_inverts():
    op = Saturation(2.0)
    x = torch.linspace(-1, 1, 101, dtype=torch.float64).reshape(1, 1, 1, 101)
    y = op(x)
    assert float(y.min()) == pytest.approx(-1.0) and float(y.max()) == pytest.approx(1.0)
    assert float(y[..., 75]) == pytest.approx(math.tanh(1.0) / math.tanh(2.0))
    assert torch.allclose(op.inverse(y[..., 1:-1]), x[..., 1:-1], atol=1e-9)
    assert bool(torch.isfinite(op.inverse(torch.tensor([1.5, -3.0]))).all())  # noise past the range is clipped


def test_a_saturated_blur_is_nonlinear_and_its_baseline_undoes_the_response():
    blur = Blur.gaussian(1.0)
    op = Saturation(2.0) @ blur
    assert not isinstance(op, LinearOperator) and op.differentiable
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    name, estimate = measurement_baseline(op, op(x), (1, 12, 12))
    assert name == "measurement" and torch.allclose(estimate, blur(x), atol=1e-5)


def test_cli_spec_builds_it_and_checks_the_gain():
    op = parse_operator("saturate:gain=3 @ blur:sigma=1", (1, 16, 16), torch.Generator())
    assert isinstance(op.outer, Saturation) and op.outer.gain == 3.0
    with pytest.raises(UsageError, match="gain"):
        parse_operator("saturate:gain=-1", (1, 16, 16), torch.Generator())


def test_restore_task_has_the_noisy_and_nonlinear_instances():
    from diffguide.benchmarks.tasks.restore import Restore, operator

    instances = Restore().instances(False)
    assert {"digits-noisy-blur", "digits-saturated-blur", "photos-noisy-blur", "photos-saturated-blur"} <= set(instances)
    assert isinstance(operator("saturated-blur", (1, 16, 16), torch.Generator()).outer, Saturation)
