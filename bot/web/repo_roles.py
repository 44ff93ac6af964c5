"""What a user signed in with GitHub may unlock: their role per repository, asked of GitHub.

Two uses, two freshnesses. To draw the page (which unlock buttons to show), each (user, repository) role is
kept `DISPLAY_SECONDS` in this process, so the page, refreshed every 10 s, does not ask GitHub per lock per
render; a failed lookup is kept as well, and shows no button. To unlock, GitHub is always asked again at that
moment (`role_now`), and its answer replaces the kept one.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable

from bot.adapters.github_roles import RoleLookupError
from bot.models import LockInfo
from bot.web import unlock_rights

if TYPE_CHECKING:
    from bot.services import WebServices

log = logging.getLogger(__name__)

DISPLAY_SECONDS = 60.0
MAX_ENTRIES = 10_000  # (user, repository) pairs kept; the oldest go first


class ShownRoles:
    """Roles kept for drawing the page: (login, repo) -> (role or None for a failed lookup, when asked)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[str | None, float]] = {}

    def get(self, login: str, repo: str) -> tuple[bool, str | None]:
        """(found, role): found is False when nothing younger than DISPLAY_SECONDS is kept."""
        with self._lock:
            kept = self._kept.get((login.lower(), repo.lower()))
        if kept is None or self._clock() - kept[1] > DISPLAY_SECONDS:
            return False, None
        return True, kept[0]

    def put(self, login: str, repo: str, role: str | None) -> None:
        with self._lock:
            if len(self._kept) >= MAX_ENTRIES:
                for key in list(self._kept)[:MAX_ENTRIES // 10]:  # dicts keep insertion order: the oldest
                    del self._kept[key]
            self._kept.pop((login.lower(), repo.lower()), None)
            self._kept[(login.lower(), repo.lower())] = (role, self._clock())


def role_now(svc: WebServices, shown: ShownRoles, login: str, repo: str) -> str:
    """`login`'s role on `repo` as GitHub says it now (one of REPO_ROLES or "none"); kept for display too.
    Raises RoleLookupError when GitHub cannot tell."""
    if svc.github_roles is None:
        raise RoleLookupError("sign-in with GitHub is not configured")
    try:
        role = svc.github_roles.role(repo, login)
    except RoleLookupError:
        shown.put(login, repo, None)
        raise
    shown.put(login, repo, role)
    return role


def unlockable(svc: WebServices, shown: ShownRoles, login: str,
               locks: Iterable[LockInfo]) -> set[tuple[str, str, str]]:
    """(repo, dir, workspace) of the locks the page shows `login` an unlock button for."""
    locks = list(locks)
    roles: dict[str, str | None] = {}
    for repo in sorted({lk.repo for lk in locks}):
        found, role = shown.get(login, repo)
        if not found:
            try:
                role = role_now(svc, shown, login, repo)
            except RoleLookupError as exc:
                log.warning("cannot tell whether %s may unlock locks of %s: %s", login, repo, exc)
                role = None
        roles[repo] = role
    needed = svc.config.server.unlock_permission
    return {(lk.repo, lk.dir, lk.workspace) for lk in locks if unlock_rights.may_unlock(roles[lk.repo], lk, needed)}
