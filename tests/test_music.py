"""Piano rolls, the chorales data, scores in and out, and the musical rules on rolls with known answers."""
import numpy as np
import pytest
import torch

from diffguide.data import chorales
from diffguide.music import rules
from diffguide.music.piano_roll import FRAMES, LOWEST_PITCH, PITCHES, piano_roll, pitch_span, roll_notes
from diffguide.music.scores import file_excerpts, read_score, write_roll
from diffguide.rewards.music_rules import ChordProgressionRule, NoteDensityRule, PitchHistogramRule, RuleSum

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def scale_roll() -> torch.Tensor:
    """C major, C4 to C5 in quarter notes (two bars), then silence."""
    return piano_roll(np.array([[4 * i, 4, p] for i, p in enumerate(C_MAJOR)]))[None]


def chords_roll(chords, frames_each=16) -> torch.Tensor:
    return piano_roll(np.array([[frames_each * i, frames_each, p] for i, chord in enumerate(chords) for p in chord]))[None]


def test_roll_round_trip_keeps_repeated_notes():
    notes = np.array([[0, 4, 60], [4, 4, 60], [8, 2, 67], [8, 8, 48], [62, 5, 83]])  # a repeated C; one cut at the end
    back = roll_notes(piano_roll(notes))
    assert back.tolist() == [[0, 4, 60], [4, 4, 60], [8, 2, 67], [8, 8, 48], [62, 2, 83]]


def test_roll_refuses_pitches_out_of_range():
    with pytest.raises(ValueError, match="MIDI 36..83"):
        piano_roll(np.array([[0, 4, LOWEST_PITCH + PITCHES]]))


def test_c_major_scale_pitch_class_histogram():
    histogram = rules.pitch_class_histogram(scale_roll())[0]
    expected = torch.zeros(12)
    expected[[0, 2, 4, 5, 7, 9, 11]] = 1.0
    expected[0] = 2.0  # C4 and C5
    assert torch.allclose(histogram, expected / 8)


def test_note_density_counts_onsets_and_polyphony():
    # bar 1: four quarter notes, each doubled at the octave; bar 2: eight eighths; bars 3-4: silence
    notes = [[4 * i, 4, p] for i in range(4) for p in (48, 60)] + [[16 + 2 * i, 2, 64] for i in range(8)]
    density = rules.note_density(piano_roll(np.array(notes))[None])[0]
    vertical, horizontal = density[:4], density[4:]
    assert torch.allclose(vertical, torch.tensor([2.0, 1.0, 0.0, 0.0]))
    assert torch.allclose(horizontal, torch.tensor([1.0, 2.0, 0.0, 0.0]))  # onset frames per quarter note


def test_soft_rules_approach_the_counts_and_have_gradients():
    roll = chorales.chorales_eval()[:3]
    for statistic in (rules.pitch_class_histogram, rules.note_density):
        assert torch.allclose(statistic(roll, softness=0.01), statistic(roll), atol=1e-3)
    x = roll.clone().requires_grad_()
    rules.note_density(x, softness=0.2).sum().backward()
    assert x.grad.abs().sum() > 0


def test_one_four_five_one_is_recognised():
    progression = chords_roll([(48, 64, 67, 72), (53, 65, 69, 72), (55, 62, 67, 71), (48, 64, 67, 72)])
    assert rules.chord_degrees(progression).tolist() == [[1, 1, 4, 4, 5, 5, 1, 1]]
    # in G major the same chords are IV, bVII (degree 7), I, IV
    assert rules.chord_degrees(progression, key="G").tolist() == [[4, 4, 7, 7, 1, 1, 4, 4]]
    assert rules.chord_degrees(torch.full((1, 2, PITCHES, FRAMES), -1.0)).tolist() == [[0] * 8]


def test_rule_rewards_are_zero_on_their_target_and_negative_elsewhere():
    rolls = chorales.chorales_eval()[:4]
    reference = rolls[1:2]
    for rule in (PitchHistogramRule(rules.pitch_class_histogram(reference)[0]),
                 NoteDensityRule(rules.note_density(reference)[0]),
                 ChordProgressionRule(rules.chord_degrees(reference)[0])):
        rule.check(tuple(rolls.shape[1:]))
        values = rule(rolls)
        assert values.shape == (4,) and values[1] == 0 and (values[[0, 2, 3]] < 0).all()
        assert not rule.differentiable
    both = RuleSum([PitchHistogramRule(rules.pitch_class_histogram(reference)[0]),
                    ChordProgressionRule(rules.chord_degrees(reference)[0])], [2.0, 1.0])
    expected = 2 * both.rules[0](rolls) + both.rules[1](rolls)
    assert torch.allclose(both(rolls), expected)


def test_rule_targets_per_sample_and_their_checks():
    rolls = chorales.chorales_eval()[:3]
    per_sample = NoteDensityRule(rules.note_density(rolls))
    assert torch.equal(per_sample(rolls), torch.zeros(3))
    assert PitchHistogramRule(torch.full((12,), 1 / 12), softness=0.1).differentiable
    with pytest.raises(ValueError, match="needs 8 target values"):
        NoteDensityRule(torch.ones(6)).check((2, PITCHES, FRAMES))
    with pytest.raises(ValueError, match="piano rolls"):
        PitchHistogramRule(torch.ones(12) / 12).check((1, 16, 16))
    with pytest.raises(ValueError, match="12-bin"):
        PitchHistogramRule(torch.ones(7))
    with pytest.raises(ValueError, match="scale degrees"):
        ChordProgressionRule(torch.full((8,), 9))
    with pytest.raises(ValueError, match="not a key"):
        ChordProgressionRule(torch.ones(8), key="H minor major")


