"""What a GitHub sign-in learnt about the user's repositories, kept for drawing the lock page.

At sign-in, GitHub lists the repositories the user reaches in the App's installations, with their role on each,
for the user's own token (bot/adapters/github_oauth.py). That listing is kept here under the session's random id
for as long as the session lasts, so drawing the page asks GitHub nothing: it only shows which unlock buttons to
offer. Whether an unlock is allowed is always asked of GitHub at that moment, and its answer replaces the kept
role of that repository.

Shape: `tfbot:signin:<session id>` holds a JSON object `{"<owner/name lower-cased>": "<role>"}`; no key means
the listing is unknown (never made, failed, or expired).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bot.state import keys

if TYPE_CHECKING:
    from redis import Redis


def keep(conn: Redis, session_id: str, roles: dict[str, str] | None, seconds: int) -> None:
    """Keep `roles` (lower-cased repository -> role) for `seconds`; None forgets any kept listing."""
    if roles is None:
        conn.delete(keys.sign_in_roles(session_id))
    else:
        conn.set(keys.sign_in_roles(session_id), json.dumps(roles, sort_keys=True), ex=max(1, int(seconds)))


def roles(conn: Redis, session_id: str) -> dict[str, str] | None:
    """The kept roles of the sign-in `session_id`, or None when none are kept (one GET)."""
    return _parse(conn.get(keys.sign_in_roles(session_id)))


def update(conn: Redis, session_id: str, repo: str, role: str) -> None:
    """Replace the kept role on `repo` with what GitHub said at an unlock; nothing when no listing is kept (a
    listing of one repository would hide every other button). Keeps the listing's expiry (read with it, not
    KEEPTTL, which Redis 5 lacks); two unlocks at once may each keep their own answer, a hint either way."""
    key = keys.sign_in_roles(session_id)
    pipe = conn.pipeline(transaction=True)
    pipe.get(key)
    pipe.pttl(key)
    raw, ttl = pipe.execute()
    kept = _parse(raw)
    if kept is not None and int(ttl) > 0:
        kept[repo.lower()] = role
        conn.set(key, json.dumps(kept, sort_keys=True), px=int(ttl), xx=True)


def _parse(raw: bytes | str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def forget(conn: Redis, session_id: str) -> None:
    """Drop the kept roles of a session that signs out."""
    conn.delete(keys.sign_in_roles(session_id))
