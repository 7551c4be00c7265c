"""The README's Python examples run as written, in order, in one namespace (its ``y`` given: a blurred
held-out digit), and print what their comments say."""
import contextlib
import io
import re
from pathlib import Path

import torch

from diffguide.data.digits import load_digits_split
from diffguide.operators import Blur

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_examples_run_and_count_what_they_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write their files here
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    digit = load_digits_split()[2][:1]
    namespace = {"y": Blur.gaussian(1.5)(digit) + 0.05 * torch.randn(digit.shape, generator=torch.Generator().manual_seed(0))}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    assert printed.getvalue().split()[:2] == ["100", "100"]  # the comment: forward and backward passes
    assert namespace["x0"].shape == (8, 1, 16, 16) and torch.isfinite(namespace["x0"]).all()
    assert namespace["rolls"].shape == (2, 2, 48, 64) and (tmp_path / "cadence.mid").is_file()
