"""The CLI end to end: solve, sample, --help, and every bad input as a one-line error."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel
from PIL import Image

from diffguide.cli import main


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("prior")
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
                       norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(path / "unet")
    # "sample" prediction keeps a random network's clean estimate in a plausible range at every noise level
    DDIMScheduler(clip_sample=False, prediction_type="sample").save_pretrained(path / "scheduler")
    return path


def png(path, size=16, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def solve_args(prior_dir, tmp_path, **overrides):
    args = {"--prior": prior_dir, "--operator": "blur:sigma=1", "--input": png(tmp_path / "in.png"),
            "--out": tmp_path / "out", "--steps": 4}
    args.update(overrides)
    return ["solve", *[str(item) for key, value in args.items() if value is not None for item in (key, value)]]


def test_solve_writes_measurement_result_and_metrics(prior_dir, tmp_path):
    assert main(solve_args(prior_dir, tmp_path, **{"--operator": "downsample:factor=2 @ blur:sigma=1"})) == 0
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    for key in ("psnr", "ssim", "relative_l2", "data_consistency", "nfe", "wall_seconds", "seed"):
        assert key in report
    assert report["nfe"] == 4 and report["grad_evals"] == 4 and report["config"]["zeta"] == 6.0
    assert report["backward_passes"] == 4 and report["network_passes"] == 12 and report["device"] == "cpu"
    assert Image.open(tmp_path / "out" / "measurement.png").size == (8, 8)
    assert Image.open(tmp_path / "out" / "result.png").size == (16, 16)


def test_a_result_below_the_baseline_gets_a_note(prior_dir, tmp_path, capsys):
    # an untrained prior and a noise image: picking among unguided samples cannot beat the measurement
    assert main(solve_args(prior_dir, tmp_path, **{"--solver": "best-of-n:n=2"})) == 0
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    assert report["psnr"] < report["baseline"]["psnr"]
    assert "note: the result scores below the baseline" in capsys.readouterr().err


def test_a_solver_that_runs_part_of_the_schedule_gets_a_note(prior_dir, tmp_path, capsys):
    # RED-diff from the classical estimate runs only the levels from sigma_y (0.05) up to 1
    assert main(solve_args(prior_dir, tmp_path, **{"--solver": "red-diff", "--steps": 10})) == 0
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    assert 0 < report["nfe"] < 10
    assert f"REDDiff made {report['nfe']} denoiser calls on a schedule of 10 steps" in capsys.readouterr().err
    assert main(solve_args(prior_dir, tmp_path, **{"--out": tmp_path / "dps"})) == 0
    assert "denoiser calls on a schedule" not in capsys.readouterr().err


def test_solve_same_seed_same_output(prior_dir, tmp_path):
    outputs = []
    for run in range(2):
        assert main(solve_args(prior_dir, tmp_path, **{"--out": tmp_path / f"run{run}", "--seed": 3})) == 0
        outputs.append((tmp_path / f"run{run}" / "result.png").read_bytes())
    assert outputs[0] == outputs[1]
    assert main(solve_args(prior_dir, tmp_path, **{"--out": tmp_path / "other", "--seed": 4})) == 0
    assert (tmp_path / "other" / "result.png").read_bytes() != outputs[0]


def test_solve_from_an_observed_measurement(prior_dir, tmp_path):
    np.save(tmp_path / "y.npy", np.random.default_rng(0).uniform(-1, 1, (1, 16, 16)).astype(np.float32))
    assert main(solve_args(prior_dir, tmp_path, **{"--input": None, "--measurement": tmp_path / "y.npy"})) == 0
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    assert "psnr" not in report and np.isfinite(report["data_consistency"])


def test_sample_writes_samples_and_grid(prior_dir, tmp_path):
    assert main(["sample", "--prior", str(prior_dir), "--n", "3", "--steps", "3", "--out", str(tmp_path / "s")]) == 0
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == ["grid.png", "sample_000.png", "sample_001.png", "sample_002.png", "samples.json"]
    assert json.loads((tmp_path / "s" / "samples.json").read_text())["nfe"] == 3


@pytest.mark.parametrize("command", [[], ["solve"], ["sample"]])
def test_help_on_every_command(command):
    done = subprocess.run([sys.executable, "-m", "diffguide.cli", *command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: diffguide" in done.stdout


def corrupt_prior(prior_dir, tmp_path):
    broken = tmp_path / "broken"
    (broken / "unet").mkdir(parents=True)
    (broken / "scheduler").mkdir()
    (broken / "unet" / "config.json").write_bytes((prior_dir / "unet" / "config.json").read_bytes())
    weights = (prior_dir / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights[: len(weights) // 2])
    (broken / "scheduler" / "scheduler_config.json").write_bytes(
        (prior_dir / "scheduler" / "scheduler_config.json").read_bytes())
    return broken


BAD_INPUTS = {
    "missing model folder": ({"--prior": "/nonexistent/model"}, "no such folder"),
    "corrupt model folder": ({"--prior": "CORRUPT"}, "cannot load prior"),
    "unparsable operator": ({"--operator": "blur:sigma"}, "key=value"),
    "unknown operator": ({"--operator": "warp:by=2"}, "unknown operator"),
    "operator that does not fit": ({"--operator": "downsample:factor=3"}, "divisible"),
    "NaN in the measurement": ({"--measurement": "NAN"}, "NaN"),
    "measurement of the wrong shape": ({"--measurement": "SHAPE"}, "measurement y has shape"),
    "unknown solver": ({"--solver": "dpss"}, "unknown solver"),
    "unknown solver parameter": ({"--solver": "dps:zeta=1,rho=2"}, "no parameter"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, prior_dir, tmp_path, capsys):
    overrides, message = BAD_INPUTS[case]
    value = next(iter(overrides.values()))
    if value == "CORRUPT":
        overrides = {"--prior": corrupt_prior(prior_dir, tmp_path)}
    elif value == "SIZE":
        overrides = {"--input": png(tmp_path / "odd.png", size=15)}
    elif value == "RGB":
        overrides = {"--input": png(tmp_path / "rgb.png", channels=3)}
    elif value in ("NAN", "SHAPE"):
        y = np.zeros((1, 16, 16) if value == "NAN" else (1, 8, 8), dtype=np.float32)
        y[0, 0, 0] = np.nan if value == "NAN" else 0
        np.save(tmp_path / "y.npy", y)
        overrides = {"--measurement": tmp_path / "y.npy"}
    assert main(solve_args(prior_dir, tmp_path, **overrides)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("diffguide solve: error:") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_divergence_during_guidance_stops_with_the_step(prior_dir, tmp_path, capsys):
    code = main(solve_args(prior_dir, tmp_path, **{"--solver": "dps:step_size=constant,zeta=1e30", "--steps": 10}))
    err = capsys.readouterr().err
    assert code == 1 and "at step" in err and not (tmp_path / "out").exists()


def test_sample_with_guidance_counts_both_passes_and_an_interval_outside_the_schedule_is_plain(tmp_path):
    common = ["sample", "--prior", "digits", "--n", "2", "--steps", "3", "--class-label", "7"]
    assert main([*common, "--out", str(tmp_path / "cfg"), "--guidance", "cfg:scale=3"]) == 0
    record = json.loads((tmp_path / "cfg" / "samples.json").read_text())
    assert record["nfe"] == 6 and record["guidance"] == "cfg:scale=3"
    assert record["model"]["guidance"]["rule"] == "CFG" and record["model"]["guidance"]["scale"] == 3.0
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "outside"), "--guidance", "cfg:scale=3",
                 "--guidance-interval", "0,0.001"]) == 0
    assert json.loads((tmp_path / "outside" / "samples.json").read_text())["nfe"] == 3
    grids = [(tmp_path / name / "grid.png").read_bytes() for name in ("plain", "outside", "cfg")]
    assert grids[0] == grids[1] != grids[2]
