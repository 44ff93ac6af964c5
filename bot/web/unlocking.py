"""Unlocking a workspace from the lock page (an admin, or a user signed in with GitHub) or with `tfbot unlock`:
release, hand over, audit, tell the PR.

Releasing is immediate and needs only Redis (`release`). Telling the PR needs GitHub: the page queues
`bot.jobs.announce_unlock` for a worker (nothing slow happens in a web request), the CLI calls
`bot.lifecycle.handover.announce_unlock` itself.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.state import audit
from bot.lifecycle.decision import Action, Event, Facts, LockView, decide
from bot.models import LockInfo, Project
from bot.web import unlock_rights

if TYPE_CHECKING:
    from bot.services import HasJobs, UnlockServices

log = logging.getLogger(__name__)

FROM_PAGE = "from the lock page"
FROM_PAGE_GITHUB = "from the lock page, signed in with GitHub"
FROM_CLI = "with the tfbot command line"


class UnlockRefused(Exception):
    """The lock was not released; the message says why and what to do (shown to the admin as is)."""


def release(svc: UnlockServices, repo: str, dir: str, workspace: str, by: str, via: str,
            token: int | None = None, reason: str = "",
            may_override: bool = True) -> tuple[LockInfo | None, dict[str, Any] | None]:
    """Force-release the lock (only the one under `token` when given); hand it to the next PR in line.

    Returns (the released lock, the waiter it was handed to) or (None, None) when nothing was released:
    the workspace was free, or its lock changed hands since `token` was read. Raises UnlockRefused when
    bot/lifecycle/decision.py refuses: a run holds the workspace's run guard (whatever the lock's state), or the PR
    applied what the default branch lacks and no `reason` was given, or `may_override` is False (a GitHub user
    without the repository's admin role: such a lock is never theirs to release). `svc` needs `locks`, `redis`,
    `jobs` and `project_of_lock`.
    """
    target = Project(repo=repo, name=dir, dir=dir, workspace=workspace)
    current = svc.locks.get(target)
    if current is None:
        return None, None
    run_alive = svc.locks.guard_holder(target) is not None
    # An unlock from the page or the CLI depends on the lock and on whether a run is going, never on the PR (the
    # page does not ask GitHub about it): the PR's facts below are placeholders the decision does not read here.
    decision = decide(Event.FORCE_UNLOCK, Facts(
        pull=current.pull, pr_state="open", applies=True, head_sha="", run_alive=run_alive,
        lock=LockView.of(current)))
    if decision.action is not Action.RELEASE:
        log.warning("%s could not unlock %s of %s: %s", by, current.project, repo, decision.reason)
        raise UnlockRefused(f"Nothing was unlocked: {decision.reason}.")
    flagged = unlock_rights.flagged(current)
    if flagged and not may_override:
        raise UnlockRefused(_needs_override(current))
    if flagged and not reason.strip():
        raise UnlockRefused(_needs_reason(current))
    # Checked again inside the release script, on the lock as it is then: it may have changed since the read above.
    # Without the right to override, the script is told "no reason": it then refuses a lock flagged meanwhile.
    result = svc.locks.force_release(target, by, token=token, run_dead=not run_alive,
                                     with_reason=bool(reason.strip()) and may_override)
    if result.refused in ("applying", "running"):
        raise UnlockRefused("Nothing was unlocked: a run of this project started meanwhile; unlock it once it has "
                            "ended.")
    if result.refused == "flagged" and result.lock is not None:
        raise UnlockRefused(_needs_reason(result.lock) if may_override else _needs_override(result.lock))
    if not result.released or result.previous is None:
        return None, None
    held = result.previous
    flagged = unlock_rights.flagged(held)  # the lock the script released, not the one read before it
    project = svc.project_of_lock(held)
    audit.record(svc.redis, audit.AuditEntry(
        action="unlock", repo=held.repo, pull=held.pull, project=held.project, user=by,
        # The reason first: the table view of `tfbot audit` cuts long details.
        detail=(f"{reason.strip()} — " if reason.strip() else "") + f"unlocked {via}"
        + (f" (state: {held.state.value}; infrastructure and default branch differed)" if flagged else "")
        + (f"; handed to #{result.next_waiter['pull']}" if result.next_waiter else ""),
        run_id=held.run_id))
    log.info("%s unlocked %s of %s#%d %s", by, held.project, held.repo, held.pull, via)
    if result.next_waiter:  # it holds the lock now: plan it
        svc.jobs.plan_waiter(project, int(result.next_waiter["pull"]), int(result.next_waiter["installation"]),
                             reason=f"{by} unlocked it {via}")
    return held, result.next_waiter


def _needs_reason(lock: LockInfo) -> str:
    return (f"Nothing was unlocked: the infrastructure and the default branch differ because of #{lock.pull} "
            f"(state: {lock.state.value}). Releasing it lets the next PR plan against infrastructure that "
            "differs from the default branch. Give a reason to unlock it anyway; it goes to the audit trail.")


def _needs_override(lock: LockInfo) -> str:
    return (f"Nothing was unlocked: the infrastructure and the default branch differ because of #{lock.pull} "
            f"(state: {lock.state.value}). Only a tfbot admin or someone with the admin role on {lock.repo} "
            "may release such a lock.")


def queue_announcement(svc: HasJobs, lock: LockInfo, by: str, via: str, waiter: dict[str, Any] | None,
                       reason: str = "") -> None:
    """Queue the job that tells the PR (bot.jobs.announce_unlock): the page never writes to GitHub in a request."""
    svc.jobs.announce_unlock(lock, by, via, int(waiter["pull"]) if waiter else None, reason.strip())
