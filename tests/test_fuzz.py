"""Property-based tests of the input contract: a random spec or parameter either runs to a finite
result or is refused (exit 2 with one line on the CLI, ``ValueError`` on the Python API) before
any output is written; never a traceback, never a non-finite result reported as success."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from diffguide.cli import main
from diffguide.cli.lazy import resolve
from diffguide.cli.specs import SOLVERS
from diffguide.priors.gaussian import GaussianPrior
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.operators.matrix import Matrix
from diffguide.schedules import karras_sigmas
from diffguide.solvers.run import set_progress
from diffguide.types import GuidanceDivergedError

#: values a user might type for a number: ordinary ones (drawn twice as often) and edge cases
ORDINARY_TEXT = st.one_of(st.integers(1, 4).map(str), st.floats(0.05, 3).map(lambda v: f"{v:.3g}"))
EDGE_TEXT = st.one_of(
    st.sampled_from(["0", "-1", "-0.5", "1e-12", "1e6", "1e30", "nan", "inf", "-inf", "", "abc", "true", "0x10",
                     "1,5", "=", ":"]),
    st.integers(-4, 6).map(str),
    st.floats(-10, 10, allow_nan=False).map(lambda v: f"{v:.3g}"),
)
NUMBER_TEXT = st.one_of(ORDINARY_TEXT, ORDINARY_TEXT, EDGE_TEXT)
#: solvers with an inner loop per step: their counts stay small so one example stays fast
SMALL_COUNTS = {"iterations", "n", "particles", "inner_steps", "recurrence", "steps", "samples", "n_recurrent",
                "directions", "candidates", "num_samples", "ensemble"}


def solver_fields(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(resolve(SOLVERS[name])) if f.init]


@st.composite
def solver_specs(draw):
    name = draw(st.one_of(st.sampled_from(sorted(SOLVERS)), st.sampled_from(["", "DPS", "dps ", "nope", "dps:"])))
    if name not in SOLVERS:
        return name
    fields = solver_fields(name) + ["bogus"]
    keys = draw(st.lists(st.sampled_from(fields), max_size=3, unique=True))
    parts = [f"{key}={draw(NUMBER_TEXT)}" for key in keys]
    return name + (":" + ",".join(parts) if parts else "")


OPERATOR_SPECS = st.one_of(
    st.builds(lambda s, k: f"blur:sigma={s}" + (f",size={k}" if k else ""), NUMBER_TEXT,
              st.one_of(st.none(), NUMBER_TEXT)),
    st.builds("downsample:factor={}".format, NUMBER_TEXT),
    st.builds("inpaint:mask=box,size={}".format, NUMBER_TEXT),
    st.builds("inpaint:mask=random,missing={}".format, NUMBER_TEXT),
    st.builds(lambda n, w: f"inpaint:mask=strokes,n={n},width={w}", NUMBER_TEXT, NUMBER_TEXT),
    st.sampled_from(["identity", "identity:x=1", "blur @", "@", "downsample:factor=2 @ blur:sigma=1", "nope",
                     "inpaint:mask=circle", "blur:sigma"]),
)


@pytest.fixture(scope="module")
def grey_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "in.png"
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8)).save(path)
    return path


def check_cli_outcome(code: int, err: str, out) -> None:
    """The contract for one CLI run: refused cleanly, diverged with a message, or finished finitely."""
    assert "Traceback" not in err
    event(f"exit {code}")
    lines = [line for line in err.splitlines() if "error" in line]
    if code == 2:
        assert len(lines) == 1 and err.strip().count("\n") == 0, err
        assert not out.exists(), f"refused but wrote {out}"
    elif code == 1:
        assert len(lines) == 1 and "diverged" in err, err
        assert not out.exists()
    else:
        assert code == 0, (code, err)
        result = json.loads((out / "result.json").read_text())
        numbers = [v for v in result.values() if isinstance(v, float)]
        assert numbers and all(math.isfinite(v) for v in numbers), result


counter = iter(range(10**9))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(solver=solver_specs(), operator=OPERATOR_SPECS, steps=st.sampled_from(["2", "3", "2", "3", "0", "-1", "x"]))
def test_solve_runs_or_refuses_cleanly(solver, operator, steps, grey_image, tmp_path, capsys):
    set_progress(False)
    out = tmp_path / f"out{next(counter)}"
    code = main(["solve", "--prior", "digits", "--input", str(grey_image), "--operator", operator,
                 "--solver", solver, "--steps", steps, "--out", str(out)])
    check_cli_outcome(code, capsys.readouterr().err, out)


def exact_problem():
    prior = GaussianPrior(torch.zeros(4), torch.eye(4))
    g = torch.Generator().manual_seed(0)
    likelihood = GaussianLikelihood.simulate(Matrix(torch.eye(2, 4)), prior.sample(1, g), 0.1, g)
    return prior, likelihood


ORDINARY = st.one_of(st.integers(1, 4), st.floats(0.05, 3), st.booleans())
VALUES = st.one_of(ORDINARY, ORDINARY, st.sampled_from([0, -1, -0.5, 1e-12, 1e6, float("nan"), float("inf"), None, "x"]),
                   st.integers(-3, 5), st.floats(-5, 5, allow_nan=False))


@settings(max_examples=120, deadline=None)
@given(name=st.sampled_from(sorted(set(SOLVERS) - {"classifier-guidance", "readout-guidance"})), data=st.data())
def test_solver_parameters_run_or_raise_value_error(name, data):
    """Any value for any field of any solver: ``ValueError`` before sampling, or a finite sample."""
    set_progress(False)
    cls = resolve(SOLVERS[name])
    fields = solver_fields(name)
    keys = data.draw(st.lists(st.sampled_from(fields), max_size=2, unique=True)) if fields else []
    kwargs = {key: data.draw(VALUES) for key in keys}
    for key in keys:
        if key in SMALL_COUNTS and isinstance(kwargs[key], (int, float)) and kwargs[key] > 4:
            kwargs[key] = 4
    prior, likelihood = exact_problem()
    g = torch.Generator().manual_seed(1)
    sigmas = karras_sigmas(4, 1e-2, 10.0)
    x = sigmas[0] * torch.randn(4, 4, generator=g)
    try:
        solver = cls(**kwargs)
        result = solver(prior, likelihood if solver.needs != "none" else None, x, sigmas, generator=g)
    except (ValueError, GuidanceDivergedError) as refused:
        event(type(refused).__name__)
        return
    event("ran")
    assert torch.isfinite(result).all(), (name, kwargs)
