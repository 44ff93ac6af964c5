"""Who may unlock which lock from the page (pure): the rules, over values; GitHub is asked elsewhere.

A local admin (`server.admins`) may unlock any lock. A user signed in with GitHub may unlock a lock of a repository
where GitHub gives them at least `server.unlock_permission`; a flagged lock (its PR applied what the default
branch does not hold, or it is applying) stays with those who may override that: local admins and users with
GitHub's `admin` role on the repository.
"""
from __future__ import annotations

from typing import Iterable

from bot.models import REPO_ROLES, LockInfo, LockState

OVERRIDE_ROLE = "admin"
MAX_REASON_CHARS = 500


def flagged(lock: LockInfo) -> bool:
    """Whether releasing `lock` lets the next PR plan against infrastructure that differs from the default branch."""
    return lock.diverged or lock.state in (LockState.APPLYING, LockState.APPLIED, LockState.APPLY_FAILED)


def at_least(role: str | None, needed: str) -> bool:
    """Whether GitHub role `role` ("none", None or one of REPO_ROLES) grants `needed` (one of REPO_ROLES)."""
    return role in REPO_ROLES and REPO_ROLES.index(role) >= REPO_ROLES.index(needed)


def required_role(lock: LockInfo, unlock_permission: str) -> str:
    """The GitHub role on the lock's repository that unlocking `lock` takes."""
    return OVERRIDE_ROLE if flagged(lock) else unlock_permission


def may_unlock(role: str | None, lock: LockInfo, unlock_permission: str) -> bool:
    """Whether a GitHub user with `role` on the lock's repository may unlock `lock`."""
    return at_least(role, required_role(lock, unlock_permission))


def offered(roles: dict[str, str] | None, locks: Iterable[LockInfo],
            unlock_permission: str) -> set[tuple[str, str, str]]:
    """(repo, dir, workspace) of the `locks` a GitHub user gets an unlock button for, from the roles listed for
    them at sign-in (lower-cased OWNER/NAME -> role). Unknown roles (None) offer every lock: the button is a hint,
    and GitHub is asked at the unlock either way."""
    return {(lk.repo, lk.dir, lk.workspace) for lk in locks
            if roles is None or may_unlock(roles.get(lk.repo.lower()), lk, unlock_permission)}


def reason_problem(reason: str) -> str | None:
    """Why the reason typed for a GitHub user's unlock cannot be taken, or None."""
    if not reason.strip():
        return "Give a reason for the unlock: it goes to the audit trail and is posted on the pull request."
    if len(reason) > MAX_REASON_CHARS:
        return f"The reason is longer than {MAX_REASON_CHARS} characters: shorten it."
    return None
