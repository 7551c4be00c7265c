"""Every file that shapes a model is checked against its card; a copied or freshly trained prior
works where the shipped one does; training settings and damaged checkpoints are refused clearly."""
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from diffguide.cli import main
from diffguide.data.digits import load_digits_split
from diffguide.priors.diffusers_unet import DiffusersDenoiser
from diffguide.priors.embedded import WEIGHTS_DIR, load
from diffguide.training import train, unet_config

TINY = unet_config(block_out_channels=(8, 16, 16), layers_per_block=1, attention_head_dim=8, norm_num_groups=4)


@pytest.fixture
def digits_copy(tmp_path):
    folder = tmp_path / "digits"
    shutil.copytree(WEIGHTS_DIR / "digits", folder)
    return folder


@pytest.fixture
def grey_png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8)).save(path)
    return path


def edit_json(file, **changes):
    data = json.loads(file.read_text())
    file.write_text(json.dumps(dict(data, **changes), indent=2))


@pytest.mark.parametrize("relative, changes", [
    ("scheduler/scheduler_config.json", {"prediction_type": "epsilon"}),
    ("scheduler/scheduler_config.json", {"beta_schedule": "linear"}),
    ("unet/config.json", {"norm_eps": 1e-3}),
])
def test_an_edited_config_is_refused_by_name(digits_copy, relative, changes):
    assert load("digits", digits_copy).null_label == 10  # the intact copy loads
    edit_json(digits_copy / relative, **changes)
    with pytest.raises(ValueError, match=f"{relative.split('/')[-1]}: sha256 .* does not match"):
        load("digits", digits_copy)
    with pytest.raises(ValueError, match="does not match"):
        DiffusersDenoiser.from_pretrained(digits_copy)


def test_flipped_weight_bytes_are_refused(digits_copy):
    weights = digits_copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="diffusion_pytorch_model.safetensors: sha256"):
        DiffusersDenoiser.from_pretrained(digits_copy)


def test_a_file_the_card_does_not_cover_is_refused(digits_copy):
    shutil.copy(digits_copy / "unet" / "diffusion_pytorch_model.safetensors",
                digits_copy / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError, match="diffusion_pytorch_model.bin: not covered"):
        DiffusersDenoiser.from_pretrained(digits_copy)


def test_a_card_without_hashes_is_a_clear_error(digits_copy):
    card = json.loads((digits_copy / "card.json").read_text())
    for key in ("weights_sha256", "files_sha256"):
        card.pop(key)
    (digits_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="no files_sha256"):
        DiffusersDenoiser.from_pretrained(digits_copy)
    (digits_copy / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON card"):
        DiffusersDenoiser.from_pretrained(digits_copy)


def test_a_listed_file_that_is_missing_is_refused(digits_copy):
    (digits_copy / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(ValueError, match="scheduler_config.json: missing, but its card lists it"):
        DiffusersDenoiser.from_pretrained(digits_copy)


@pytest.mark.parametrize("changes, message", [({"null_label": 11}, r"null_label 11 does not fit the UNet \(labels 0..10\)"),
                                              ({"data_range": [1, -1]}, "data_range must be")])
def test_card_settings_that_do_not_fit_are_refused(digits_copy, changes, message):
    edit_json(digits_copy / "card.json", **changes)
    with pytest.raises(ValueError, match=message):
        DiffusersDenoiser.from_pretrained(digits_copy)


def test_a_copied_prior_keeps_its_card_settings(tmp_path):
    shutil.copytree(WEIGHTS_DIR / "ns-vorticity", tmp_path / "ns")
    prior = DiffusersDenoiser.from_pretrained(tmp_path / "ns")
    assert prior.data_range == (-5.0, 5.0) and prior.null_label is None
    assert prior.with_shape((1, 32, 32)).model_config["card"] == str(tmp_path / "ns" / "card.json")


def test_a_folder_without_a_card_loads_with_its_config_recorded(digits_copy):
    (digits_copy / "card.json").unlink()
    prior = DiffusersDenoiser.from_pretrained(digits_copy, null_label=10)
    config = prior.model_config
    assert config["card"] is None and config["prediction_type"] == "v_prediction"
    assert config["beta_schedule"] == "squaredcos_cap_v2" and config["num_class_embeds"] == 11
    assert (config["num_train_timesteps"], config["sample_size"], config["in_channels"]) == (1000, 16, 1)
    assert json.loads(json.dumps(config)) == config  # ready for a run's result.json
    with pytest.raises(ValueError, match="null label .* is unknown"):
        DiffusersDenoiser.from_pretrained(digits_copy)(torch.zeros(1, 1, 16, 16), 1.0)


def test_a_copied_prior_works_in_solve_and_sample(digits_copy, grey_png, tmp_path):
    assert main(["solve", "--prior", str(digits_copy), "--input", str(grey_png), "--operator", "blur:sigma=1",
                 "--steps", "2", "--out", str(tmp_path / "solved")]) == 0
    assert main(["sample", "--prior", str(digits_copy), "--n", "2", "--steps", "2",
                 "--out", str(tmp_path / "sampled")]) == 0
    assert (tmp_path / "solved" / "result.png").is_file() and (tmp_path / "sampled").is_dir()


def sixteen_digits():
    """Sixteen fixed training digits."""
    x, y, _, _ = load_digits_split()
    return x[:16], y[:16]


def test_a_trained_prior_has_a_checked_card_and_works_in_solve(tmp_path, grey_png):
    final = train(sixteen_digits, 2, tmp_path / "run", batch_size=4, unet=TINY, progress=False)
    card = json.loads((final / "card.json").read_text())
    assert set(card["files_sha256"]) == {"unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                                         "scheduler/scheduler_config.json"}
    assert card["null_label"] == 10
    assert main(["solve", "--prior", str(final), "--input", str(grey_png), "--operator", "blur:sigma=1",
                 "--steps", "2", "--out", str(tmp_path / "solved")]) == 0
    edit_json(final / "scheduler" / "scheduler_config.json", prediction_type="epsilon")
    assert main(["solve", "--prior", str(final), "--input", str(grey_png), "--operator", "blur:sigma=1",
                 "--steps", "2", "--out", str(tmp_path / "again")]) == 2


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be an integer >= 1"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--threads", "-1"], "--threads must be at least 1"),
    (["--ema-decay", "2"], r"--ema-decay must be in \[0, 1\)"),
    (["--label-dropout", "2"], r"--label-dropout must be in \[0, 1\]"),
    (["--lr", "-1"], r"--lr must be in \(0, 1\]"),
    (["--lr", "nan"], "--lr must be"),
    (["--checkpoint-every-seconds", "0"], "--checkpoint-every-seconds must be"),
    (["--seed", str(2**64)], r"--seed must be an integer in \[-2\*\*63, 2\*\*64\)"),
    (["--data", "cifar"], "--data 'cifar' is not a training set; expected one of chorales, digits, digits-autoguide, ns-vorticity, photos"),
])
def test_bad_training_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--steps", "5", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()


