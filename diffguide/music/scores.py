"""Scores in and out: music21 scores, MIDI and MusicXML files <-> notes and piano rolls.

Notes are ``(onset, duration, pitch)`` in sixteenth-note frames and MIDI numbers
(``music.piano_roll``). Reading quantises every part of a score to sixteenths, joins tied notes and
shifts a pickup so that bar lines fall on multiples of the bar length (:func:`score_notes`); a
user's own MIDI or MusicXML file becomes piano-roll excerpts as the corpus chorales do
(:func:`file_excerpts`). Writing makes one piano part at ``tempo`` quarter notes a minute, in 4/4.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from .piano_roll import FRAMES, LOWEST_PITCH, PITCHES, piano_roll, roll_notes

FRAMES_PER_QUARTER = 4
TEMPO = 80
#: what :func:`read_score` takes, by file suffix
SCORE_SUFFIXES = (".mid", ".midi", ".mxl", ".musicxml", ".xml", ".krn", ".abc")


def score_notes(score) -> np.ndarray:
    """The notes of a music21 score or part (ties joined) quantised to sixteenth-note frames and
    shifted so that the first full bar starts on a bar line: (N, 3) int16 ``(onset, duration, pitch)``,
    sorted, durations at least one frame."""
    notes = []
    parts = score.parts if hasattr(score, "parts") and len(score.parts) else [score]
    for part in parts:
        measures = part.getElementsByClass("Measure")
        pickup = float(measures[0].paddingLeft) if len(measures) else 0.0
        for element in part.stripTies().flatten().notes:
            onset = round((float(element.offset) + pickup) * FRAMES_PER_QUARTER)
            duration = max(1, round(float(element.quarterLength) * FRAMES_PER_QUARTER))
            notes.extend((onset, duration, pitch.midi) for pitch in element.pitches)
    return np.array(sorted(set(notes)), dtype=np.int16).reshape(-1, 3)


def read_score(path: str | Path) -> np.ndarray:
    """The notes of a MIDI, MusicXML (or other music21-readable) file; ``ValueError`` for a missing,
    unreadable or empty one."""
    from music21 import converter

    path = Path(path)
    if path.suffix.lower() not in SCORE_SUFFIXES:
        raise ValueError(f"{path}: not a score file (expected one of {', '.join(SCORE_SUFFIXES)})")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    # MIDI: music21's own quantisation would stretch some sixteenths; score_notes rounds to sixteenths
    options = {"quantizePost": False} if path.suffix.lower() in (".mid", ".midi") else {}
    try:
        notes = score_notes(converter.parse(str(path), **options))
    except Exception as error:  # music21 raises many kinds on a damaged file
        raise ValueError(f"{path}: cannot read it as a score ({type(error).__name__}: {error})") from None
    if not len(notes):
        raise ValueError(f"{path}: the score has no notes")
    return notes


def excerpts(notes: np.ndarray, frames: int = FRAMES, hop: int = 16) -> list[Tensor]:
    """The piano rolls of a piece's windows of ``frames`` frames every ``hop`` frames from frame 0,
    each whole window inside the piece and every note in the roll's pitch range."""
    end = int((notes[:, 0] + notes[:, 1]).max()) if len(notes) else 0
    rolls = []
    for start in range(0, end - frames + 1, hop):
        sounding = notes[(notes[:, 0] < start + frames) & (notes[:, 0] + notes[:, 1] > start)]
        if len(sounding) and sounding[:, 2].min() >= LOWEST_PITCH and sounding[:, 2].max() < LOWEST_PITCH + PITCHES:
            rolls.append(piano_roll(sounding, start, frames))
    return rolls


def file_excerpts(path: str | Path, frames: int = FRAMES, hop: int = 16) -> list[Tensor]:
    """A user's MIDI or MusicXML file as piano-roll excerpts (:func:`excerpts`); ``ValueError`` when no
    window of ``frames`` frames fits in MIDI pitches 36-83."""
    rolls = excerpts(read_score(path), frames, hop)
    if not rolls:
        raise ValueError(f"{path}: no {frames}-frame excerpt with every note in MIDI {LOWEST_PITCH}-"
                         f"{LOWEST_PITCH + PITCHES - 1} (the piece is shorter, or its range wider)")
    return rolls


def notes_score(notes: np.ndarray, tempo: float = TEMPO):
    """A music21 score of ``notes``: one piano part in 4/4 at ``tempo`` quarter notes a minute."""
    from music21 import instrument, meter, note, stream, tempo as tempi

    part = stream.Part()
    part.insert(0, instrument.Piano())
    part.insert(0, meter.TimeSignature("4/4"))
    part.insert(0, tempi.MetronomeMark(number=tempo))
    for onset, duration, pitch in np.asarray(notes).tolist():
        part.insert(onset / FRAMES_PER_QUARTER, note.Note(int(pitch), quarterLength=duration / FRAMES_PER_QUARTER))
    score = stream.Score()
    score.insert(0, part)
    return score


def write_roll(roll: Tensor, path: str | Path, tempo: float = TEMPO) -> Path:
    """Write one piano roll as a MIDI (``.mid``) or MusicXML (``.musicxml``/``.xml``) file; returns the path."""
    path = Path(path)
    kind = {".mid": "midi", ".midi": "midi", ".musicxml": "musicxml", ".xml": "musicxml"}.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: write .mid or .musicxml files")
    score = notes_score(roll_notes(roll), tempo)
    if kind == "musicxml":
        score = score.makeNotation()
    score.write(kind, fp=str(path))
    return path
