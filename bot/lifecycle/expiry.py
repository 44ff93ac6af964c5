"""Which locks have expired (pure): `locks.expire_after`.

A lock expires when its PR only planned the project (the lock is `planned`, `plan failed` or `plan stale`: no
apply ran, is running or failed, and the infrastructure does not differ from the default branch because of it)
and nothing happened on the PR for `expire_after` seconds: no push, no comment by a person, no run. The clock
starts at the later of the lock's own time and the PR's last such moment (`Records.touch`). A lock being planned
right now (`planning`) never expires; one whose run died is recovered, not expired.
"""
from __future__ import annotations

from bot.config.durations import describe
from bot.models import LockInfo, LockState

EXPIRING_STATES = frozenset({LockState.PLANNED, LockState.PLAN_FAILED, LockState.PLAN_STALE})


def idle_since(lock: LockInfo, last_activity: float | None) -> float:
    """The moment (unix seconds) from which the lock has been idle."""
    return max(lock.locked_at, last_activity or 0.0)


def expired(lock: LockInfo, last_activity: float | None, now: float, after: float) -> bool:
    """Whether `lock` has expired at `now` (unix seconds) under `expire_after` = `after` seconds."""
    return (lock.state in EXPIRING_STATES and not lock.diverged
            and now - idle_since(lock, last_activity) >= after)


def expiry_message(project: str, after: float, next_pull: int | None) -> str:
    """The PR comment's text after its lock of `project` expired (markdown; `project` is escaped by the caller)."""
    after_text = (f"The lock goes to #{int(next_pull)}, which tfbot plans now." if next_pull
                  else "Nobody was waiting for it.")
    return (f"The lock of {project} was released: this PR planned it, then had no push, comment or run for "
            f"{describe(after)} (`locks.expire_after`). The saved plan of this PR for it is discarded; {after_text} "
            "Comment `plan` to take the lock again (behind whoever holds it then).")
