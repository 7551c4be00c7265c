"""How much generated piano rolls look like the music: per-excerpt statistics and their overlap with real ones.

Per excerpt (``excerpt_statistics``):

- ``polyphony``: notes sounding per sounding frame;
- ``onsets_per_bar``: notes started per 16 frames;
- ``note_length``: mean note length in frames;
- ``in_key``: the fraction of sounding note-frames whose pitch class is in the scale of the
  excerpt's key (music21's key analysis; natural minor plus the raised sixth and seventh);
- ``pitch_range``: highest minus lowest sounding pitch, in semitones;
- ``silence``: the fraction of frames where nothing sounds.

``overlapping_area`` is the evaluation of rule-guided music diffusion (Huang et al., ICML 2024,
after Yang & Lerch 2020): the area shared by the two densities of one statistic (Gaussian kernel
density estimates), 1 for identical distributions. ``shuffled`` permutes each roll's pitch rows and
its frames, the reference that keeps the note count and destroys the music (it keeps polyphony
and silence, the counts per frame, exactly). ``tonic_relative_histogram`` averages pitch-class
histograms with each excerpt's tonic rotated to C, so that transposed sets compare.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .piano_roll import roll_notes
from .rules import MAJOR_KEYS, MINOR_KEYS, excerpt_key, note_starts, pitch_class_histogram, sounding

STATISTICS = ("polyphony", "onsets_per_bar", "note_length", "in_key", "pitch_range", "silence")
MAJOR, MINOR = {0, 2, 4, 5, 7, 9, 11}, {0, 2, 3, 5, 7, 8, 9, 10, 11}


def _in_key(roll: Tensor) -> float:
    notes = roll_notes(roll)
    found = excerpt_key(notes)
    if found is None:
        return float("nan")
    tonic, major = (MAJOR_KEYS.index(found), True) if found in MAJOR_KEYS else (MINOR_KEYS.index(found), False)
    scale = {(tonic + step) % 12 for step in (MAJOR if major else MINOR)}
    frames = notes[:, 1].astype(float)
    return float(frames[np.isin(notes[:, 2] % 12, list(scale))].sum() / frames.sum())


def excerpt_statistics(rolls: Tensor) -> dict[str, Tensor]:
    """The module docstring's statistics of each roll, ``name -> (B,)`` float64 (NaN where undefined,
    e.g. the key of a silent roll)."""
    sound = sounding(rolls).double()
    per_frame = sound.sum(dim=1)  # (B, frames)
    active = per_frame > 0
    starts = note_starts(rolls).double().sum(dim=(1, 2))
    rows = torch.arange(sound.shape[1], dtype=torch.float64)
    occupied = sound.amax(dim=-1) > 0
    highest = torch.where(occupied, rows, -torch.inf).amax(dim=-1)
    lowest = torch.where(occupied, rows, torch.inf).amin(dim=-1)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return {
        "polyphony": torch.where(active.any(-1), per_frame.sum(-1) / active.sum(-1).clamp_min(1), nan),
        "onsets_per_bar": starts / (rolls.shape[-1] / 16),
        "note_length": torch.where(starts > 0, sound.sum(dim=(1, 2)) / starts.clamp_min(1), nan),
        "in_key": torch.tensor([_in_key(roll) for roll in rolls], dtype=torch.float64),
        "pitch_range": torch.where(occupied.any(-1), highest - lowest, nan),
        "silence": 1 - active.double().mean(-1),
    }


def tonic_relative_histogram(rolls: Tensor) -> Tensor:
    """The mean over rolls of each one's pitch-class histogram rotated so that its key's tonic is class 0
    (12,): comparable across transpositions, as the prior is trained on transposed excerpts. Silent
    rolls are left out."""
    histograms = pitch_class_histogram(rolls)
    rotated = []
    for roll, histogram in zip(rolls, histograms):
        found = excerpt_key(roll_notes(roll))
        if found is not None:
            tonic = MAJOR_KEYS.index(found) if found in MAJOR_KEYS else MINOR_KEYS.index(found)
            rotated.append(histogram.roll(-tonic))
    return torch.stack(rotated).mean(0)


def overlapping_area(a: Tensor, b: Tensor, points: int = 512) -> float:
    """The overlapping area of the Gaussian kernel density estimates (Scott's bandwidth) of two 1-D
    samples, NaN dropped: 1 for equal densities, 0 for disjoint ones. Constant samples get a
    bandwidth of 1% of the joint range (or 0.01)."""
    from scipy.stats import gaussian_kde

    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    floor = max(0.01 * (high - low), 0.01)
    grid = np.linspace(low - 6 * floor - 0.5 * (high - low), high + 6 * floor + 0.5 * (high - low), points)

    def density(v):
        if np.ptp(v) == 0:
            return np.exp(-0.5 * ((grid - v[0]) / floor) ** 2) / (floor * np.sqrt(2 * np.pi))
        return gaussian_kde(v)(grid)

    return float(np.trapezoid(np.minimum(density(a), density(b)), grid))


def shuffled(rolls: Tensor, generator: torch.Generator) -> Tensor:
    """Each roll with its pitch rows and its frames permuted at random (both channels alike)."""
    out = []
    for roll in rolls:
        rows = torch.randperm(roll.shape[1], generator=generator)
        frames = torch.randperm(roll.shape[2], generator=generator)
        out.append(roll[:, rows][:, :, frames])
    return torch.stack(out)


def compare(samples: Tensor, real: Tensor) -> dict[str, float]:
    """Each statistic's mean over ``samples`` and over ``real``, and their overlapping area:
    ``{name: ..., name + "_real": ..., name + "_overlap": ...}``, with ``mean_overlap`` over all."""
    mine, theirs = excerpt_statistics(samples), excerpt_statistics(real)
    scores = {}
    for name in STATISTICS:
        scores[name] = float(mine[name].nanmean())
        scores[f"{name}_real"] = float(theirs[name].nanmean())
        scores[f"{name}_overlap"] = overlapping_area(mine[name], theirs[name])
    scores["mean_overlap"] = float(np.nanmean([scores[f"{name}_overlap"] for name in STATISTICS]))
    return scores

