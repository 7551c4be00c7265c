"""``--rule NAME[:key=value,...]``: musical rules as the reward of ``diffguide sample`` on a piano-roll prior.

Rules and their targets (one spec per ``--rule``; several are summed with their ``weight``):

- ``pitch-histogram:key=K`` (the key's seven scale tones, equally weighted; ``K`` as music21 spells
  keys: ``C``, ``a`` for A minor, ``F#``, ``b-`` for B-flat minor) or ``pitch-histogram:from=FILE``;
- ``note-density:vertical=V,horizontal=H`` (notes per frame, onset frames per quarter note, in
  every bar; either may be left out to take FILE's) or ``note-density:from=FILE``;
- ``chord-progression:chords=I-IV-V-I[,key=K]`` (Roman numerals or degrees 1-7, spread evenly over
  the excerpt's half bars) or ``chord-progression:from=FILE``;

``from=FILE`` measures the target on the first excerpt of a MIDI or MusicXML file of the user's.
Every rule takes ``weight=W`` (default 1) and the histogram and density rules ``softness=S``
(the differentiable surrogate a gradient-based solver needs; default 0, the exact count).
"""
from __future__ import annotations

from .errors import UsageError
from .specs import parse_spec

RULES = ("pitch-histogram", "note-density", "chord-progression")
ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


def _number(params: dict, name: str, spec: str, default=None) -> float | None:
    if name not in params:
        return default
    try:
        value = float(params.pop(name))
    except ValueError:
        raise UsageError(f"--rule {spec!r}: {name} must be a number") from None
    if not 0 <= value < float("inf"):
        raise UsageError(f"--rule {spec!r}: {name} must be a finite number >= 0")
    return value


def _key(text: str, spec: str):
    from music21 import key as keys

    try:
        return keys.Key(text)
    except Exception:
        raise UsageError(f"--rule {spec!r}: {text!r} is not a key (e.g. C, a for A minor, F#, b- for B-flat minor)") from None


def _reference(params: dict, spec: str, frames: int):
    """The first excerpt of ``from=FILE`` as a (1, 2, pitches, frames) roll, or None."""
    if "from" not in params:
        return None
    from ..music.scores import file_excerpts

    try:
        return file_excerpts(params.pop("from"), frames)[0][None]
    except ValueError as error:
        raise UsageError(f"--rule {spec!r}: {error}") from None


def _degrees(text: str, spec: str) -> list[int]:
    degrees = []
    for symbol in filter(None, text.replace(" ", "").split("-")):
        degree = int(symbol) if symbol.isdigit() else ROMAN.get(symbol.lower().rstrip("o+°7"))
        if degree is None or not 1 <= degree <= 7:
            raise UsageError(f"--rule {spec!r}: chord {symbol!r} is not a Roman numeral I-VII or a degree 1-7")
        degrees.append(degree)
    if not degrees:
        raise UsageError(f"--rule {spec!r}: chords= needs one or more chords, e.g. I-IV-V-I")
    return degrees


def parse_rule(spec: str, frames: int):
    """One ``--rule`` spec as ``(rule reward, weight)`` for rolls of ``frames`` frames (``UsageError`` if bad)."""
    import torch

    from ..music import rules
    from ..rewards.music_rules import ChordProgressionRule, NoteDensityRule, PitchHistogramRule

    name, params = parse_spec(spec)
    if name not in RULES:
        raise UsageError(f"--rule {spec!r}: unknown rule {name!r}; expected one of {', '.join(RULES)}")
    weight = _number(params, "weight", spec, 1.0)
    reference = _reference(params, spec, frames)
    try:
        if name == "pitch-histogram":
            softness = _number(params, "softness", spec, 0.0)
            if reference is not None:
                target = rules.pitch_class_histogram(reference)[0]
            elif "key" in params:
                found = _key(params.pop("key"), spec)
                target = torch.zeros(12)
                target[[(found.tonic.pitchClass + step) % 12 for step in (MAJOR if found.mode == "major" else MINOR)]] = 1 / 7
            else:
                raise UsageError(f"--rule {spec!r}: give key=K or from=FILE")
            rule = PitchHistogramRule(target, softness=softness)
        elif name == "note-density":
            softness = _number(params, "softness", spec, 0.0)
            windows = frames // rules.DENSITY_WINDOW
            measured = rules.note_density(reference)[0] if reference is not None else None
            vertical = _number(params, "vertical", spec)
            horizontal = _number(params, "horizontal", spec)
            if measured is None and (vertical is None or horizontal is None):
                raise UsageError(f"--rule {spec!r}: give vertical=V and horizontal=H, or from=FILE")
            target = measured if measured is not None else torch.zeros(2 * windows)
            if vertical is not None:
                target[:windows] = vertical
            if horizontal is not None:
                target[windows:] = horizontal
            rule = NoteDensityRule(target, softness=softness)
        else:
            key = params.pop("key", None)
            if key is not None:
                _key(key, spec)
            windows = frames // rules.CHORD_WINDOW
            if reference is not None:
                target = rules.chord_degrees(reference, key)[0]
            elif "chords" in params:
                degrees = _degrees(params.pop("chords"), spec)
                target = torch.tensor([degrees[i * len(degrees) // windows] for i in range(windows)])
            else:
                raise UsageError(f"--rule {spec!r}: give chords=I-IV-V-I or from=FILE")
            rule = ChordProgressionRule(target, key=key)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(f"--rule {spec!r}: {error}") from None
    if params:
        raise UsageError(f"--rule {spec!r}: unknown setting(s) {', '.join(sorted(params))} for {name}")
    return rule, weight


def rule_reward(specs: list[str], shape: tuple[int, ...]):
    """The reward of the ``--rule`` specs for samples of ``shape``: one rule, or their weighted sum."""
    from ..music.piano_roll import is_piano_roll_shape
    from ..rewards.music_rules import RuleSum

    if not is_piano_roll_shape(shape):
        raise UsageError(f"--rule needs a piano-roll prior (e.g. --prior chorales); this prior's samples are "
                         f"{'x'.join(map(str, shape))}")
    parsed = [parse_rule(spec, shape[-1]) for spec in specs]
    reward = parsed[0][0] if len(parsed) == 1 and parsed[0][1] == 1.0 else RuleSum(*map(list, zip(*parsed)))
    try:
        reward.check(tuple(shape))
    except ValueError as error:
        raise UsageError(f"--rule: {error}") from None
    return reward
