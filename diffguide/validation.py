"""Checks of user-given parameters, shared by solvers, operators, priors and rewards.

Every check raises ``ValueError`` naming the parameter, what it accepts and the value it got,
and returns the value when it passes. A rule is a callable ``rule(name, value)``:

- ``Number(low, high, ...)``: a real (or, with ``integer=True``, an integer) in an interval,
  finite unless ``allow_inf``; booleans are not numbers. Ready-made: ``positive``,
  ``non_negative``, ``fraction`` ([0, 1]) and ``integer(low)``.
- ``flag``: exactly ``True`` or ``False``.
- ``one_of(*options)``: one of a few words.
- ``span(low, high)``: a pair ``(start, end)`` with ``low <= start <= end <= high``.

``rule.about(text)`` gives the same rule with a few words on what the parameter means, which the
message quotes; ``rule.or_none()`` also accepts ``None``. ``ordered`` checks two parameters against
each other; ``finite_tensor`` checks an array argument. ``CheckedFields`` checks every field of a hyper-parameter dataclass (solvers,
guidance rules) at construction.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING, ClassVar, Mapping

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass(frozen=True)
class Rule:
    """Base of the rules: ``__call__`` checks, ``accepts`` says whether a value passes, ``str`` says what passes."""

    meaning: str = dataclasses.field(default="", kw_only=True)

    def about(self, meaning: str) -> "Rule":
        """This rule, quoting ``meaning`` (what the parameter is) in its message."""
        return dataclasses.replace(self, meaning=meaning)

    def or_none(self) -> "Rule":
        """This rule, also accepting ``None`` (a default resolved when the solver runs)."""
        return OrNone(rule=self, meaning=self.meaning)

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def __call__(self, name: str, value):
        if not self.accepts(value):
            label = f"{name} ({self.meaning})" if self.meaning else name
            raise ValueError(f"{label} must be {self}, got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class OrNone(Rule):
    """``None``, or a value ``rule`` accepts."""

    rule: Rule | None = None

    def accepts(self, value) -> bool:
        return value is None or self.rule.accepts(value)

    def __str__(self) -> str:
        return f"None or {self.rule}"


@dataclasses.dataclass(frozen=True)
class Number(Rule):
    """A number in the interval from ``low`` to ``high`` (ends included unless ``*_open``)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    allow_inf: bool = False

    def accepts(self, value) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
        if math.isnan(value) or (math.isinf(value) and not self.allow_inf):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.integer and self.low == 1 and not self.low_open and math.isinf(self.high):
            return "a positive integer"
        kind = "an integer" if self.integer else "a number" if self.allow_inf else "a finite number"
        low, high = _bound(self.low), _bound(self.high)
        if math.isinf(self.low) and math.isinf(self.high):
            return kind
        if math.isinf(self.high):
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if math.isinf(self.low):
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


@dataclasses.dataclass(frozen=True)
class Flag(Rule):
    """``True`` or ``False`` (not 0/1, not a string)."""

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "True or False"


@dataclasses.dataclass(frozen=True)
class OneOf(Rule):
    """One of ``options`` (words)."""

    options: tuple[str, ...] = ()

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(option) for option in self.options)


@dataclasses.dataclass(frozen=True)
class Span(Rule):
    """A pair ``(start, end)`` of numbers with ``low <= start <= end <= high``."""

    low: float = 0.0
    high: float = 1.0

    def accepts(self, value) -> bool:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return False
        bounds = Number(self.low, self.high)
        return bounds.accepts(value[0]) and bounds.accepts(value[1]) and value[0] <= value[1]

    def __str__(self) -> str:
        return f"a pair (start, end) with {_bound(self.low)} <= start <= end <= {_bound(self.high)}"


def _bound(value: float) -> str:
    return f"{value:g}"


def integer(low: int = 1, high: float = math.inf) -> Number:
    """An integer from ``low`` (default 1: a count of at least one) to ``high``."""
    return Number(low, high, integer=True)


def one_of(*options: str) -> OneOf:
    return OneOf(options=tuple(options))


def span(low: float = 0.0, high: float = 1.0) -> Span:
    return Span(low=low, high=high)


positive = Number(0.0, low_open=True)
non_negative = Number(0.0)
fraction = Number(0.0, 1.0)
finite = Number()
flag = Flag()


def ordered(owner: str, low_name: str, low, high_name: str, high) -> None:
    """``ValueError`` unless ``low <= high``: two of ``owner``'s parameters, each already checked."""
    if not low <= high:
        raise ValueError(f"{owner} {low_name} must be <= {high_name}, got {low_name}={low!r} and {high_name}={high!r}")


def finite_tensor(name: str, value, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` as a tensor (of ``dtype`` if given); ``ValueError`` if it is not numeric or holds NaN or Inf."""
    import torch  # here, not at the top: the command line's parser imports this module and must start fast

    try:
        tensor = torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if tensor.dtype == torch.bool or tensor.is_complex() or not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must hold finite real numbers (no NaN or Inf)")
    return tensor


class CheckedFields:
    """Mixin of a frozen hyper-parameter dataclass: each field is checked at construction by its rule in
    ``limits`` (merged along the class hierarchy) or, without one, against the type of its default
    (a finite number, an integer, a bool)."""

    #: a rule per hyper-parameter, checked at construction; merged with the base classes'.
    limits: ClassVar[Mapping[str, Rule]] = {}

    @classmethod
    def parameter_rules(cls) -> dict[str, Rule]:
        """The rule of each field: its ``limits`` entry here or in a base class, else by its default's type."""
        declared = {}
        for klass in reversed(cls.__mro__):
            declared.update(vars(klass).get("limits", {}))
        rules = {field.name: declared.get(field.name) or _rule_of_default(field.default)
                 for field in dataclasses.fields(cls)}
        return {name: rule for name, rule in rules.items() if rule is not None}

    def __post_init__(self):
        for name, rule in self.parameter_rules().items():
            rule(f"{type(self).__name__} {name}", getattr(self, name))


def _rule_of_default(default) -> Rule | None:
    """The check of a field without a rule in ``limits``: by the type of its default."""
    if isinstance(default, bool):
        return flag
    if isinstance(default, int):
        return Number(integer=True)
    if isinstance(default, float):
        return finite
    return None
