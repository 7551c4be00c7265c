"""`diffguide solve` on the images users have: any size, grayscale, RGB or RGBA; the baseline it
reports; ensembles with --particles."""
import json

import numpy as np
import pytest
from PIL import Image

from diffguide.cli import main


def image(path, height, width, mode):
    rng = np.random.default_rng(0)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    smooth = np.linspace(0, 255, width)[None, :] * np.ones((height, 1))
    array = (0.7 * smooth[..., None] if channels else 0.7 * smooth) + 0.3 * rng.integers(0, 256, (height, width, *channels))
    Image.fromarray(array.astype(np.uint8), mode).save(path)
    return path


@pytest.mark.parametrize("height, width, mode", [(37, 53, "RGB"), (37, 53, "L"), (150, 203, "RGBA")])
def test_solve_any_size_and_mode_returns_the_input_size(tmp_path, capsys, height, width, mode):
    source = image(tmp_path / "in.png", height, width, mode)
    code = main(["solve", "--prior", "photos", "--operator", "blur:sigma=1", "--input", str(source),
                 "--out", str(tmp_path / "out"), "--steps", "10"])
    assert code == 0
    assert Image.open(tmp_path / "out" / "result.png").size == (width, height)
    assert Image.open(tmp_path / "out" / "result.png").mode == "RGB"
    notes = capsys.readouterr().err
    if mode == "L":
        assert "grayscale image converted to RGB" in notes
    if mode == "RGBA":
        assert "alpha channel is dropped" in notes


@pytest.mark.parametrize("operator, method", [("blur:sigma=1.5", "measurement"), ("downsample:factor=4", "bicubic"),
                                              ("inpaint:mask=box", "interpolation")])
def test_solve_reports_the_measurement_baseline_and_beats_it(tmp_path, operator, method):
    from diffguide.data.digits import load_digits_split

    digit = load_digits_split()[2][0, 0].numpy()
    Image.fromarray(((digit + 1) / 2 * 255).round().astype(np.uint8)).save(tmp_path / "digit.png")
    assert main(["solve", "--prior", "digits", "--operator", operator, "--input", str(tmp_path / "digit.png"),
                 "--out", str(tmp_path / "out"), "--steps", "50"]) == 0
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    assert report["baseline"]["method"] == method
    assert report["psnr"] > report["baseline"]["psnr"]
    assert report["model"]["prediction_type"] == "v_prediction" and report["model"]["null_label"] == 10


def test_solve_with_an_ensemble_solver_uses_particles(tmp_path):
    source = image(tmp_path / "in.png", 16, 16, "L")
    assert main(["solve", "--prior", "digits", "--operator", "blur:sigma=1", "--input", str(source), "--solver", "enkg",
                 "--out", str(tmp_path / "out"), "--steps", "4"]) == 0
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    assert report["particles"] == 16 and (tmp_path / "out" / "particles.png").is_file()
    assert main(["solve", "--prior", "digits", "--operator", "blur:sigma=1", "--input", str(source), "--solver", "enkg",
                 "--particles", "1", "--out", str(tmp_path / "bad"), "--steps", "4"]) == 2
    assert not (tmp_path / "bad").exists()
