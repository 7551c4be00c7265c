"""Bach's chorales from music21's corpus as notes and piano-roll excerpts, with a fixed split.

Source: the 350 distinct chorales of ``music21.corpus.chorales.Iterator`` (music21 ships them;
nothing is downloaded; the iterator's 371 numbers name some files twice). Each chorale's notes, all parts merged and tied notes joined, are quantised to
sixteenth-note frames: ``(onset, duration, pitch)`` in frames and MIDI numbers, with frame 0 the
first full bar's downbeat minus the pickup (a pickup of one beat starts at frame ``bar - 4``), so
that bar lines fall on multiples of the bar length. They are committed data in
``chorale_notes.npz``, written once by :func:`write_chorale_notes`, so that training, tests and
benchmarks read them in milliseconds and never depend on the music21 version. The held-out
chorales (10%, seeded) are listed in ``chorales_split.json``.

Excerpts: 64 frames (four bars of 4/4), taken every 16 frames (``music.scores.excerpts``), as piano
rolls over MIDI pitches 36-83 (``music.piano_roll``); excerpts with a note outside that range are
left out. Augmentation: transposition by up to
``TRANSPOSE`` semitones either way, drawn per excerpt among the shifts that keep it in range.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..music.piano_roll import PITCHES, pitch_span
from ..music.scores import excerpts, score_notes

NOTES_FILE = Path(__file__).with_name("chorale_notes.npz")
SPLIT_FILE = Path(__file__).with_name("chorales_split.json")
TRANSPOSE = 6
HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 0


def corpus_chorale_notes(name: str) -> np.ndarray:
    """The notes of corpus chorale ``name`` (e.g. ``"bach/bwv269"``) as an int16 array (N, 3) of
    ``(onset, duration, pitch)`` in sixteenth-note frames and MIDI numbers, sorted; parsed by music21."""
    from music21 import corpus

    return score_notes(corpus.parse(name))


def write_chorale_notes(path: Path = NOTES_FILE, split_path: Path = SPLIT_FILE) -> list[str]:
    """Parse every corpus chorale (about a minute), write their notes to ``path`` and the seeded
    held-out names to ``split_path``. Run once; both files are committed. Returns the names."""
    from music21 import corpus

    # the iterator lists some chorales under two Riemenschneider numbers: keep each file once
    names = list(dict.fromkeys(str(name) for name in corpus.chorales.Iterator(returnType="filename")))
    notes = {name: corpus_chorale_notes(name) for name in names}
    np.savez_compressed(path, names=np.array(names), **{f"notes_{i}": notes[name] for i, name in enumerate(names)})
    held_out = sorted(random.Random(SPLIT_SEED).sample(names, round(HELD_OUT_FRACTION * len(names))))
    record = {"source": "music21.corpus.chorales.Iterator", "n_chorales": len(names),
              "held_out_fraction": HELD_OUT_FRACTION, "seed": SPLIT_SEED, "held_out": held_out}
    Path(split_path).write_text(json.dumps(record, indent=0) + "\n")
    return names


def chorale_notes() -> dict[str, np.ndarray]:
    """Every chorale's notes, by corpus name, from the committed ``chorale_notes.npz``."""
    with np.load(NOTES_FILE) as data:
        return {str(name): data[f"notes_{i}"] for i, name in enumerate(data["names"])}


def held_out_names() -> list[str]:
    """The held-out chorales' corpus names (``chorales_split.json``)."""
    return json.loads(SPLIT_FILE.read_text())["held_out"]


def _split_rolls(held_out: bool) -> Tensor:
    names = set(held_out_names())
    rolls = [roll for name, notes in chorale_notes().items() if (name in names) == held_out
             for roll in excerpts(notes)]
    return torch.stack(rolls)


def chorales_train() -> tuple[Tensor, Tensor]:
    """Training excerpts of Bach's chorales as piano rolls (N, 2, 48, 64) in {-1, 1} (channel 0: the
    note sounds, channel 1: it starts), and zero labels (an unconditional prior).

    Source: music21's corpus (``corpus.chorales.Iterator``), notes committed in
    ``diffguide/data/chorale_notes.npz``; sixteenth-note frames, four-bar windows every bar, MIDI
    pitches 36-83; split: the chorales not listed in ``diffguide/data/chorales_split.json``.
    Augmentation: transposition by up to 6 semitones (``transpose_augment``).
    """
    rolls = _split_rolls(held_out=False)
    return rolls, torch.zeros(len(rolls), dtype=torch.int64)


def chorales_eval() -> Tensor:
    """The held-out chorales' excerpts (see :func:`chorales_train`), never seen in training."""
    return _split_rolls(held_out=True)


def transpose_augment(rolls: Tensor, generator: torch.Generator) -> Tensor:
    """Each roll shifted along pitch by a shift drawn uniformly among those in [-6, 6] semitones that
    keep all its notes in range (silence fills the rows left empty)."""
    lowest, highest = pitch_span(rolls)
    shifted = []
    for roll, low, high in zip(rolls, lowest.tolist(), highest.tolist()):
        low_shift, high_shift = max(-TRANSPOSE, -low), min(TRANSPOSE, PITCHES - 1 - high)
        shift = int(torch.randint(low_shift, high_shift + 1, (), generator=generator)) if high >= 0 else 0
        moved = torch.roll(roll, shift, dims=-2)
        if shift > 0:
            moved[..., :shift, :] = -1.0
        elif shift < 0:
            moved[..., shift:, :] = -1.0
        shifted.append(moved)
    return torch.stack(shifted)
