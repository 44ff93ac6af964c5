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

from bot.state import keys

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


def parse_since(text: str) -> float:
    """`2026-11-01` or an ISO 8601 time (UTC when no zone is given) as unix time; ValueError otherwise."""
    from datetime import datetime, timezone

    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def format_entries(items: list[AuditEntry], as_json: bool) -> str:
    """The audit trail as JSON lines' list, or as a table a person reads."""
    from datetime import datetime, timezone

    if as_json:
        return json.dumps([asdict(e) for e in items], indent=2)
    if not items:
        return "no audit entries"
    rows = [("when (UTC)", "action", "repo", "PR", "project", "user", "commit", "outcome", "detail")]
    for e in items:
        when = datetime.fromtimestamp(e.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((when, e.action, e.repo, f"#{e.pull}" if e.pull else "", e.project, e.user, e.sha[:8],
                     e.outcome, e.detail[:80]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
