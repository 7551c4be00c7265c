"""``--rule`` specs, ``diffguide sample`` on the chorales prior (MIDI, MusicXML, picture) and the music-rules task."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffguide.cli.errors import UsageError
from diffguide.cli.rules import parse_rule, rule_reward
from diffguide.data.chorales import chorales_eval
from diffguide.music import rules
from diffguide.music.scores import read_score, write_roll
from diffguide.rewards.music_rules import ChordProgressionRule, NoteDensityRule, PitchHistogramRule, RuleSum


def test_rule_specs_make_the_rules_they_name(tmp_path):
    histogram, weight = parse_rule("pitch-histogram:key=a", 64)
    assert isinstance(histogram, PitchHistogramRule) and weight == 1.0
    a_minor = {9, 11, 0, 2, 4, 5, 7}
    assert {int(c) for c in torch.nonzero(histogram.target).flatten()} == a_minor
    assert torch.allclose(histogram.target.sum(), torch.tensor(1.0))
    density, weight = parse_rule("note-density:vertical=3.5,horizontal=2,weight=0.5,softness=0.1", 64)
    assert isinstance(density, NoteDensityRule) and weight == 0.5 and density.differentiable
    assert density.target.tolist() == [3.5] * 4 + [2.0] * 4
    chords, _ = parse_rule("chord-progression:chords=I-IV-V-I,key=C", 64)
    assert isinstance(chords, ChordProgressionRule) and chords.target.tolist() == [1, 1, 4, 4, 5, 5, 1, 1]
    assert chords.key == "C"


def test_rule_targets_from_a_users_file(tmp_path):
    roll = chorales_eval()[7]
    path = write_roll(roll, tmp_path / "mine.mid")
    density, _ = parse_rule(f"note-density:from={path}", 64)
    assert torch.allclose(density.target, rules.note_density(roll[None])[0])
    chords, _ = parse_rule(f"chord-progression:from={path}", 64)
    assert torch.equal(chords.target, rules.chord_degrees(roll[None])[0])
    both = rule_reward([f"pitch-histogram:from={path}", "note-density:vertical=4,horizontal=2,weight=2"], (2, 48, 64))
    assert isinstance(both, RuleSum) and both.weights == [1.0, 2.0]
    assert both(roll[None])[0] < 0 and both.rules[0](roll[None])[0] == 0


@pytest.mark.parametrize("spec, message", [
    ("tempo:target=3", "unknown rule"),
    ("pitch-histogram", "give key=K or from=FILE"),
    ("pitch-histogram:key=H", "not a key"),
    ("note-density:vertical=3", "give vertical=V and horizontal=H"),
    ("note-density:vertical=-1,horizontal=2", "finite number >= 0"),
    ("chord-progression:chords=I-IX", "not a Roman numeral"),
    ("chord-progression:chords=I,colour=red", "unknown setting"),
    ("pitch-histogram:from=/nonexistent/piece.mid", "no such file"),
])
def test_bad_rule_specs_are_usage_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_rule(spec, 64)


def test_rules_need_a_piano_roll_prior():
    with pytest.raises(UsageError, match="piano-roll prior"):
        rule_reward(["pitch-histogram:key=C"], (1, 16, 16))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "diffguide.cli", *args], capture_output=True, text=True, timeout=900)


def test_sample_writes_midi_musicxml_and_a_picture(tmp_path):
    out = tmp_path / "music"
    result = run_cli("sample", "--prior", "chorales", "--n", "2", "--steps", "6", "--out", str(out), "--device", "cpu",
                     "--rule", "note-density:vertical=3,horizontal=2", "--solver", "scg:candidates=2")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "samples.json").read_text())
    assert len(record["rule_loss"]) == 2 and record["solver"] == "SCG"
    for i in range(2):
        notes = read_score(out / f"sample_{i:03d}.mid")
        assert len(notes) and np.array_equal(notes, read_score(out / f"sample_{i:03d}.musicxml"))
    assert (out / "rolls.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--rule", "pitch-histogram:key=C", "--solver", "dps"], "softness"),
    (["--rule", "pitch-histogram:key=C", "--solver", "ddim"], "reward solver"),
    (["--rule", "pitch-histogram:key=Q"], "not a key"),
])
def test_sample_refuses_bad_rule_runs_before_any_work(tmp_path, args, message):
    out = tmp_path / "never"
    result = run_cli("sample", "--prior", "chorales", "--n", "1", "--steps", "2", "--out", str(out), *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_music_rules_task_scores_guided_below_unguided():
    from diffguide.benchmarks.tasks.music_rules import MusicRules
    from diffguide.cli.specs import parse_solver

    task = MusicRules()
    unguided = task.run("note-density", parse_solver("ddpm"), seed=0, steps=12, reduced=True)
    guided = task.run("note-density", parse_solver("scg:candidates=4"), seed=0, steps=12, reduced=True)
    assert guided["rule_loss"] < unguided["rule_loss"]
    assert 0 <= guided["mean_overlap"] <= 1 and guided["rule_loss_real"] > 0
