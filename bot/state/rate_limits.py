"""Fixed-window attempt counters in Redis: how many times someone did something costly in the current window.

The lock page bounds what one GitHub user can make tfbot ask GitHub: each unlock attempt costs one role lookup with
the App's token, so attempts are counted per user per minute (bot/web/locks.py). `SET NX EX` starts a window with
its expiry and `INCR` counts in it, in one round trip; the key expires with the window, so nothing needs clearing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.state import keys

if TYPE_CHECKING:
    from redis import Redis


def take(conn: Redis, kind: str, who: str, limit: int, window_seconds: int) -> tuple[bool, int]:
    """Count one `kind` attempt by `who` (case-insensitive); returns (allowed, seconds until the window ends).

    Allowed while this is one of the first `limit` attempts of the window; refused attempts count too, so
    hammering does not shorten the wait.
    """
    key = keys.rate_limit(kind, who.lower())
    pipe = conn.pipeline(transaction=True)
    pipe.set(key, 0, ex=window_seconds, nx=True)
    pipe.incr(key)
    pipe.ttl(key)
    _, count, ttl = pipe.execute()
    wait = int(ttl) if int(ttl) > 0 else window_seconds
    return int(count) <= limit, wait
