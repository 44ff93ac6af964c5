"""Server-side sign-ins to the lock page: a session is signed in only while its record is here.

Flask's session cookie is signed but stateless: clearing it at sign-out does nothing to a copy of it. So every
sign-in, with GitHub or as a local admin, writes a record under a random id, the cookie carries only that id, and
a session whose record is gone (signed out, signed in again, or expired) is signed out. The record's TTL is the
session's whole life, counted from sign-in.

A GitHub sign-in's record also keeps what GitHub listed about the user's repositories at sign-in, with the user's
own token (bot/adapters/github_oauth.py): their role on each, so drawing the page asks GitHub nothing and only
shows which unlock buttons to offer. Whether an unlock is allowed is always asked of GitHub at that moment, and its
answer replaces the kept role of that repository.

Shape: `tfbot:signin:<session id>` holds a JSON object `{"who": "<login or admin name>", "via": "github" |
"admin", "roles": {"<owner/name lower-cased>": "<role>"} | null, "fingerprint": "<admin's password hash
fingerprint>"}`; `roles` null means the listing is unknown (failed, or an admin). A record of any other shape
(one written before records named who signed in) counts as no record: that session is signed out.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.state import keys

if TYPE_CHECKING:
    from redis import Redis

GITHUB, ADMIN = "github", "admin"  # how a session signed in


@dataclass(frozen=True)
class SignIn:
    """One signed-in session: `who` (GitHub login or admin name), `via` (GITHUB or ADMIN), the GitHub `roles`
    listed at sign-in (lower-cased repository -> role; None: unknown) and, for an admin, the `fingerprint` of
    their password hash at sign-in (a changed password signs them out)."""
    who: str
    via: str
    roles: dict[str, str] | None = None
    fingerprint: str = ""


def start(conn: Redis, sign_in: SignIn, seconds: int) -> str:
    """Record `sign_in` for `seconds` under a new random id (192 bits) and return that id."""
    session_id = secrets.token_urlsafe(24)
    conn.set(keys.sign_in(session_id), _dump(sign_in), ex=max(1, int(seconds)), nx=True)
    return session_id


def get(conn: Redis, session_id: str) -> SignIn | None:
    """The sign-in recorded under `session_id`, or None when there is none (signed out or expired): one GET."""
    return _parse(conn.get(keys.sign_in(session_id)))


def roles(conn: Redis, session_id: str) -> dict[str, str] | None:
    """The roles kept for the sign-in `session_id`, or None when none are kept (one GET)."""
    found = get(conn, session_id)
    return found.roles if found else None


def update(conn: Redis, session_id: str, repo: str, role: str) -> None:
    """Replace the kept role on `repo` with what GitHub said at an unlock; nothing when no listing is kept (a
    listing of one repository would hide every other button) or the record is gone. Keeps the record's expiry
    (read with it, not KEEPTTL, which Redis 5 lacks), and XX never brings back a record deleted meanwhile by a
    sign-out; two unlocks at once may each keep their own answer, a hint either way."""
    key = keys.sign_in(session_id)
    pipe = conn.pipeline(transaction=True)
    pipe.get(key)
    pipe.pttl(key)
    raw, ttl = pipe.execute()
    kept = _parse(raw)
    if kept is not None and kept.roles is not None and int(ttl) > 0:
        changed = SignIn(kept.who, kept.via, {**kept.roles, repo.lower(): role}, kept.fingerprint)
        conn.set(key, _dump(changed), px=int(ttl), xx=True)


def forget(conn: Redis, session_id: str) -> None:
    """End the sign-in `session_id` (sign-out): every copy of its cookie is signed out with it."""
    conn.delete(keys.sign_in(session_id))


def _dump(sign_in: SignIn) -> str:
    return json.dumps({"who": sign_in.who, "via": sign_in.via, "roles": sign_in.roles,
                       "fingerprint": sign_in.fingerprint}, sort_keys=True)


def _parse(raw: bytes | str | None) -> SignIn | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("via") not in (GITHUB, ADMIN) or not data.get("who"):
        return None
    kept = data.get("roles")
    return SignIn(who=str(data["who"]), via=str(data["via"]),
                  roles={str(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else None,
                  fingerprint=str(data.get("fingerprint") or ""))
