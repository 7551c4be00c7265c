"""The command line starts fast: building the parser and every ``--help`` import no heavy library,
and the lazy ``"module:name"`` tables behind the help texts name what they should."""
import subprocess
import sys

import pytest

from diffguide.cli import COMMANDS, specs, train
from diffguide.cli.bench import TASKS
from diffguide.cli.lazy import resolve

HEAVY = ("torch", "diffusers", "deepinv", "distributed", "matplotlib", "numpy", "scipy", "sklearn", "skimage", "PIL")


def heavy_modules_after(code: str) -> str:
    """The heavy modules a fresh interpreter has imported after running ``code``, as printed on its last line."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_building_the_parser_imports_no_heavy_library():
    assert heavy_modules_after("from diffguide.cli import build_parser\nbuild_parser()") == "[]"


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=["diffguide", *COMMANDS])
def test_help_imports_no_heavy_library(command):
    code = ("from diffguide.cli import main\n"
            f"assert main({[*command, '--help']!r}) == 0")
    assert heavy_modules_after(code) == "[]"


def test_lazy_tables_resolve_to_what_they_name():
    solvers = {name: resolve(target) for name, target in specs.SOLVERS.items()}
    assert all(isinstance(cls, type) for cls in solvers.values())
    assert specs.UNGUIDED == tuple(name for name, cls in solvers.items() if cls.needs == "none")
    assert all(resolve(target).name == name for name, target in TASKS.items())
    for data, config, augment in train.DATA.values():
        assert callable(resolve(data)) and callable(resolve(config))
        assert augment is None or callable(resolve(augment))


def test_resolve_passes_objects_through():
    assert resolve(dict) is dict
