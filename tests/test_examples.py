"""Every script in ``examples/`` runs with ``--quick`` and writes its output folder."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_quick(script, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_dir() and any(path.is_file() for path in out.rglob("*")), f"{script.name} wrote nothing to {out}"
