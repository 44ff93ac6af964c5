"""A web process's copy of every lock and the length of its waiting line, kept current by the lock version.

Reading 10,000 locks costs a round trip per 1,000 and parsing every JSON value: most of a lock page's time, though
few locks change between two loads of the page. Every lock script (bot/state/locks.py) increments the lock version
and logs the lock it changed in the same atomic step, so each read here first asks Redis for the version and the
log since the copy's version, in one small script call:
- the same version: the copy is current, and nothing else is read (the page's auto-refresh, a dashboard polling);
- a run of changes with no gap: only the locks the log names are read again, in one round trip;
- anything else (no copy yet, no version, a version gone backwards as after a flush, further behind than the log
  keeps) or a copy whose last full read is older than `max_age`: everything is read again.
The version is read before the locks it labels, so a copy may hold changes newer than its version but never lacks
one it claims: a later change bumps the version and logs its lock, which the next read then reads again. `max_age`
bounds what nothing else can: a write that bypassed the scripts (a hand edit, a tfbot too old to log its changes).

One copy per process, shared by its request threads: one thread at a time refreshes it; the others wait for it
rather than read 10,000 locks themselves.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TypeVar

from bot.models import LockInfo
from bot.state import keys
from bot.state.locks import LockStore, LockTarget

T = TypeVar("T")
MAX_AGE = 60.0  # seconds between full reads, whatever the version says


@dataclass(frozen=True)
class LockSnapshot:
    """Every lock at `version` (None: nothing counts changes), in no particular order, with the number of PRs waiting
    behind each. Shared by threads: never changed after it is made."""

    version: int | None
    locks: tuple[LockInfo, ...]
    lines: Mapping[str, int]  # lock key -> PRs waiting, for locks with a line
    by_key: Mapping[str, LockInfo]
    read_at: float  # time.monotonic() of the full read this copy descends from
    _derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def waiting(self, lock: LockTarget) -> int:
        """How many PRs wait for `lock`."""
        return self.lines.get(keys.lock(lock.repo, lock.dir, lock.workspace), 0)

    def derived(self, name: str, build: Callable[[Sequence[LockInfo]], T]) -> T:
        """`build(self.locks)`, computed once per snapshot under `name` (a fixed name from code, never from a request:
        each name is kept as long as the snapshot). Two threads may both build it; either result is the same."""
        if name not in self._derived:
            self._derived[name] = build(self.locks)
        return self._derived[name]  # type: ignore[no-any-return]


def snapshot_of(version: int | None, found: Mapping[str, tuple[LockInfo, int]], read_at: float) -> LockSnapshot:
    """A snapshot of the locks `found` (lock key -> (lock, PRs waiting)) labelled `version`."""
    by_key = {name: lock for name, (lock, _) in found.items()}
    lines = {name: waiting for name, (_, waiting) in found.items() if waiting}
    return LockSnapshot(version=version, locks=tuple(by_key.values()), lines=lines, by_key=by_key, read_at=read_at)


def updated(old: LockSnapshot, version: int, changed: Mapping[str, tuple[LockInfo, int] | None]) -> LockSnapshot:
    """`old` with the locks at the `changed` keys as they are now (None: gone), labelled `version`."""
    # Copies, not comprehensions: a change of one lock among 10,000 costs two dict copies in C.
    by_key, lines = dict(old.by_key), dict(old.lines)
    for name, entry in changed.items():
        lines.pop(name, None)
        if entry is None:
            by_key.pop(name, None)
            continue
        by_key[name], waiting = entry
        if waiting:
            lines[name] = waiting
    return LockSnapshot(version=version, locks=tuple(by_key.values()), lines=lines, by_key=by_key,
                        read_at=old.read_at)


def changed_keys(have: int | None, now: int, changes: Sequence[tuple[int, str]]) -> list[str] | None:
    """The lock keys to read again to bring a copy at version `have` to `now`, or None when the log does not cover
    every change in between (no copy, a gap, a counter that went backwards): then everything must be read."""
    if have is None or now < have or [number for number, _ in changes] != list(range(have + 1, now + 1)):
        return None
    return list(dict.fromkeys(name for _, name in changes))


class LockCache:
    """This process's copy of every lock; see the module docstring for when it reads what."""

    def __init__(self, store: LockStore, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._max_age = max_age
        self._clock = clock
        self._current: LockSnapshot | None = None
        self._refresh = threading.Lock()

    def snapshot(self) -> LockSnapshot:
        """Every lock as Redis holds it now (or newer): one script call when nothing changed since the last read, a
        read of the changed locks when a few did, else a read of all of them. Raises redis.RedisError."""
        with self._refresh:
            current = self._current
            if current is not None and self._clock() - current.read_at >= self._max_age:
                current = None
            now, changes = self._store.changes_since(None if current is None else current.version)
            if current is not None and now == current.version:
                return current
            if current is not None and now is not None:
                names = changed_keys(current.version, now, changes)
                if names is not None:
                    self._current = updated(current, now, self._store.read(names))
                    return self._current
            snapshot = snapshot_of(now, self._store.read_all(), self._clock())
            # Without a version nothing would tell a later read whether this copy is still current: keep none.
            self._current = None if now is None else snapshot
            return snapshot
