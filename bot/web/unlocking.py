"""An admin unlocks a workspace from the lock page or with `tfbot unlock`: release, hand over, audit, tell the PR.

Releasing is immediate and needs only Redis (`release`). Telling the PR needs GitHub: the page queues
`announce_job` for a worker (nothing slow happens in a web request), the CLI calls `announce` itself.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from bot.state import audit
from bot.lifecycle.decision import Action, Event, Facts, LockView, decide
from bot.lifecycle.handover import drop_plans, plan_next
from bot.models import LockInfo, LockState, Project
from bot.queue import enqueue_event
from bot.render.comments import code_span, escape_text

if TYPE_CHECKING:
    from bot.services import HasEventsQueue, UnlockServices, WorkerServices

log = logging.getLogger(__name__)

FROM_PAGE = "from the lock page"
FROM_CLI = "with the tfbot command line"


class UnlockRefused(Exception):
    """The lock was not released; the message says why and what to do (shown to the admin as is)."""


def release(svc: UnlockServices, repo: str, dir: str, workspace: str, by: str, via: str,
            token: int | None = None, reason: str = "") -> tuple[LockInfo | None, dict[str, Any] | None]:
    """Force-release the lock (only the one under `token` when given); hand it to the next PR in line.

    Returns (the released lock, the waiter it was handed to) or (None, None) when nothing was released:
    the workspace was free, or its lock changed hands since `token` was read. Raises UnlockRefused when
    bot/lifecycle/decision.py refuses: a run holds the workspace's run guard (whatever the lock's state), or the PR
    applied what the default branch lacks and no `reason` was given. `svc` needs `locks`, `redis`, `events_queue`
    and `project_of_lock`.
    """
    target = Project(repo=repo, name=dir, dir=dir, workspace=workspace)
    current = svc.locks.get(target)
    if current is None:
        return None, None
    run_alive = svc.locks.guard_holder(target) is not None
    # An admin's unlock depends on the lock and on whether a run is going, never on the PR (the page does not
    # ask GitHub in a request): the PR's facts below are placeholders the decision does not read for this event.
    decision = decide(Event.FORCE_UNLOCK, Facts(
        pull=current.pull, pr_state="open", applies=True, head_sha="", run_alive=run_alive,
        lock=LockView.of(current)))
    if decision.action is not Action.RELEASE:
        log.warning("%s could not unlock %s of %s: %s", by, current.project, repo, decision.reason)
        raise UnlockRefused(f"Nothing was unlocked: {decision.reason}.")
    flagged = _flagged(current)
    if flagged and not reason.strip():
        raise UnlockRefused(_needs_reason(current))
    # Checked again inside the release script, on the lock as it is then: it may have changed since the read above.
    result = svc.locks.force_release(target, by, token=token, run_dead=not run_alive, with_reason=bool(reason.strip()))
    if result.refused in ("applying", "running"):
        raise UnlockRefused("Nothing was unlocked: a run of this project started meanwhile; unlock it once it has "
                            "ended.")
    if result.refused == "flagged" and result.lock is not None:
        raise UnlockRefused(_needs_reason(result.lock))
    if not result.released or result.previous is None:
        return None, None
    held = result.previous
    flagged = _flagged(held)  # the lock the script released, not the one read before it
    project = svc.project_of_lock(held)
    audit.record(svc.redis, audit.AuditEntry(
        action="unlock", repo=held.repo, pull=held.pull, project=held.project, user=by,
        # The reason first: the table view of `tfbot audit` cuts long details.
        detail=(f"{reason.strip()} — " if reason.strip() else "") + f"unlocked {via}"
        + (f" (state: {held.state.value}; infrastructure and default branch differed)" if flagged else "")
        + (f"; handed to #{result.next_waiter['pull']}" if result.next_waiter else ""),
        run_id=held.run_id))
    log.info("%s unlocked %s of %s#%d %s", by, held.project, held.repo, held.pull, via)
    plan_next(svc, project, result.next_waiter, reason=f"{by} unlocked it {via}")
    return held, result.next_waiter


def _flagged(lock: LockInfo) -> bool:
    return lock.diverged or lock.state in (LockState.APPLYING, LockState.APPLIED, LockState.APPLY_FAILED)


def _needs_reason(lock: LockInfo) -> str:
    return (f"Nothing was unlocked: the infrastructure and the default branch differ because of #{lock.pull} "
            f"(state: {lock.state.value}). Releasing it lets the next PR plan against infrastructure that "
            "differs from the default branch. Give a reason to unlock it anyway; it goes to the audit trail.")


def unlock_message(by: str, project: str, via: str, next_pull: int | None, mention: bool) -> str:
    """The PR comment's text (markdown, values escaped)."""
    who = f"@{escape_text(by)}" if mention else code_span(by)
    after = (f"The lock goes to #{int(next_pull)}, which tfbot plans now." if next_pull
             else "Nobody was waiting for it.")
    return (f"{who} unlocked {code_span(project)} {via}. The saved plan of this PR for it is discarded; "
            f"{after} Comment `plan` to take the lock again.")


def installation_of(svc: WorkerServices, lock: LockInfo) -> int | None:
    """The GitHub App installation of the lock's repository: from the PR record, else from its latest run."""
    recorded = svc.records.pull_field(lock.repo, lock.pull, "installation")
    if recorded:
        return int(recorded)
    found = svc.records.run(lock.run_id) if lock.run_id else None
    if found and found[0].get("command_id"):
        try:
            return int(svc.records.command(found[0]["command_id"]).installation)
        except KeyError:
            return None
    return None


def announce(svc: WorkerServices, lock: LockInfo, by: str, via: str, next_pull: int | None, mention: bool) -> bool:
    """Discard the PR's saved plan of that project and comment on the PR; False when the PR cannot be told.

    `svc` is a WorkerServices (GitHub App, records, plan store).
    """
    drop_plans(svc, svc.project_of_lock(lock), lock.pull)
    installation = installation_of(svc, lock)
    if installation is None:
        log.warning("cannot comment on %s#%d about the unlock: its installation id is not recorded",
                    lock.repo, lock.pull)
        return False
    text = unlock_message(by, lock.project, via, next_pull, mention)
    gh = svc.github.repo(installation, lock.repo)
    gh.create_comment(lock.pull, svc.render_notice("unlocked", lock.pull, "", text))
    return True


def announce_job(lock: dict[str, Any], by: str, via: str, next_pull: int | None) -> bool:
    """RQ job queued by the lock page: `announce` in a worker, with the worker's services."""
    from bot.jobs import services

    return announce(services(), lock_from_dict(lock), by, via, next_pull, mention=True)


def lock_to_dict(lock: LockInfo) -> dict[str, Any]:
    return {**asdict(lock), "state": lock.state.value}


def lock_from_dict(data: dict[str, Any]) -> LockInfo:
    known = {f.name for f in fields(LockInfo)}
    values = {k: v for k, v in data.items() if k in known}
    return LockInfo(**{**values, "state": LockState(values["state"])})


def queue_announcement(svc: HasEventsQueue, lock: LockInfo, by: str, via: str, waiter: dict[str, Any] | None) -> None:
    """Queue `announce_job` on the events queue (JSON arguments only, like every tfbot job)."""
    enqueue_event(svc.events_queue, "bot.web.unlocking.announce_job",
                  (lock_to_dict(lock), by, via, int(waiter["pull"]) if waiter else None),
                  f"tell {lock.repo}#{lock.pull} that {by} unlocked {lock.project}", report_failure=False)
