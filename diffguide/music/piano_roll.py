"""Piano rolls: notes <-> a (2, pitches, frames) picture in {-1, 1}.

A roll covers ``PITCHES`` MIDI pitches from ``LOWEST_PITCH`` (row ``p - LOWEST_PITCH``, lowest pitch in
row 0) and ``frames`` sixteenth-note frames. Channel 0 is +1 where a note sounds, channel 1 is +1 on
the frame where it starts, so repeated notes stay distinct; -1 elsewhere. Notes are int arrays
``(onset, duration, pitch)`` in frames and MIDI numbers. Decoding a generated roll thresholds both
channels at 0: a note starts on a sounding frame that has an onset or follows silence, and lasts
while its pitch sounds without a new onset.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

LOWEST_PITCH = 36  # C2
PITCHES = 48  # up to B5 (MIDI 83)
FRAMES = 64  # four bars of 4/4 in sixteenths
CHANNELS = 2


def piano_roll(notes: np.ndarray, start: int = 0, frames: int = FRAMES) -> Tensor:
    """The roll of ``notes`` (N, 3) over frames ``start .. start + frames - 1``; notes are cut at the
    window's edges (a note begun before ``start`` sounds from frame 0 without an onset there) and
    pitches outside the range are a ``ValueError``."""
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    rows = notes[:, 2] - LOWEST_PITCH
    if len(notes) and (rows.min() < 0 or rows.max() >= PITCHES):
        raise ValueError(f"pitches must lie in MIDI {LOWEST_PITCH}..{LOWEST_PITCH + PITCHES - 1}, got "
                         f"{notes[:, 2].min()}..{notes[:, 2].max()}")
    roll = -torch.ones(CHANNELS, PITCHES, frames)
    for (onset, duration, _), row in zip(notes.tolist(), rows.tolist()):
        first, last = max(onset - start, 0), min(onset + duration - start, frames)
        if first < last:
            roll[0, row, first:last] = 1.0
            if onset >= start:
                roll[1, row, onset - start] = 1.0
    return roll


def roll_notes(roll: Tensor) -> np.ndarray:
    """The notes (N, 3) ``(onset, duration, pitch)`` of one roll (2, pitches, frames), sorted (by onset,
    then duration, then pitch, as ``scores.score_notes`` sorts them; module docstring for the decoding rule)."""
    sounding = (roll[0] > 0).cpu().numpy()
    onset = (roll[1] > 0).cpu().numpy() & sounding
    previous = np.zeros_like(sounding)
    previous[:, 1:] = sounding[:, :-1]
    starts = sounding & (onset | ~previous)
    notes = []
    for row, frame in zip(*np.nonzero(starts)):
        end = frame + 1
        while end < sounding.shape[1] and sounding[row, end] and not starts[row, end]:
            end += 1
        notes.append((frame, end - frame, row + LOWEST_PITCH))
    return np.array(sorted(notes), dtype=np.int64).reshape(-1, 3)


def pitch_span(rolls: Tensor) -> tuple[Tensor, Tensor]:
    """Per roll (B, 2, pitches, frames): the lowest and highest row where a note sounds ((B,) int64;
    -1 for both in a silent roll)."""
    occupied = (rolls[:, 0] > 0).any(dim=-1)  # (B, pitches)
    rows = torch.arange(occupied.shape[-1], device=rolls.device)
    lowest = torch.where(occupied, rows, occupied.shape[-1]).min(dim=-1).values
    highest = torch.where(occupied, rows, -1).max(dim=-1).values
    return torch.where(highest >= 0, lowest, -1), highest


def is_piano_roll_shape(shape) -> bool:
    """Whether samples of ``shape`` are piano rolls: (2, 48, frames), frames a whole number of 4/4 bars."""
    return len(shape) == 3 and shape[0] == CHANNELS and shape[1] == PITCHES and shape[2] % 16 == 0
