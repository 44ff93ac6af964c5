"""What a user signed in with GitHub may unlock: the role asked of GitHub at the moment of an unlock, and the hint
the page draws its unlock buttons from.

Drawing the page asks GitHub nothing. The buttons come from the roles GitHub listed for the user's own token at
sign-in (bot/adapters/github_oauth.py), kept per session in Redis (bot/state/sign_ins.py): one Redis read per
render, whatever the number of repositories. An unlock asks GitHub once, with the App's token, at that moment
(`role_now`); its answer is what counts, and it also replaces the kept role of that repository.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from bot.adapters.github_roles import RoleLookupError
from bot.models import LockInfo
from bot.state import sign_ins
from bot.web import unlock_rights

if TYPE_CHECKING:
    from bot.services import WebServices


def role_now(svc: WebServices, login: str, repo: str, session_id: str | None = None) -> str:
    """`login`'s role on `repo` as GitHub says it now (one of REPO_ROLES or "none"): one lookup with the App's token.
    Raises RoleLookupError when GitHub cannot tell."""
    if svc.github_roles is None:
        raise RoleLookupError("sign-in with GitHub is not configured")
    role = svc.github_roles.role(repo, login)
    if session_id:
        sign_ins.update(svc.redis, session_id, repo, role)
    return role


def unlockable(svc: WebServices, session_id: str | None, locks: Iterable[LockInfo]) -> set[tuple[str, str, str]]:
    """(repo, dir, workspace) of the `locks` the page shows this sign-in an unlock button for: from the roles kept
    at sign-in, or every lock when none are kept (GitHub decides at the unlock). Asks GitHub nothing."""
    kept = sign_ins.roles(svc.redis, session_id) if session_id else None
    return unlock_rights.offered(kept, locks, svc.config.server.unlock_permission)
