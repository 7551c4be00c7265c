"""The GPU benchmark script (``python -m diffguide.benchmarks.gpu``) at its smallest setting: every
section of the report present with finite numbers, and a bad ``--device`` refused in one line.
The CUDA case runs only where CUDA is (it is the GPU check's smoke test of the device path)."""
import math

import pytest
import torch

from diffguide.benchmarks import gpu

SECTIONS = ("## (a) DDIM overhead", "## (b) DPS against deepinv", "## (c) Against the physical limit",
            "## (d) Per solver")
SOLVERS = ("DDIM", "DPS", "UniversalGuidance", "TFG", "DPS-GSG", "SAG", "TDS", "EnKG")


def table_rows(section: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # past the header and the |---| line


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_the_tiny_report_has_every_section_with_finite_numbers(device, tmp_path, capsys):
    out = tmp_path / "bench.md"
    gpu.main(["--tiny", "--device", device, "--out", str(out)])
    text = out.read_text()
    assert capsys.readouterr().out == text
    assert "torch " + torch.__version__ in text and "setting `tiny`" in text
    starts = [text.index(title) for title in SECTIONS]
    assert starts == sorted(starts)
    sections = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    for section in sections:
        rows = table_rows(section)
        assert rows, section
        for row in rows:
            if row[0] == "EnKG" and row[1] == "1":  # an ensemble of one particle is refused, and said so
                assert "needs >= 2 particles" in row[-1]
                continue
            numbers = [float(cell) for cell in row if cell not in SOLVERS]
            assert numbers and all(math.isfinite(v) for v in numbers), row
    assert [row[0] for row in table_rows(sections[3])] == [name for name in SOLVERS for _ in (1, 2)]
    assert [row[0] for row in table_rows(sections[2])] == ["1", "2"]


@pytest.mark.parametrize("device", ["tpu", "nonsense", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_a_bad_device_is_refused_with_exit_code_2_and_one_line(device, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--tiny", "--device", device])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffguide.benchmarks.gpu: error: --device") and device in lines[0]
