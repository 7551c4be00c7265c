"""The public API: every public class documents itself, and the subpackages re-export their parts."""
import dataclasses
import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import diffguide

PACKAGES = ["diffguide.solvers", "diffguide.rewards", "diffguide.operators", "diffguide.priors",
            "diffguide.executors", "diffguide.models", "diffguide.physics", "diffguide.metrics",
            "diffguide.schedules", "diffguide.data", "diffguide.training", "diffguide.tuning"]


def all_modules():
    """Every module of the package except ``__main__`` entry points (importing one runs it)."""
    names = [info.name for info in pkgutil.walk_packages(diffguide.__path__, "diffguide.")
             if not info.name.endswith("__main__")]
    return [importlib.import_module(name) for name in ["diffguide", *names]]


def own_docstring(cls) -> str | None:
    """The class's own docstring; the signature that ``dataclass`` or ``NamedTuple`` writes in
    when there is none does not count."""
    doc = cls.__dict__.get("__doc__")
    generated = dataclasses.is_dataclass(cls) or hasattr(cls, "_fields")
    if doc and generated and doc.startswith(f"{cls.__name__}("):
        return None
    return doc


def test_every_public_class_has_its_own_docstring():
    missing = sorted({f"{cls.__module__}.{cls.__qualname__}"
                      for module in all_modules() for name, cls in vars(module).items()
                      if inspect.isclass(cls) and cls.__module__ == module.__name__ and not name.startswith("_")
                      and not (own_docstring(cls) or "").strip()})
    assert not missing, f"{len(missing)} public classes have no docstring of their own:\n" + "\n".join(missing)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} has an empty __all__"
    unresolved = [name for name in module.__all__ if not hasattr(module, name)]
    assert not unresolved, f"{package}.__all__ names {unresolved}, which it does not define"


def test_the_main_parts_import_from_their_subpackages():
    from diffguide.executors import InProcess, ProcessPool
    from diffguide.models import DigitClassifier, load_digit_classifier, load_readout_head
    from diffguide.operators import BlackBox, Blur, FunctionOperator, Operator, as_operator
    from diffguide.priors import GaussianPrior, load
    from diffguide.rewards import ClassifierReward, GaussianLikelihood, Likelihood, Reward
    from diffguide.solvers import DPS, SCG, TFG, BestOfN, EnKG, Solver, StepRecord
    from diffguide.solvers.dps import DPS as DPSFromItsModule

    assert DPS is DPSFromItsModule
    assert issubclass(GaussianLikelihood, Likelihood) and issubclass(Likelihood, Reward)
    assert all(issubclass(solver, Solver) for solver in (DPS, TFG, EnKG, SCG, BestOfN))
    assert all(issubclass(op, Operator) for op in (BlackBox, Blur, FunctionOperator))
    assert callable(as_operator) and callable(load) and callable(load_digit_classifier) and callable(load_readout_head)
    assert StepRecord and GaussianPrior and ClassifierReward and DigitClassifier and InProcess and ProcessPool


@pytest.mark.parametrize("package", ["diffguide.solvers", "diffguide.rewards", "diffguide.operators",
                                     "diffguide.priors", "diffguide.models", "diffguide.solvers.enkg",
                                     "diffguide.rewards.likelihood", "diffguide.operators.function"])
def test_each_part_imports_first_in_a_fresh_process(package):
    done = subprocess.run([sys.executable, "-c", f"import {package}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_importing_diffguide_stays_light():
    code = "import sys, diffguide; print(sorted(m for m in ('torch', 'diffguide.solvers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
