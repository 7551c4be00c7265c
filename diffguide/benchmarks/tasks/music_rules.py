"""Task ``music-rules``: piano rolls from the ``chorales`` prior guided towards non-differentiable musical
rules (Huang et al., ICML 2024), with targets taken from held-out chorales.

Instances: ``pitch-histogram``, ``note-density``, ``chord-progression`` (``music.rules``) and
``all-rules``, their weighted sum (weights 40, 1, 1: the histogram's squared errors are about a
fortieth of the density's). ``samples`` rolls per run (default 16; 8 when reduced), sample ``k``
guided towards the statistic of held-out excerpt ``k`` (every ``len / samples``-th one), chords in
that excerpt's own key. Derivative-free solvers (SCG, best-of-N, EnKG) get the exact rule;
gradient-based ones the smooth surrogate of the histogram and density (``softness`` 0.1), and no
chord rule (they cannot run it; such runs fail and are reported so). Samples are always scored by
the exact rule. Metrics:

- ``rule_loss``: the mean loss of the instance's rule (lower is closer to the targets), with
  ``rule_loss_real`` of the held-out excerpts scored against each other's targets (the loss of a
  real piece that was not asked for: what "unguided but musical" scores);
- how far guidance moves the samples from the music (``music.statistics.compare`` against all
  held-out excerpts): each statistic's mean, its real value and the overlapping area of their
  distributions, and ``mean_overlap`` (1 when the samples' statistics are distributed as the real ones).
"""
from __future__ import annotations

import functools

import torch

from ...data.chorales import chorales_eval
from ...device_runs import solve_on_device
from ...music import rules
from ...music.piano_roll import roll_notes
from ...music.statistics import compare
from ...priors.embedded import load
from ...rewards.music_rules import ChordProgressionRule, NoteDensityRule, PitchHistogramRule, RuleSum
from ...schedules import prior_sigmas

RULES = ("pitch-histogram", "note-density", "chord-progression")
WEIGHTS = {"pitch-histogram": 40.0, "note-density": 1.0, "chord-progression": 1.0}
REDUCED = ("note-density", "chord-progression")
REDUCED_SAMPLES = 8
SOFTNESS = 0.1


@functools.lru_cache(maxsize=4)
def references(samples: int) -> tuple[torch.Tensor, list[str]]:
    """``samples`` held-out excerpts, evenly spaced, and their keys (music21 names)."""
    held_out = chorales_eval()
    chosen = held_out[torch.linspace(0, len(held_out) - 1, samples).round().long()]
    return chosen, [rules.excerpt_key(roll_notes(roll)) for roll in chosen]


def rule_reward(instance: str, targets: torch.Tensor, keys: list[str], softness: float = 0.0):
    """The rule of ``instance`` with the statistics of ``targets`` (one roll per sample) as its targets;
    ``softness > 0``: the surrogates (no chord rule)."""
    def one(name):
        if name == "pitch-histogram":
            return PitchHistogramRule(rules.pitch_class_histogram(targets), softness=softness)
        if name == "note-density":
            return NoteDensityRule(rules.note_density(targets), softness=softness)
        if softness > 0:
            raise ValueError("the chord-progression rule has no gradient: use a derivative-free solver (scg, best-of-n)")
        return ChordProgressionRule(rules.chord_degrees(targets, keys), key=keys)
    if instance == "all-rules":
        names = [name for name in RULES if softness == 0 or name != "chord-progression"]
        return RuleSum([one(name) for name in names], [WEIGHTS[name] for name in names])
    return one(instance)


class MusicRules:
    """The ``music-rules`` task (module docstring): ``samples`` rolls per run from the ``chorales`` prior,
    each guided towards a held-out excerpt's rule statistic, scored by the exact rule and by how
    musical the samples stay."""

    name = "music-rules"

    def __init__(self, samples: int = 16):
        self.samples = samples

    def instances(self, reduced: bool) -> list[str]:
        return list(REDUCED) if reduced else [*RULES, "all-rules"]

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        if instance not in self.instances(reduced=False):
            raise ValueError(f"unknown music-rules instance {instance!r}; expected one of {', '.join(self.instances(False))}")
        prior = load("chorales")
        n = REDUCED_SAMPLES if reduced else self.samples
        targets, keys = references(n)
        exact = rule_reward(instance, targets, keys)
        handed = None if solver.needs == "none" else (
            rule_reward(instance, targets, keys, SOFTNESS) if solver.needs == "gradient" else exact)
        g = torch.Generator().manual_seed(seed)
        sigmas = prior_sigmas(prior, steps)
        x = sigmas[0] * torch.randn(n, *prior.shape, generator=g)
        samples = solve_on_device(solver, prior, handed, x, sigmas, generator=g).clamp(*prior.data_range)
        real = chorales_eval()
        others = targets.roll(1, dims=0)  # each real excerpt against another's target
        return {"rule_loss": float(exact.rule_loss(samples).mean()), "rule_loss_real": float(exact.rule_loss(others).mean()),
                **compare(samples, real), "images": {"result": samples[:2, :1]}}
