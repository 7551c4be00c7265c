"""The musical rules of rule-guided music diffusion (Huang et al., ICML 2024), measured on piano rolls.

Each maps rolls (B, 2, pitches, frames) (``music.piano_roll``) to a (B, D) statistic, as the paper
defines it on its piano rolls:

- ``pitch_class_histogram``: duration-weighted -- each pitch class's sounding frames over all
  sounding frames -- (B, 12), class 0 = C.
- ``note_density``: per window of ``window`` frames (default one 4/4 bar), the vertical density
  (sounding notes per frame, averaged over the window) then the horizontal density (frames on
  which some note starts, per quarter note): (B, 2 * frames / window), all vertical values first.
- ``chord_degrees``: per window of ``window`` frames (default half a bar), the scale degree 1-7
  of the Roman numeral of the window's longest-lasting chord (chordified vertical slice) in the
  excerpt's key (music21's key analysis, computed by ``excerpt_key``, or ``key``); 0 for a silent
  window: (B, frames / window).

With ``softness > 0`` the first two are smooth surrogates of the same counts (a note sounds with
weight ``sigmoid(v / softness)``; "some note starts" is a soft or), which a gradient-based
solver can differentiate; ``softness = 0`` is the exact, non-differentiable count.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from .piano_roll import LOWEST_PITCH, roll_notes

FRAMES_PER_QUARTER = 4
DENSITY_WINDOW = 16
CHORD_WINDOW = 8


def _weights(values: Tensor, softness: float) -> Tensor:
    return torch.sigmoid(values / softness) if softness > 0 else (values > 0).to(values.dtype)


def sounding(rolls: Tensor, softness: float = 0.0) -> Tensor:
    """Where notes sound, (B, pitches, frames) in [0, 1] (exactly 0 or 1 for ``softness = 0``)."""
    return _weights(rolls[:, 0], softness)


def note_starts(rolls: Tensor, softness: float = 0.0) -> Tensor:
    """Where notes start, (B, pitches, frames): a sounding frame with an onset or after silence
    (``piano_roll.roll_notes``'s rule), ``sound * (1 - (1 - onset) * sounded_before)``."""
    sound, onset = sounding(rolls, softness), _weights(rolls[:, 1], softness)
    before = torch.nn.functional.pad(sound[..., :-1], (1, 0))
    return sound * (1 - (1 - onset) * before)


def pitch_class_histogram(rolls: Tensor, softness: float = 0.0) -> Tensor:
    """Duration-weighted pitch-class histogram, (B, 12), summing to 1 (all zeros for a silent roll)."""
    per_pitch = sounding(rolls, softness).sum(dim=-1)  # (B, pitches)
    classes = (torch.arange(per_pitch.shape[-1], device=rolls.device) + LOWEST_PITCH) % 12
    histogram = per_pitch.new_zeros(per_pitch.shape[0], 12).index_add(1, classes, per_pitch)
    return histogram / histogram.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def _windows(values: Tensor, window: int) -> Tensor:
    """(B, frames) -> (B, frames / window, window); ``ValueError`` unless ``window`` divides the frames."""
    frames = values.shape[-1]
    if window < 1 or frames % window:
        raise ValueError(f"a window of {window} frames must divide the roll's {frames} frames")
    return values.reshape(values.shape[0], frames // window, window)


def note_density(rolls: Tensor, window: int = DENSITY_WINDOW, softness: float = 0.0) -> Tensor:
    """Vertical then horizontal note density per window, (B, 2 * frames / window) (module docstring)."""
    vertical = _windows(sounding(rolls, softness).sum(dim=1), window).mean(dim=-1)
    starts = note_starts(rolls, softness)
    any_start = 1 - (1 - starts).prod(dim=1)  # a soft "or" over pitches; exact for 0/1 values
    horizontal = _windows(any_start, window).sum(dim=-1) / (window / FRAMES_PER_QUARTER)
    return torch.cat([vertical, horizontal], dim=-1)


def _longest_slices(notes: np.ndarray, frames: int, window: int) -> list[tuple[int, ...]]:
    """Per window, the pitches of its longest-lasting vertical slice (music21's ``chordify``: a new
    slice wherever a note starts or ends; ties: the earliest), ``()`` where the window is silent."""
    slices = [set() for _ in range(frames)]
    starts = np.zeros(frames + 1, dtype=bool)
    for onset, duration, pitch in notes.tolist():
        starts[min(onset, frames)] = True
        for frame in range(onset, min(onset + duration, frames)):
            slices[frame].add(pitch)
    chords = []
    for start in range(0, frames, window):
        best, best_length, frame = (), 0, start
        while frame < start + window:
            end = frame + 1
            while end < start + window and slices[end] == slices[frame] and not starts[end]:
                end += 1
            if slices[frame] and end - frame > best_length:
                best, best_length = tuple(sorted(slices[frame])), end - frame
            frame = end
        chords.append(best)
    return chords


#: how keys are spelled, by tonic pitch class (music21 names: upper case major, lower case minor)
MAJOR_KEYS = ("C", "D-", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B")
MINOR_KEYS = ("c", "c#", "d", "e-", "e", "f", "f#", "g", "g#", "a", "b-", "b")


@functools.lru_cache(maxsize=1)
def _key_profiles() -> np.ndarray:
    """music21's Aarden-Essen key profiles (its default key analysis), (2, 12): major, minor."""
    from music21.analysis.discrete import AardenEssen

    return np.array([AardenEssen().getWeights(mode) for mode in ("major", "minor")], dtype=float)


def excerpt_key(notes: np.ndarray) -> str | None:
    """The key of an excerpt's notes as music21's ``analyze('key')`` finds it: the largest correlation
    between the duration-weighted pitch-class histogram and the 24 rotated Aarden-Essen profiles;
    returned as a music21 key name (``MAJOR_KEYS``, ``MINOR_KEYS``), ``None`` for a silent excerpt.
    Computed here (music21 itself takes seconds on a dense excerpt)."""
    if not len(notes):
        return None
    histogram = np.bincount(notes[:, 2] % 12, weights=notes[:, 1], minlength=12).astype(float)
    rotations = np.array([[np.roll(profile, tonic) for tonic in range(12)] for profile in _key_profiles()])
    centred_h = histogram - histogram.mean()
    centred_p = rotations - rotations.mean(axis=-1, keepdims=True)
    scale = np.sqrt((centred_p ** 2).sum(-1) * (centred_h ** 2).sum())
    correlation = np.where(scale > 0, (centred_p * centred_h).sum(-1) / np.where(scale > 0, scale, 1), 0.0)
    mode, tonic = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    return (MAJOR_KEYS, MINOR_KEYS)[mode][tonic]


def chord_degrees(rolls: Tensor, key: str | list[str] | None = None, window: int = CHORD_WINDOW) -> Tensor:
    """Scale degree (1-7) of each window's chord in the excerpt's key or ``key`` (e.g. ``"C"``,
    ``"a"`` for A minor, music21's spelling; or one key per roll), 0 for silence: (B, frames / window)
    int64 on the CPU."""
    frames = rolls.shape[-1]
    _windows(rolls.new_zeros(1, frames), window)  # the window must divide the frames
    keys = list(key) if isinstance(key, (list, tuple)) else [key] * len(rolls)
    if len(keys) != len(rolls):
        raise ValueError(f"{len(keys)} keys for {len(rolls)} piano rolls")
    degrees = []
    for roll, given in zip(rolls, keys):
        notes = roll_notes(roll)
        found = given if given is not None else excerpt_key(notes)
        degrees.append([_degree(found, tuple(sorted({p % 12 for p in pitches})), pitches[0] % 12) if pitches else 0
                        for pitches in _longest_slices(notes, frames, window)])
    return torch.tensor(degrees, dtype=torch.int64)


@functools.lru_cache(maxsize=65536)
def _degree(key: str | None, pitch_classes: tuple[int, ...], bass: int) -> int:
    """The scale degree of music21's Roman numeral for the chord of ``pitch_classes`` over ``bass``
    in ``key``; the Roman numeral depends only on these, not on the voicing's octaves, so it is
    computed once per chord (music21's analysis takes about 20 ms)."""
    from music21 import chord, roman
    from music21 import key as keys

    if key is None:
        return 0
    voicing = [48 + bass] + [60 + pc for pc in pitch_classes if pc != bass]
    return int(roman.romanNumeralFromChord(chord.Chord(voicing), keys.Key(key)).scaleDegree)
