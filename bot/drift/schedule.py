"""When a repository's drift checks are due, and which of its projects they cover (pure).

A repository's `drift.schedule` is a five-field cron expression in UTC. Its fire times are *slots*: the
scheduler (bot/ops/drift_scheduler.py) remembers the last slot it handled per repository, and at time `now` the
slot due is the latest fire time at or before `now`, when it is later than that one. Only the latest: a scheduler
that was down for five fire times checks once when it is back, not five times. A repository never handled before
has its latest slot due at once, so switching drift on checks every project once without waiting for the schedule.

Times are unix seconds (floats); cron fire times fall on whole minutes.
"""
from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from croniter import croniter

from bot.models import Project

P = TypeVar("P", bound=Project)


def latest_slot(schedule: str, now: float) -> float:
    """The latest fire time of `schedule` (cron, UTC) at or before `now`. Raises ValueError for a bad expression
    (the config model has refused those already)."""
    # croniter's get_prev is strictly before its start; fire times are whole seconds, so starting one second past
    # floor(now) includes a fire at exactly `now` and nothing after it.
    start = datetime.fromtimestamp(math.floor(now) + 1, timezone.utc)
    try:
        return float(croniter(schedule, start).get_prev(float))
    except (KeyError, ValueError) as exc:  # croniter raises its own subclasses of these
        raise ValueError(f"not a cron expression: {schedule!r} ({exc})") from None


def next_slot(schedule: str, now: float) -> float:
    """The first fire time of `schedule` after `now`."""
    start = datetime.fromtimestamp(math.floor(now), timezone.utc)
    return float(croniter(schedule, start).get_next(float))


def due_slot(schedule: str, now: float, last: float | None) -> float | None:
    """The slot to check at `now`, or None when nothing is due. `last` is the slot handled last (None: never):
    the latest fire time at or before `now` is due when it is after `last`. Missed fire times between `last` and
    it are not replayed one by one: they are all covered by this one check."""
    slot = latest_slot(schedule, now)
    if last is not None and slot <= last:
        return None
    return slot


def selected(name: str, globs: Iterable[str]) -> bool:
    """Whether project `name` matches one of `drift.projects` (fnmatch globs, case-sensitive; a plain name
    matches itself)."""
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def projects_to_check(projects: Sequence[P], globs: Iterable[str]) -> list[P]:
    """The projects of a repository its `drift.projects` selects, in the order given."""
    globs = tuple(globs)
    return [p for p in projects if selected(p.name, globs)]