def test_committed_notes_match_the_corpus():
    names = chorales.held_out_names()[:2] + ["bach/bwv269"]
    committed = chorales.chorale_notes()
    assert len(committed) == 350 and len(set(chorales.held_out_names())) == 35
    for name in names:
        assert np.array_equal(chorales.corpus_chorale_notes(name), committed[name])


def test_pickup_is_shifted_onto_the_bar_lines():
    notes = chorales.chorale_notes()["bach/bwv269"]  # 3/4 with a one-beat pickup
    assert notes[0, 0] == 8 and 12 in notes[:, 0]  # pickup on beat 3, the first downbeat on frame 12


def test_split_is_disjoint_and_excerpts_are_in_range():
    train, labels = chorales.chorales_train()
    held = chorales.chorales_eval()
    assert train.shape[1:] == held.shape[1:] == (2, PITCHES, FRAMES) and len(train) > 8 * len(held) > 0
    assert torch.equal(labels, torch.zeros(len(train), dtype=torch.int64))
    assert set(train.unique().tolist()) == {-1.0, 1.0}


def test_transposition_keeps_the_notes_and_the_range():
    rolls = chorales.chorales_eval()[:32]
    moved = chorales.transpose_augment(rolls, torch.Generator().manual_seed(0))
    low, high = pitch_span(moved)
    assert (low >= 0).all() and (high < PITCHES).all()
    shifts = pitch_span(moved)[0] - pitch_span(rolls)[0]
    assert shifts.abs().max() <= chorales.TRANSPOSE and (shifts != 0).any()
    for roll, shifted, shift in zip(rolls, moved, shifts.tolist()):
        original = roll_notes(roll)
        assert np.array_equal(roll_notes(shifted), original + [0, 0, shift])


@pytest.mark.parametrize("suffix", [".mid", ".musicxml"])
def test_corpus_excerpt_round_trips_through_score_files(tmp_path, suffix):
    roll = chorales.chorales_eval()[5]
    path = write_roll(roll, tmp_path / f"excerpt{suffix}")
    assert np.array_equal(read_score(path), roll_notes(roll))
    assert torch.equal(file_excerpts(path)[0], roll)


def test_bad_score_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_score(tmp_path / "missing.mid")
    (tmp_path / "broken.mid").write_bytes(b"not a midi file")
    with pytest.raises(ValueError, match="cannot read it"):
        read_score(tmp_path / "broken.mid")
    with pytest.raises(ValueError, match="not a score file"):
        read_score(tmp_path / "picture.png")


def test_excerpt_statistics_on_a_known_roll():
    from diffguide.music.statistics import excerpt_statistics

    # C major chord (C4 E4 G4) held for bar 1, then C4 repeated in eighths in bar 2, then silence
    notes = [[0, 16, p] for p in (60, 64, 67)] + [[16 + 2 * i, 2, 60] for i in range(8)]
    stats = {name: float(value[0]) for name, value in excerpt_statistics(piano_roll(np.array(notes))[None]).items()}
    assert stats["polyphony"] == pytest.approx((16 * 3 + 16) / 32)
    assert stats["onsets_per_bar"] == pytest.approx(11 / 4)
    assert stats["note_length"] == pytest.approx(64 / 11)
    assert stats["in_key"] == 1.0 and stats["pitch_range"] == 7 and stats["silence"] == 0.5


def test_key_finding_agrees_with_music21():
    from music21 import note, stream

    for roll in chorales.chorales_eval()[::40]:
        notes = roll_notes(roll)
        part = stream.Stream()
        for onset, duration, pitch in notes.tolist():
            part.insert(onset / 4, note.Note(pitch, quarterLength=duration / 4))
        theirs, mine = part.analyze("key"), rules.excerpt_key(notes)
        from music21 import key

        assert (key.Key(mine).tonic.pitchClass, key.Key(mine).mode) == (theirs.tonic.pitchClass, theirs.mode)


def test_overlapping_area_and_shuffling():
    from diffguide.music.statistics import overlapping_area, shuffled

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, generator=g), torch.randn(400, generator=g)
    assert overlapping_area(a, b) > 0.9 and overlapping_area(a, b + 10) < 0.01
    assert overlapping_area(torch.ones(5), torch.ones(5)) == pytest.approx(1.0, abs=1e-3)
    rolls = chorales.chorales_eval()[:4]
    mixed = shuffled(rolls, g)
    assert torch.equal((mixed > 0).sum(dim=(1, 2, 3)), (rolls > 0).sum(dim=(1, 2, 3)))
    assert not torch.equal(mixed, rolls)


def test_chord_slices_are_music21s_chordify():
    from diffguide.music.rules import _longest_slices
    from diffguide.music.scores import notes_score

    for roll in chorales.chorales_eval()[::60]:
        notes = roll_notes(roll)
        chords = notes_score(notes).chordify().flatten().notes
        expected = []
        for start in range(0, FRAMES, 8):  # per half bar, the longest chordified slice within it
            best, length = (), 0.0
            for chord in chords:
                onset = float(chord.offset) * 4
                inside = min(onset + float(chord.quarterLength) * 4, start + 8) - max(onset, start)
                if inside > length:
                    best, length = tuple(sorted(p.midi for p in chord.pitches)), inside
            expected.append(best)
        assert _longest_slices(notes, FRAMES, 8) == expected
