"""What notifications did, in Redis: once-only marks (an apply told once however often its report is retried; a PR
waiting long told once per lock), and the counts /metrics reports as tfbot_notifications_total."""
from __future__ import annotations

import redis

from bot.state import keys

# A mark outlives any report retry and any wait in a lock's line worth telling about.
MARK_TTL_SECONDS = 30 * 24 * 3600
RESULTS = ("sent", "failed", "dropped")


def first_time(conn: redis.Redis, receiver: str, event: str, key: str) -> bool:
    """True exactly once per (receiver, event, key) within MARK_TTL_SECONDS, across processes and hosts."""
    return bool(conn.set(keys.notified(receiver, event, key), "1", nx=True, ex=MARK_TTL_SECONDS))


def forget(conn: redis.Redis, receiver: str, event: str, key: str) -> None:
    """Undo `first_time` for a notification that could not be queued after all, so a later try sends it."""
    conn.delete(keys.notified(receiver, event, key))


def count(conn: redis.Redis, kind: str, event: str, result: str) -> None:
    """Add one to the notifications of `kind` (slack, webhook) and `event` that ended in `result` (RESULTS)."""
    conn.hincrby(keys.notification_counts(), f"{kind}|{event}|{result}", 1)


def counts(conn: redis.Redis) -> dict[tuple[str, str, str], int]:
    """Every count: (kind, event, result) -> notifications."""
    found: dict[tuple[str, str, str], int] = {}
    for field, value in conn.hgetall(keys.notification_counts()).items():
        kind, event, result = keys.text(field).split("|", 2)
        found[(kind, event, result)] = int(value)
    return found
