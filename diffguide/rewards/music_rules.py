"""Musical rules as rewards on piano rolls, with a user's target (Huang et al., ICML 2024).

Each reward is ``-loss(rule(x0), target)`` with the paper's loss per rule (``diffguide.music.rules``
for the statistics):

- ``PitchHistogramRule``: mean squared error between the 12-bin pitch-class histograms;
- ``NoteDensityRule``: mean squared error between the vertical and horizontal densities per window;
- ``ChordProgressionRule``: the fraction of windows whose chord's scale degree differs from the
  target's;
- ``RuleSum``: the weighted sum of several rules' losses (the paper's multi-rule guidance).

A target is one statistic (shape (D,), the same for every sample) or one per sample (B, D), e.g.
measured on the pieces a user wants to resemble (``rule(piano_roll(...))``). The counts are not
differentiable: derivative-free solvers (SCG, best-of-N, EnKG) take them as they are. The histogram
and density rules with ``softness > 0`` score the smooth surrogate instead (``music.rules``),
which gradient-based solvers need; report the hard loss (``softness = 0``) in any comparison.
"""
from __future__ import annotations

import torch

from ..music import rules
from ..music.piano_roll import CHANNELS, PITCHES
from ..validation import finite, finite_tensor, integer, non_negative
from .base import Reward


