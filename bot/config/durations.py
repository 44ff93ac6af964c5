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
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 7d, 12h or 90m, or off")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        parsed = _parse(value.strip())
        if parsed is None:
            raise ValueError(f"{value!r} is not a duration: write it like 7d, 12h, 1d12h or 90m (or off)")
        number = float(parsed)
    else:
        raise ValueError("must be a duration such as 7d, 12h or 90m, or off")
    if number < 0:
        raise ValueError("must not be negative")
    return number or None


Duration = Annotated[float | None, BeforeValidator(seconds)]


def describe(value: float) -> str:
    """`7 days`, `12 hours`, `90 minutes`, `45 seconds`: the largest whole unit that `value` (seconds) fills."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if value >= size and value % size == 0:
            n = int(value // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = round(value)
    return f"{n} second{'s' if n != 1 else ''}"
