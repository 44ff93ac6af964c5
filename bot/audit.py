"""The audit trail: who planned, applied or unlocked what, when, at which commit, for which PR.

Kept in Redis as a bounded list (newest first), so "who changed network last Tuesday?" has an answer
without digging through Slack. Each entry is one JSON object.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import redis

from bot import keys

MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class AuditEntry:
    action: str  # plan, apply, unlock, lock-handover, ...
    repo: str
    pull: int
    project: str
    user: str
    sha: str = ""
    outcome: str = ""
    detail: str = ""
    run_id: str = ""
    at: float = field(default_factory=time.time)


def record(conn: redis.Redis, entry: AuditEntry) -> None:
    """Append one entry; the oldest fall off past MAX_ENTRIES."""
    pipe = conn.pipeline()
    pipe.lpush(keys.audit(), json.dumps(asdict(entry)))
    pipe.ltrim(keys.audit(), 0, MAX_ENTRIES - 1)
    pipe.execute()


def entries(conn: redis.Redis, repo: str | None = None, since: float | None = None,
            batch: int = 1000) -> Iterator[AuditEntry]:
    """Entries newest first, optionally for one repository and not older than `since` (unix time)."""
    start = 0
    while True:
        chunk = conn.lrange(keys.audit(), start, start + batch - 1)
        if not chunk:
            return
        for raw in chunk:
            entry = AuditEntry(**json.loads(raw))
            if since is not None and entry.at < since:
                return
            if repo is None or entry.repo.lower() == repo.lower():
                yield entry
        start += batch