class MusicRule(Reward):
    """Base of the rules: ``forward(x0) = -loss(statistic(x0), target)``, (B,); subclasses define
    ``statistic`` (rolls -> (B, D)) and ``loss`` ((B, D), (B or 1, D) -> (B,))."""

    def __init__(self, target, *, dtype: torch.dtype = torch.float32):
        super().__init__()
        target = finite_tensor(f"{type(self).__name__}'s target", target, dtype)
        if target.dim() not in (1, 2) or target.shape[-1] == 0:
            raise ValueError(f"{type(self).__name__}'s target must have shape (D,) or (B, D), got {tuple(target.shape)}")
        self.register_buffer("target", target, persistent=False)

    def statistic(self, x0: torch.Tensor) -> torch.Tensor:
        """The rule's statistic of each roll, (B, D)."""
        raise NotImplementedError

    def loss(self, statistic: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The paper's loss per sample, (B,), between statistics and targets."""
        raise NotImplementedError

    def rule_loss(self, x0: torch.Tensor) -> torch.Tensor:
        """The rule's loss per sample, (B,), in ``x0``'s dtype on its device."""
        statistic = self.statistic(x0)
        target = self.target.to(statistic.device)
        if target.dim() == 2 and target.shape[0] != statistic.shape[0]:
            raise ValueError(f"{type(self).__name__} has {target.shape[0]} targets for {statistic.shape[0]} samples")
        if statistic.is_floating_point():
            target = target.to(statistic.dtype)
        return self.loss(statistic, target).to(device=x0.device, dtype=x0.dtype)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return -self.rule_loss(x0)

    def frames_per_value(self) -> int | None:
        """The window of frames each target value describes (None: the whole roll)."""
        return None

    def check(self, shape, dtype=torch.float32) -> None:
        if len(shape) != 3 or shape[0] != CHANNELS or shape[1] != PITCHES:
            raise ValueError(f"{type(self).__name__} scores piano rolls of shape ({CHANNELS}, {PITCHES}, frames), but "
                             f"the prior's samples have shape {tuple(shape)}")
        window, width = self.frames_per_value(), self.target.shape[-1]
        if window is not None:
            expected = self.values_per_window * (shape[2] // window)
            if shape[2] % window or width != expected:
                raise ValueError(f"{type(self).__name__} with a window of {window} frames needs {expected} target values "
                                 f"for rolls of {shape[2]} frames (the window must divide them), got {width}")


def _squared_error(statistic: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (statistic - target).pow(2).mean(dim=-1)


class PitchHistogramRule(MusicRule):
    """Pitch-class histogram rule: ``-mean_c (h_c(x0) - target_c)^2`` over the 12 classes (C first) of
    the duration-weighted histogram. ``softness`` > 0 scores the differentiable surrogate."""

    def __init__(self, target, *, softness: float = 0.0):
        super().__init__(target)
        if self.target.shape[-1] != 12 or bool((self.target < 0).any()):
            raise ValueError(f"PitchHistogramRule's target is a 12-bin histogram (C first, non-negative), got shape "
                             f"{tuple(self.target.shape)}")
        self.softness = non_negative("softness (the sigmoid's width; 0: the exact count)", softness)
        self.differentiable = self.softness > 0

    def statistic(self, x0):
        return rules.pitch_class_histogram(x0, self.softness)

    loss = staticmethod(_squared_error)


class NoteDensityRule(MusicRule):
    """Note-density rule: ``-mean (d(x0) - target)^2`` over the vertical then horizontal densities per
    window of ``window`` frames (default 16, a 4/4 bar): 2 values per window. ``softness`` > 0
    scores the differentiable surrogate."""

    values_per_window = 2

    def __init__(self, target, *, window: int = rules.DENSITY_WINDOW, softness: float = 0.0):
        super().__init__(target)
        self.window = integer(1)("window (frames per density value)", window)
        if self.target.shape[-1] % 2 or bool((self.target < 0).any()):
            raise ValueError("NoteDensityRule's target holds a vertical then a horizontal density (non-negative) per window, "
                             f"an even number of values; got shape {tuple(self.target.shape)}")
        self.softness = non_negative("softness (the sigmoid's width; 0: the exact count)", softness)
        self.differentiable = self.softness > 0

    def statistic(self, x0):
        return rules.note_density(x0, self.window, self.softness)

    loss = staticmethod(_squared_error)

    def frames_per_value(self):
        return self.window


class ChordProgressionRule(MusicRule):
    """Chord-progression rule: ``-(fraction of windows whose chord's scale degree differs from the target)``,
    one degree (1-7, 0 for silence) per window of ``window`` frames (default 8, half a bar), in
    ``key`` (music21's name, e.g. ``"C"`` or ``"a"``; or a list, one per sample) or, by default, the
    excerpt's own detected key. Not differentiable (music21's chordify and Roman-numeral analysis)."""

    differentiable = False
    values_per_window = 1

    def __init__(self, target, *, key: str | list[str] | None = None, window: int = rules.CHORD_WINDOW):
        super().__init__(target, dtype=torch.int64)
        if bool(((self.target < 0) | (self.target > 7)).any()):
            raise ValueError("ChordProgressionRule's target holds scale degrees 1-7 (0: silence)")
        self.window = integer(1)("window (frames per chord)", window)
        from music21 import key as keys

        for name in key if isinstance(key, (list, tuple)) else [key] * (key is not None):
            try:
                keys.Key(name)
            except Exception:
                raise ValueError(f"ChordProgressionRule's key {name!r} is not a key music21 knows (e.g. 'C', 'a', 'F#')") from None
        self.key = list(key) if isinstance(key, (list, tuple)) else key

    def statistic(self, x0):
        return rules.chord_degrees(x0.detach(), self.key, self.window)

    def loss(self, statistic, target):
        return (statistic != target).double().mean(dim=-1)

    def frames_per_value(self):
        return self.window


class RuleSum(Reward):
    """Several rules at once: ``-sum_i w_i loss_i(x0)`` (the paper's weighted sum), differentiable when
    every rule is. ``rules`` and ``weights`` (default all 1) are lists of the same length."""

    def __init__(self, rules_: list[MusicRule], weights: list[float] | None = None):
        super().__init__()
        if not rules_ or not all(isinstance(rule, MusicRule) for rule in rules_):
            raise ValueError("RuleSum needs one or more rules (PitchHistogramRule, NoteDensityRule, ChordProgressionRule)")
        weights = [1.0] * len(rules_) if weights is None else list(weights)
        if len(weights) != len(rules_):
            raise ValueError(f"RuleSum got {len(weights)} weights for {len(rules_)} rules")
        self.weights = [non_negative("a rule's weight", finite("a rule's weight", w)) for w in weights]
        self.rules = torch.nn.ModuleList(rules_)
        self.differentiable = all(rule.differentiable for rule in rules_)

    def rule_loss(self, x0: torch.Tensor) -> torch.Tensor:
        return sum(w * rule.rule_loss(x0) for w, rule in zip(self.weights, self.rules))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return -self.rule_loss(x0)

    def check(self, shape, dtype=torch.float32) -> None:
        for rule in self.rules:
            rule.check(shape, dtype)
