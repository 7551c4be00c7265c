"""Every file that shapes a model is checked against its card; a copied or freshly trained prior
works where the shipped one does; training settings and damaged checkpoints are refused clearly."""
import json
import re
import shutil

import numpy as np
import pytest
import torch
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


def test_a_folder_without_a_card_loads_with_its_config_recorded(digits_copy):
    (digits_copy / "card.json").unlink()
    prior = DiffusersDenoiser.from_pretrained(digits_copy, null_label=10)
    config = prior.model_config
    assert config["card"] is None and config["prediction_type"] == "v_prediction"
    assert config["beta_schedule"] == "squaredcos_cap_v2" and config["num_class_embeds"] == 11
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
    (["--steps", "0"], "steps must be an integer >= 1"),
    (["--steps", "5", "--batch-size", "0"], "batch_size must be"),
    (["--steps", "5", "--threads", "-1"], "--threads must be at least 1"),
    (["--steps", "5", "--ema-decay", "2"], r"ema_decay must be in \[0, 1\)"),
    (["--steps", "5", "--label-dropout", "2"], r"label_dropout must be in \[0, 1\]"),
    (["--steps", "5", "--lr", "-1"], "lr must be"),
    (["--steps", "5", "--lr", "nan"], "lr must be"),
])
def test_bad_training_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()


def test_training_into_an_existing_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("keep me")
    assert main(["train", "--data", "digits", "--steps", "5", "--out", str(tmp_path / "taken")]) == 2
    assert (tmp_path / "taken").read_text() == "keep me"
    assert "existing file" in capsys.readouterr().err


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    train(sixteen_digits, 1, tmp_path, batch_size=4, unet=TINY, progress=False)
    state = tmp_path / "checkpoint" / "state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(ValueError, match="checkpoint .* is damaged"):
        train(sixteen_digits, 2, tmp_path, batch_size=4, unet=TINY, progress=False)