def test_the_library_refuses_bad_settings_by_keyword(tmp_path):
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        train(sixteen_digits, 2, tmp_path / "run", warmup_steps=-1, unet=TINY, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("out, message", [("taken", "--out .*taken is an existing file"),
                                          ("taken/run", "--out .*taken/run is inside .*taken, an existing file")])
def test_training_into_an_existing_file_is_refused(tmp_path, capsys, out, message):
    (tmp_path / "taken").write_text("keep me")
    assert main(["train", "--data", "digits", "--steps", "5", "--out", str(tmp_path / out)]) == 2
    assert (tmp_path / "taken").read_text() == "keep me"
    assert re.search(message, capsys.readouterr().err)


def test_training_into_an_unwritable_folder_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # root may write anywhere
    assert main(["train", "--data", "digits", "--steps", "5", "--out", str(tmp_path / "a" / "run")]) == 2
    assert f"{tmp_path} is not writable" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_a_diverging_run_is_not_exported(tmp_path):
    def broken_digits():
        """Sixteen digits, one of them NaN."""
        x, y = sixteen_digits()
        return torch.where(torch.arange(16)[:, None, None, None] == 3, math.nan, x), y

    with pytest.raises(ValueError, match="training diverged .*nothing exported"):
        train(broken_digits, 50, tmp_path, batch_size=16, unet=TINY, progress=False)
    assert not (tmp_path / "final").exists()


@pytest.mark.parametrize("damaged", ["state.safetensors", "state.json"])
def test_a_truncated_checkpoint_is_one_line(tmp_path, capsys, damaged):
    train(sixteen_digits, 1, tmp_path, batch_size=4, unet=TINY, progress=False)
    state = tmp_path / "checkpoint" / damaged
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(ValueError, match="checkpoint .* is damaged"):
        train(sixteen_digits, 2, tmp_path, batch_size=4, unet=TINY, progress=False)
    assert main(["train", "--data", "digits", "--steps", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged" in err, err


@pytest.mark.parametrize("weights", ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"])
def test_truncated_weights_in_a_folder_are_one_line(digits_copy, tmp_path, capsys, weights):
    (digits_copy / "card.json").unlink()
    unet = digits_copy / "unet"
    if weights.endswith(".bin"):
        UNet2DModel.from_pretrained(unet).save_pretrained(unet, safe_serialization=False)
        (unet / "diffusion_pytorch_model.safetensors").unlink()
    data = (unet / weights).read_bytes()
    (unet / weights).write_bytes(data[: len(data) // 2])
    assert main(["sample", "--prior", str(digits_copy), "--n", "1", "--steps", "1", "--class-label", "3",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not load the UNet2DModel weights" in err, err
