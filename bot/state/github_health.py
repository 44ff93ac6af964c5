"""Whether tfbot could last talk to GitHub as its App, for `/healthz`: written by the recovery pass, which asks
GitHub with the App's JWT every period (the webhook deliveries it may have missed), read by the web process, which
never calls GitHub itself.

One key, `tfbot:github:health` (string: JSON `{"ok", "error", "at"}`), kept a day: an old answer shows its age.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis

from bot.state import keys

TTL_SECONDS = 24 * 3600


def record(conn: redis.Redis, error: str = "", at: float | None = None) -> None:
    """Keep the outcome of one call to GitHub as the App: "" for success, else the reason (already masked)."""
    value = {"ok": not error, "error": error[:500], "at": time.time() if at is None else at}
    conn.set(keys.github_health(), json.dumps(value), ex=TTL_SECONDS)


def read(conn: redis.Redis, now: float | None = None) -> dict[str, Any]:
    """`{"ok": bool | None, "error": str, "checked_seconds_ago": float | None}`; ok is None before any check."""
    raw = conn.get(keys.github_health())
    if raw is None:
        return {"ok": None, "error": "not checked yet: the recovery pass asks GitHub at start and every period",
                "checked_seconds_ago": None}
    value = json.loads(raw)
    ago = round((time.time() if now is None else now) - float(value.get("at", 0)), 1)
    return {"ok": bool(value.get("ok")), "error": str(value.get("error", "")), "checked_seconds_ago": ago}
