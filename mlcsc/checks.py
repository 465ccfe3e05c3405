"""Argument checks shared by the whole package.

Each check returns the value in its canonical type or raises :class:`ValueError` whose message
names the argument, what was expected and what came, e.g.
``"n_iter must be an integer >= 0, got -1"``.

>>> check_int("n_iter", 3, minimum=0)
3
>>> check_number("lam", 0.5, 0.0, low_open=True)
0.5
>>> check_int("k", 0, minimum=1)
Traceback (most recent call last):
...
ValueError: k must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from torch import Tensor

__all__ = [
    "check_choice",
    "check_choices",
    "check_flag",
    "check_int",
    "check_ints",
    "check_number",
    "check_numbers",
]


def _scalar(value: object) -> object:
    """A one-element tensor as a Python number; anything else unchanged."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.detach().item()
    return value


def check_int(
    name: str, value: object, minimum: int, maximum: int | None = None, what: str = ""
) -> int:
    """An integer in ``[minimum, maximum]`` (``bool`` refused).

    Raises:
        ValueError: ``"<name> must be an integer in [a, b]<what>, got <value>"``.
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):  # type: ignore[operator]
        expected = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {expected}{what}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def check_number(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    what: str = "",
) -> float:
    """A real number (a one-element tensor counts) in the interval given by ``low``, ``high``
    and their openness; finite unless ``allow_inf`` (``nan`` is always refused).

    Raises:
        ValueError: ``"<name> must be a finite number in (a, b]<what>, got <value>"``.
    """
    value = _scalar(value)
    kind = "a number" if allow_inf else "a finite number"
    left = "(" if low_open or low == -math.inf else "["
    right = ")" if high_open or high == math.inf else "]"
    expected = f"{kind} in {left}{low:g}, {high:g}{right}"
    if low != -math.inf and high == math.inf:
        expected = f"{kind} {'>' if low_open else '>='} {low:g}"
    elif low == -math.inf and high == math.inf:
        expected = kind
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if ok else math.nan  # type: ignore[arg-type]
    ok = ok and not math.isnan(number) and (allow_inf or math.isfinite(number))
    ok = ok and (number > low if low_open else number >= low)
    ok = ok and (number < high if high_open else number <= high)
    if not ok:
        raise ValueError(f"{name} must be {expected}{what}, got {value!r}")
    return number


def _as_sequence(name: str, values: object, kind: str) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a non-empty sequence of {kind}, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence of {kind}, got []")
    return values


def check_ints(
    name: str, values: object, minimum: int, maximum: int | None = None, what: str = ""
) -> list[int]:
    """A non-empty sequence of integers in ``[minimum, maximum]``; the message names the bad
    entry: ``"<name> must be an integer in [a, b]<what>, got <entry> (in <name>=[...])"``."""
    values = _as_sequence(name, values, "integers")
    out = []
    for value in values:
        try:
            out.append(check_int(name, value, minimum, maximum, what))
        except ValueError as error:
            raise ValueError(f"{error} (in {name}={values!r})") from None
    return out


def check_numbers(name: str, values: object, low=-math.inf, high=math.inf, **kwargs) -> list[float]:
    """A non-empty sequence of numbers, each checked by :func:`check_number`."""
    values = _as_sequence(name, values, "numbers")
    out = []
    for value in values:
        try:
            out.append(check_number(name, value, low, high, **kwargs))
        except ValueError as error:
            raise ValueError(f"{error} (in {name}={values!r})") from None
    return out


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of ``choices``.

    >>> check_choice("mode", "soft", ("soft", "hard"))
    'soft'
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value  # type: ignore[return-value]


def check_choices(name: str, values: object, choices: Sequence[str]) -> list[str]:
    """A non-empty sequence of distinct names, each one of ``choices``."""
    values = _as_sequence(name, values, "names")
    for value in values:
        if value not in choices:
            raise ValueError(f"{name} must hold names from {{{', '.join(choices)}}}, got {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat a name, got {values!r}")
    return list(values)


def check_flag(name: str, value: object) -> bool:
    """A ``bool``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value
