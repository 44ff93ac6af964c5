"""Durations in the config as people write them (`7d`, `12h`, `1d12h`, `90m`): parsed by pytimeparse into seconds.

`Duration` is a pydantic type for optional durations: `null`, `off` or `0` turn the setting off (None); a number
is seconds; a string is read by pytimeparse. Anything else, or a negative value, is a problem at its key.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator
from pytimeparse.timeparse import timeparse as _parse

_OFF = ("", "off", "none", "never", "false")


def seconds(value: Any) -> float | None:
    """`value` in seconds, or None for off. Raises ValueError with a message naming the accepted forms."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in _OFF):
        return None
    number = parse_duration(value)
    return number or None


def parse_duration(value: Any) -> float:
    """Seconds of a duration that must be given: `90s`, `15m`, `2h`, `1d12h`, `2 hours`, or a number of seconds.
    Raises ValueError ("must be a duration ...") for anything else, or a negative value."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a duration such as 90s, 15m, 2h or 1d12h")
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        parsed = _parse(text)
        if parsed is None:
            raise ValueError(f"must be a duration such as 90s, 15m, 2h or 1d12h, got {text[:40]!r}") from None
        number = float(parsed)
    if number < 0:
        raise ValueError(f"must be a duration such as 90s, 15m, 2h or 1d12h, not negative ({text[:40]!r})")
    return number


Duration = Annotated[float | None, BeforeValidator(seconds)]


def describe(value: float) -> str:
    """`7 days`, `12 hours`, `90 minutes`, `45 seconds`: the largest whole unit that `value` (seconds) fills."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if value >= size and value % size == 0:
            n = int(value // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = round(value)
    return f"{n} second{'s' if n != 1 else ''}"
